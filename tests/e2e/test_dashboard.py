"""The dashboard in Chromium against a real ``ductape serve``: log in, watch a run complete live, pause a schedule,
retry a failed run. Screenshots of each go to test-artifacts/e2e/."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import httpx
from e2e_kit import PRODUCT, Server, Ui

from ductape_jobs import RunPhase, ScheduleStatus

if TYPE_CHECKING:
    from playwright.sync_api import Locator


def run_row(ui: Ui, run_id: str) -> Locator:
    return ui.page.locator(f'tr[data-run-id="{run_id}"]')


def test_log_in_with_the_key_and_a_wrong_key_is_refused(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    page = ui.page
    ui.open()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    ui.shot("login")

    ui.log_in("dtk_000000000000_not-a-real-key")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    expect(page.get_by_label("API key")).to_be_visible()  # the form again
    assert not page.context.cookies()
    ui.shot("login-refused")

    ui.log_in()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "ductape_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"].startswith("dts_") and server.key not in cookie["value"]  # a session, never the key
    expect(page.locator("#who")).to_contain_text("e2e")
    expect(page.locator("#who")).to_contain_text("admin")
    # the page's own fetch() calls are authenticated by the cookie alone
    status = page.evaluate("fetch('/api/v1/jobs').then((r) => r.status)")
    assert status == 200
    assert httpx.get(f"{server.url}/api/v1/jobs").status_code == 401  # and nothing else is
    expect(page.get_by_role("region", name="Runs per minute").locator("svg")).to_be_visible()
    ui.shot("overview")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert not page.context.cookies()
    replayed = httpx.get(f"{server.url}/api/v1/jobs", cookies={cookie["name"]: cookie["value"]})
    assert replayed.status_code == 401  # the session ended in the store, not only in the browser


def test_a_job_run_appears_live_on_the_runs_page(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    page = ui.page
    ui.log_in()
    ui.open("#/runs")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.get_by_role("table", name="Runs")).to_contain_text("No run matches")
    page.evaluate("window.__noReload = true")

    result = server.client.job.schedule({**PRODUCT, "event": "ok-job", "input": {"from": "e2e"}})
    row = page.locator("tr", has_text="ok-job")
    expect(row).to_have_count(1, timeout=30_000)
    expect(row.locator(".badge")).to_have_text("completed", timeout=30_000)
    assert page.evaluate("window.__noReload") is True  # updated in place, not reloaded
    (run,) = server.client.job.runs(job_id=result.job_id)
    assert run.phase is RunPhase.COMPLETED
    expect(page.locator("#live")).to_have_text(re.compile("live|polling"))
    if page.locator("#live").text_content() == "live":  # the stream's lifecycle events reached the page
        expect(page.locator("#live")).to_have_attribute("title", re.compile("last event: job.completed"))
    ui.shot("runs-live")

    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile("ok-job"))).to_be_visible()
    expect(page.get_by_role("table", name="Attempts")).to_contain_text("completed")
    ui.shot("run-detail")


def test_without_the_event_stream_the_runs_page_polls(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    page = ui.page
    page.route("**/api/v1/events", lambda route: route.abort())  # as behind a proxy that breaks streams
    ui.log_in()
    ui.open("#/runs")
    expect(page.locator("#live")).to_have_text("polling")
    page.evaluate("window.__noReload = true")
    server.client.job.schedule({**PRODUCT, "event": "ok-job"})
    row = page.locator("tr", has_text="ok-job")
    expect(row.locator(".badge")).to_have_text("completed", timeout=30_000)
    assert page.evaluate("window.__noReload") is True
    ui.shot("runs-polling")


def test_pause_a_schedule_from_the_ui(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    page = ui.page
    result = server.client.job.schedule(
        {**PRODUCT, "event": "ok-job", "repeat": {"cron": "30 2 * * *", "tz": "America/New_York"}}
    )
    ui.log_in()
    ui.open("#/schedules")
    row = page.locator(f'tr[data-schedule-id="{result.job_id}"]')
    expect(row.locator(".badge")).to_have_text("active")
    ui.shot("schedules")

    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge")).to_have_text("paused")
    expect(row.get_by_role("button", name="Resume")).to_be_visible()
    assert server.client.job.get(result.job_id).status is ScheduleStatus.PAUSED
    api = httpx.get(f"{server.url}/api/v1/schedules/{result.job_id}", headers={"X-API-Key": server.key})
    assert api.json()["status"] == "paused"

    # the detail page: the preview calendar in the schedule's zone, with UTC beside it
    row.get_by_role("link").first.click()
    calendar = page.get_by_role("region", name="Next fire times")
    expect(calendar.locator(".day").first).to_contain_text(re.compile(r"02:30 E[SD]T"))
    expect(calendar.locator(".day").first).to_contain_text(re.compile(r"0[67]:30"))
    ui.shot("schedule-detail")

    # cancel it, with a reason, through the confirm dialog
    page.get_by_role("button", name=re.compile("^Cancel schedule")).click()
    dialog = page.get_by_role("dialog", name="Cancel this schedule?")
    dialog.get_by_label("Reason (optional)").fill("moved to the new billing run")
    ui.shot("schedule-cancel-dialog", full_page=False)  # a modal covers the window
    dialog.get_by_role("button", name="Cancel schedule").click()
    expect(page.locator(".page-head .badge")).to_have_text("cancelled")
    cancelled = server.client.job.get(result.job_id)
    assert cancelled.status is ScheduleStatus.CANCELLED and "moved to the new billing run" in (cancelled.reason or "")


def test_retry_a_failed_run_from_the_ui(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    page = ui.page
    result = server.client.job.schedule({**PRODUCT, "event": "flaky-job"})
    (failed,) = server.wait_for(
        lambda: [r for r in server.client.job.runs(job_id=result.job_id) if r.phase is RunPhase.FAILED],
        what="the flaky run to fail",
    )
    ui.log_in()
    ui.open(f"#/runs/{failed.id}")
    expect(page.get_by_role("region", name="Error")).to_contain_text("the export service is down")
    ui.shot("run-failed")

    server.heal_flaky()
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".page-head .badge")).to_have_text("completed", timeout=30_000)
    attempts = page.get_by_role("table", name="Attempts")
    expect(attempts.locator("tbody tr")).to_have_count(2)
    expect(attempts).to_contain_text("failed")
    assert server.client.job.run(failed.id).phase is RunPhase.COMPLETED
    ui.shot("run-retried")

    ui.open("#/runs?phase=completed")
    expect(run_row(ui, failed.id).locator(".badge")).to_have_text("completed")


def test_overview_and_load_forecast_draw_their_charts(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    page = ui.page
    for cron in ("*/15 * * * *", "0 * * * *"):
        server.client.job.schedule({**PRODUCT, "event": "ok-job", "repeat": {"cron": cron}})
    # from an hour on: an occurrence at :00 or :30 while the test ran made a second failure (CI failed at 07:30 UTC)
    later = int(time.time()) + 3600
    server.client.job.schedule({**PRODUCT, "event": "flaky-job", "start_at": later, "repeat": {"cron": "*/30 * * * *"}})
    server.client.job.schedule({**PRODUCT, "event": "flaky-job"})  # fails now: a failure on the overview
    ui.log_in()
    expect(page.locator(".card", has_text="Failures").locator(".value")).to_have_text("1", timeout=30_000)
    expect(page.get_by_role("table", name="Next runs due")).to_contain_text("ok-job")
    ui.shot("overview-busy")

    ui.open("#/forecast")
    heat = page.get_by_role("img", name=re.compile("Heatmap"))
    expect(heat).to_be_visible()
    expect(heat.locator("text.row-label")).to_have_count(2)
    expect(page.get_by_role("table", name="Busiest minutes")).to_contain_text("overlap")
    ui.shot("forecast")


def test_a_read_key_sees_the_dashboard_without_the_buttons_that_change_things(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    from ductape_jobs.apikeys import ApiKeys
    from ductape_jobs.clock import SystemClock

    page = ui.page
    reader = ApiKeys(server.client.store, SystemClock()).create("viewer", scope="read").key
    active = server.client.job.schedule({**PRODUCT, "event": "ok-job", "repeat": {"cron": "0 3 * * *"}})
    flaky = server.client.job.schedule({**PRODUCT, "event": "flaky-job"})
    (failed,) = server.wait_for(
        lambda: [r for r in server.client.job.runs(job_id=flaky.job_id) if r.phase is RunPhase.FAILED],
        what="the flaky run to fail",
    )
    ui.log_in(reader)
    page.get_by_role("navigation", name="Main").wait_for()
    expect(page.locator("#who")).to_contain_text("viewer")
    expect(page.locator("#who")).to_contain_text("read")

    ui.open("#/schedules")
    row = page.locator(f'tr[data-schedule-id="{active.job_id}"]')
    expect(row.locator(".badge")).to_have_text("active")
    for name in ("Pause", "Resume", "Cancel", "Run now"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    ui.shot("read-key-schedules")

    ui.open(f"#/schedules/{active.job_id}")
    expect(page.get_by_role("region", name="Next fire times").locator(".day").first).to_be_visible()  # a read
    expect(page.get_by_role("button", name=re.compile("Pause|Cancel|Run now"))).to_have_count(0)

    ui.open(f"#/runs/{failed.id}")
    expect(page.get_by_role("region", name="Error")).to_contain_text("the export service is down")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    ui.open("#/runs?phase=failed")
    expect(run_row(ui, failed.id).locator(".badge")).to_have_text("failed")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    ui.shot("read-key-runs")

    # and the API refuses what the page does not offer
    status = page.evaluate(
        f"""fetch('/api/v1/schedules/{active.job_id}/cancel', {{method: 'POST',
            headers: {{'Content-Type': 'application/json'}}, body: '{{}}'}}).then((r) => r.status)"""
    )
    assert status == 403
    assert server.client.job.get(active.job_id).status is ScheduleStatus.ACTIVE


def test_the_next_fire_times_are_the_schedules_own(ui: Ui, server: Server) -> None:
    """The panel asked ``/preview`` for the bare cadence: an every-N grid from now (off the schedule's own grid),
    and ten times past its limit and its end date. It now shows what the workers will run."""
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    page = ui.page
    first = (datetime.now(UTC) + timedelta(days=3)).replace(hour=7, minute=13, second=0, microsecond=0)
    limited = server.client.job.schedule(
        {**PRODUCT, "event": "ok-job", "start_at": first.isoformat(), "repeat": {"every": 3_600_000, "limit": 2}}
    )
    end = first + timedelta(days=2)
    ending = server.client.job.schedule(
        {**PRODUCT, "event": "ok-job", "repeat": {"cron": "0 9 * * *", "tz": "UTC", "endDate": end.isoformat()}}
    )
    ui.log_in()
    ui.open(f"#/schedules/{limited.job_id}")
    calendar = page.get_by_role("region", name="Next fire times")
    expect(calendar.locator("li")).to_have_count(2)  # its limit: two runs, not ten
    expect(calendar.locator("li").first).to_contain_text("07:13")  # its own grid, from its start
    expect(calendar.locator("li").nth(1)).to_contain_text("08:13")
    server.client.job.pause(limited.job_id)  # paused: it resumes on its own grid, not on one from now
    ui.open(f"#/schedules/{ending.job_id}")
    ui.open(f"#/schedules/{limited.job_id}")
    expect(page.locator(".page-head .badge")).to_have_text("paused")
    expect(calendar.locator("li")).to_have_count(2)
    expect(calendar.locator("li").first).to_contain_text("07:13")
    ui.open(f"#/schedules/{ending.job_id}")
    days = calendar.locator(".day")
    expect(days.last).to_have_attribute("aria-label", (end - timedelta(days=1)).date().isoformat())
    assert days.count() <= 5  # nothing past its end date (today may not have fired yet)
