"""The dashboard's lists (runs, schedules) share one list view: the filters and the page live in the URL both
ways (opening a URL shows that page with those filters; changing them writes the URL back)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from e2e_kit import PRODUCT, Server, Ui


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(urlsplit(url).fragment).query)


def test_the_schedules_page_and_filters_round_trip_through_the_url(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    server.client.job.schedule_many([{**PRODUCT, "event": "ok-job", "start_at": later} for _ in range(53)])
    server.client.job.schedule({**PRODUCT, "event": "flaky-job", "start_at": later})
    page = ui.page
    ui.log_in()

    ui.open("#/schedules?job_tag=ok-job&offset=50")  # read: the second page of ok-job's schedules
    rows = page.get_by_role("table", name="Schedules").locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator(".pager")).to_contain_text("51\u201353")
    expect(page.locator("#f-job")).to_have_value("ok-job")

    page.get_by_role("button", name="← Newer").click()  # written: the page goes back into the URL
    expect(rows).to_have_count(50)
    assert _query(page.url) == {"job_tag": ["ok-job"]}
    page.get_by_role("button", name="Older →").click()
    expect(rows).to_have_count(3)
    assert _query(page.url) == {"job_tag": ["ok-job"], "offset": ["50"]}

    page.locator("#f-job").select_option("flaky-job")  # a new filter starts at the first page
    expect(rows).to_have_count(1)
    assert _query(page.url) == {"job_tag": ["flaky-job"]}
    page.reload()
    expect(rows).to_have_count(1)
    expect(page.locator("#f-job")).to_have_value("flaky-job")


def test_the_runs_filters_round_trip_through_the_url(ui: Ui, server: Server) -> None:
    from playwright.sync_api import expect

    server.client.job.schedule({**PRODUCT, "event": "ok-job"})
    page = ui.page
    ui.log_in()
    ui.open("#/runs?phase=completed")
    expect(page.locator("#f-status")).to_have_value("completed")
    expect(page.get_by_role("table", name="Runs").locator("tbody tr .badge")).to_have_text("completed", timeout=30_000)
    page.locator("#f-status").select_option("failed")
    expect(page.get_by_role("table", name="Runs")).to_contain_text("No run matches")
    assert _query(page.url) == {"phase": ["failed"]}
    page.locator("#f-schedule").fill("job_nope")
    page.locator("#f-schedule").press("Enter")
    expect(page).to_have_url(re.compile(r"job_id=job_nope"))
    assert _query(page.url) == {"phase": ["failed"], "job_id": ["job_nope"]}
