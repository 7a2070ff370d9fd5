"""Seed 004, "Scheduling Jobs": every ``ductape.job.schedule({...})`` of the seed, in Python, then run on a
sandbox clock (``ductape_jobs.testing.Sandbox``) that starts on 2023-12-31 at 12:00 UTC, so that the seed's
dates are still ahead (``start_at: 1704067200`` is 2024-01-01 00:00 UTC; ``endDate`` is the end of 2025) and two
years pass in seconds.

The seed names only the jobs. Around them, each product the seed names declares its job's event: emails
(``send_welcome_email``, ``send_digest``) go to a local SMTP server, HTTP actions (``process_payment``,
``send_reminder``) to a local HTTP server, and the rest are Python functions that count their runs.
``send_digest`` reads ``$Session{user}{...}``: its product declares the session ``user-session`` and the token is
one that ``ductape.session.start`` issued (the seed's ``'eyJhbGciOi...'`` is elided).

    python examples/seed_004_scheduling.py      # on $DUCTAPE_STORE (a fresh store), else a temporary file
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from ductape_jobs import JobEventTypes, RunContext
from ductape_jobs.testing import Sandbox
from local_services import HttpRecorder, MailServer, store_url

SECRET = "a-session-secret-of-at-least-32-bytes!"


def products(http: str, smtp_port: int) -> list[dict[str, Any]]:
    prd = {"prd": {"smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "Jobs <jobs@example.com>"}}}
    app = {"envs": {"prd": {"base_url": http}}}
    return [
        {
            "tag": "my-app",
            "envs": prd,
            "notifications": {
                "welcome": {"email": {"to": "$Input{email}", "subject": "Welcome", "text": "Hi $Input{userId}!"}}
            },
        },
        {
            "tag": "billing",
            "envs": ["prd"],
            "apps": {
                "payments": {
                    **app,
                    "actions": {
                        "charge": {
                            "method": "POST",
                            "path": "/payments",
                            "body": {"order": "$Input{orderId}", "amount": "$Input{amount}"},
                        }
                    },
                }
            },
        },
        {"tag": "marketing", "envs": ["prd"]},
        {"tag": "reports", "envs": ["prd"]},
        {"tag": "sync", "envs": ["prd"]},
        {
            "tag": "reminders",
            "envs": ["prd"],
            "apps": {
                "crm": {
                    **app,
                    "actions": {"remind": {"method": "POST", "path": "/reminders", "body": {"user": "$Input{userId}"}}},
                }
            },
        },
        {"tag": "promo", "envs": ["prd"]},
        {
            "tag": "notifications",
            "envs": {"prd": {**prd["prd"], "session_secret": SECRET}},
            "sessions": {
                "user-session": {"name": "User", "schema": {"user": "object"}, "selector": "$Session{user}{id}"}
            },
            "notifications": {
                "digest": {"email": {"to": "$Input{email}", "subject": "Your digest", "text": "for $Input{userId}"}}
            },
        },
    ]


JOBS = {  # job tag -> (event type, event tag)
    "send_welcome_email": (JobEventTypes.NOTIFICATION, "welcome"),
    "process_payment": (JobEventTypes.ACTION, "charge"),
    "send_campaign": (JobEventTypes.FUNCTION, "send_campaign"),
    "generate_daily_report": (JobEventTypes.FUNCTION, "generate_daily_report"),
    "sync_inventory": (JobEventTypes.FUNCTION, "sync_inventory"),
    "send_reminder": (JobEventTypes.ACTION, "remind"),
    "check_promo_status": (JobEventTypes.FUNCTION, "check_promo_status"),
    "send_digest": (JobEventTypes.NOTIFICATION, "digest"),
}

with (
    HttpRecorder() as api,
    MailServer() as mail,
    Sandbox(store_url(), start=datetime(2023, 12, 31, 12, tzinfo=UTC)) as ductape,
):
    for product in products(api.url, mail.port):
        ductape.products.add(product)
    for tag, (event_type, event_tag) in JOBS.items():
        ductape.job.create({"name": tag, "tag": tag, "event_type": event_type, "event_tag": event_tag})

    calls: list[str] = []

    def function(input: dict[str, Any], ctx: RunContext) -> None:
        calls.append(f"{ctx.job_tag} ran for {ctx.scheduled_at:%Y-%m-%d %H:%M} UTC with {input}")

    for tag in ("send_campaign", "generate_daily_report", "sync_inventory", "check_promo_status"):
        ductape.function(tag)(function)

    # ## Quick Example: schedule a job to run immediately
    ductape.job.schedule(
        {
            "env": "prd",
            "product_tag": "my-app",
            "event": "send_welcome_email",
            "start_at": 0,  # 0 means run immediately
            "retries": 3,
            "input": {"userId": "user_123", "email": "john@example.com"},
        }
    )

    # ### Run immediately
    ductape.job.schedule(
        {
            "env": "prd",
            "product_tag": "billing",
            "event": "process_payment",
            "start_at": 0,
            "retries": 3,
            "input": {"orderId": "order_456", "amount": 99.99},
        }
    )

    # ### Schedule for a specific time
    ductape.job.schedule(
        {
            "env": "prd",
            "product_tag": "marketing",
            "event": "send_campaign",
            "start_at": 1704067200,  # Unix timestamp
            "retries": 2,
            "input": {"campaignId": "camp_123", "audience": "active_users"},
        }
    )

    # ### Recurring job with cron: run every day at 9 AM
    ductape.job.schedule(
        {
            "env": "prd",
            "product_tag": "reports",
            "event": "generate_daily_report",
            "start_at": 0,
            "retries": 2,
            "input": {},
            "repeat": {"cron": "0 9 * * *", "tz": "America/New_York"},
        }
    )

    # ### Recurring job with interval: run every 24 hours
    ductape.job.schedule(
        {
            "env": "prd",
            "product_tag": "sync",
            "event": "sync_inventory",
            "start_at": 0,
            "retries": 3,
            "input": {},
            "repeat": {"every": 86400000},  # 24 hours in milliseconds
        }
    )

    # ### Limited recurring job: run weekly, but only 4 times
    ductape.job.schedule(
        {
            "env": "prd",
            "product_tag": "reminders",
            "event": "send_reminder",
            "start_at": 0,
            "retries": 2,
            "input": {"userId": "user_123"},
            "repeat": {"every": 604800000, "limit": 4},  # 7 days
        }
    )

    # ### Recurring job until a date: run daily until end of year
    ductape.job.schedule(
        {
            "env": "prd",
            "product_tag": "promo",
            "event": "check_promo_status",
            "start_at": 0,
            "retries": 1,
            "input": {},
            "repeat": {"every": 86400000, "endDate": "2025-12-31T23:59:59Z"},
        }
    )

    # ### With session data
    token = ductape.session.start(
        "user-session",
        {"user": {"id": "user_123", "email": "john@example.com"}},
        env="prd",
        product_tag="notifications",
    )
    ductape.job.schedule(
        {
            "env": "prd",
            "product_tag": "notifications",
            "event": "send_digest",
            "start_at": 0,
            "retries": 3,
            "input": {"userId": "$Session{user}{id}", "email": "$Session{user}{email}"},
            "session": {"tag": "user-session", "token": token.token},
        }
    )

    # ## Common Cron Patterns: the next two fire times of each (job.preview stores nothing)
    for pattern in ("0 * * * *", "0 9 * * *", "0 0 * * 0", "0 0 1 * *", "*/15 * * * *"):
        times = ductape.job.preview({"cron": pattern}, count=2)
        print(f"cron {pattern!r}: " + ", ".join(f"{t:%a %Y-%m-%d %H:%M}" for t in times))

    # The first two days, as they happen:
    ductape.advance(days=2)
    print("\n".join(calls))
    for request in api.requests:
        print(f"received {request.method} {request.path} {request.json()}")
    for message in mail.messages:
        print(f"mail to {message['To']}: {message['Subject']} ({message.get_content().strip()})")

    # Then to 2026-01-02: what each schedule did.
    print("two years later:")
    ductape.advance(datetime(2026, 1, 2, tzinfo=UTC) - ductape.now())
    for schedule in sorted(ductape.job.list(limit=100), key=lambda s: s.job_tag):
        runs = ductape.job.runs(job_id=schedule.id, limit=10_000)
        phases = Counter(str(r.phase) for r in runs)
        last = max(r.scheduled_at for r in runs)
        hours = sorted({r.scheduled_at.hour for r in runs})  # cron in New York: 14:00 UTC in winter, 13:00 in summer
        print(f"{schedule.job_tag}: {schedule.status}, runs {dict(phases)}, last {last:%Y-%m-%d %H:%M}, hours {hours}")
