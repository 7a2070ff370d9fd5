"""Seed 003's reminder, end to end: a feature whose JOB event schedules ``send_notification`` with piped
``$Input{...}`` (and ``$Sequence{...}``) values; the job then sends a push (local HTTP server) and an email
(local SMTP server, aiosmtpd)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from feature_kit import SESSION_SECRET

from ductape_jobs import Ductape, FakeClock, RunPhase, ValidationError
from ductape_jobs.features import EventStatus, FeatureRunStatus
from ductape_jobs.products import Products
from support import Recorder, Smtp, start_smtp

# The seed's job event, verbatim but for the subject, which also pipes from an earlier event.
SEND_REMINDER_JOB: dict[str, Any] = {
    "type": "JOB",
    "event": "send_notification",
    "input": {
        "push_notification": {
            "title": "Reminder Alert",
            "body": "This is a reminder for your upcoming event.",
            "data": {"eventId": "$Input{event_id}", "reminderType": "upcoming_event"},
            "device_token": "$Input{device_token}",
        },
        "email": {
            "to": "$Input{email}",
            "subject": "Event Reminder: $Sequence{lookup}{find_event}{title}",
            "body": "Hello! This is a reminder for your upcoming event on $Input{date}.",
        },
    },
    "retries": 3,
    "allow_fail": False,
}


def product(http: str, smtp_port: int, job_event: dict[str, Any]) -> dict[str, Any]:
    return {
        "tag": "events-app",
        "envs": {
            "dev": {
                "session_secret": SESSION_SECRET,
                "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "Events <events@example.com>"},
                "push": {"url": f"{http}/push", "auth": {"kind": "bearer", "token": "push-key"}},
            }
        },
        "notifications": {  # what the job sends: its input's two parts, as the seed lays them out
            "reminder": {
                "push": {
                    "tokens": "$Input{push_notification}{device_token}",
                    "title": "$Input{push_notification}{title}",
                    "body": "$Input{push_notification}{body}",
                    "data": "$Input{push_notification}{data}",
                },
                "email": {
                    "to": "$Input{email}{to}",
                    "subject": "$Input{email}{subject}",
                    "text": "$Input{email}{body}",
                },
            }
        },
        "features": {
            "event_reminder": {
                "input": {"event_id": "string", "device_token": "string", "email": "string", "date": "string"},
                "required": ["event_id", "device_token", "email", "date"],
                "sequence": [
                    {
                        "sequence_tag": "lookup",
                        "events": [{"type": "FUNCTION", "event": "find_event", "input": {"id": "$Input{event_id}"}}],
                    },
                    {"sequence_tag": "remind", "parents": ["lookup"], "events": [job_event]},
                ],
            }
        },
    }


@dataclass
class Events:
    dt: Ductape
    http: Recorder
    smtp: Smtp


@pytest.fixture
def events(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Events]:
    http = Recorder()
    http.thread.start()
    controller, smtp = start_smtp()
    job_event = getattr(request, "param", SEND_REMINDER_JOB)
    spec = product(http.url, smtp.port, job_event)
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=FakeClock(), products=Products([spec]))  # type: ignore[list-item]
    dt.function("find_event")(lambda input, ctx: {"id": input["id"], "title": "Launch party"})
    dt.job.create(
        {"name": "Send notification", "tag": "send_notification", "event_type": "NOTIFICATION", "event_tag": "reminder"}
    )
    yield Events(dt, http, smtp)
    dt.close()
    controller.stop()
    http.server.shutdown()
    http.server.server_close()


INPUT = {"event_id": "ev-77", "device_token": "device-abc", "email": "ada@example.com", "date": "2026-05-01"}


def test_the_reminder_feature_schedules_the_job_that_sends_push_and_email(events: Events) -> None:
    run = events.dt.feature.run("event_reminder", env="dev", product_tag="events-app", input=INPUT)
    assert run.status is FeatureRunStatus.COMPLETED, run.error
    job_event = run.event("remind", "send_notification")
    assert job_event.status is EventStatus.COMPLETED and job_event.job_id is not None
    assert job_event.output is None and "remind" not in run.output  # a job event is void
    schedule = events.dt.job.get(job_event.job_id)
    assert schedule.job_tag == "send_notification" and schedule.retries == 3 and not schedule.recurring
    assert schedule.input["email"] == {
        "to": "ada@example.com",
        "subject": "Event Reminder: Launch party",
        "body": "Hello! This is a reminder for your upcoming event on 2026-05-01.",
    }
    assert events.http.seen == [] and events.smtp.mailbox.envelopes == []  # scheduled, not sent yet

    assert events.dt.drain().completed == 1
    (job_run,) = events.dt.job.runs(job_id=job_event.job_id)
    assert job_run.phase is RunPhase.COMPLETED and set(job_run.output) == {"push", "email"}
    (push,) = events.http.seen
    assert push.path == "/push" and push.headers["authorization"] == "Bearer push-key"
    sent = json.dumps(push.json())
    assert "device-abc" in sent and "Reminder Alert" in sent and "This is a reminder for your upcoming event." in sent
    assert '"eventId": "ev-77"' in sent and '"reminderType": "upcoming_event"' in sent
    mail = events.smtp.mailbox.message()
    assert mail["To"] == "ada@example.com" and mail["Subject"] == "Event Reminder: Launch party"
    body = mail.get_body(("plain",))
    assert body is not None and "upcoming event on 2026-05-01." in body.get_content()


@pytest.mark.parametrize("events", [{**SEND_REMINDER_JOB, "repeat": {"every": 86_400_000, "limit": 2}}], indirect=True)
def test_a_job_event_with_repeat_schedules_that_cadence(events: Events) -> None:
    run = events.dt.feature.run("event_reminder", env="dev", product_tag="events-app", input=INPUT)
    schedule = events.dt.job.get(run.event("remind", "send_notification").job_id or "")
    assert schedule.recurring and schedule.every == timedelta(days=1) and schedule.limit == 2


def test_a_missing_input_key_is_refused_before_anything_is_scheduled(events: Events) -> None:
    with pytest.raises(ValidationError) as err:
        events.dt.feature.run("event_reminder", env="dev", product_tag="events-app", input={**INPUT, "date": 5})
    assert err.value.field == "input.date"
    assert events.dt.job.list() == [] and events.dt.feature.runs() == []


def test_seed_003_runs_as_written_with_channels_that_take_the_input(tmp_path: Path) -> None:
    """The product declares the notification's channels without templates (``true``): the job's input,
    exactly as seed 003 writes it, is what is sent."""
    http = Recorder()
    http.thread.start()
    controller, smtp = start_smtp()
    spec = product(http.url, smtp.port, SEND_REMINDER_JOB)
    spec["notifications"] = {"reminder": {"push": True, "email": True}}
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=FakeClock(), products=Products([spec]))  # type: ignore[list-item]
    try:
        dt.function("find_event")(lambda input, ctx: {"id": input["id"], "title": "Launch party"})
        dt.job.create(
            {"name": "Send", "tag": "send_notification", "event_type": "NOTIFICATION", "event_tag": "reminder"}
        )
        run = dt.feature.run("event_reminder", env="dev", product_tag="events-app", input=INPUT)
        assert run.status is FeatureRunStatus.COMPLETED, run.error
        assert dt.drain().completed == 1
        (push,) = http.seen
        assert push.json() == {
            "tokens": ["device-abc"],
            "title": "Reminder Alert",
            "body": "This is a reminder for your upcoming event.",
            "data": {"eventId": "ev-77", "reminderType": "upcoming_event"},
        }
        mail = smtp.mailbox.message()
        assert mail["To"] == "ada@example.com" and mail["Subject"] == "Event Reminder: Launch party"
        body = mail.get_body(("plain",))
        assert body is not None and "upcoming event on 2026-05-01." in body.get_content()
        # schedule() checks the input's shape at the door: nothing is stored when a channel's fields are missing
        with pytest.raises(ValidationError) as caught:
            dt.job.schedule({"env": "dev", "product_tag": "events-app", "event": "send_notification",
                             "input": {"email": {"to": "a@b.c"}, "push_notification": {"title": "t"}}})  # fmt: skip
        assert caught.value.field == "input.email.subject" and caught.value.rule == "is required"
    finally:
        dt.close()
        controller.stop()
        http.server.shutdown()
        http.server.server_close()
