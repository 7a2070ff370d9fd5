"""Every code example of the seeds, in Python (examples/seed_*.py), runs as a script and does what the seed says:
each one is run as ``python examples/<script>`` on a fresh SQLite store from ``$DUCTAPE_STORE``, and what it
printed (the runs' phases, what the local HTTP and SMTP servers received) is checked here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, tmp_path: Path) -> str:
    env = {**os.environ, "DUCTAPE_STORE": f"sqlite:///{tmp_path / 'jobs.db'}"}
    env.pop("DUCTAPE_PRODUCT_FILE", None)
    env.pop("DUCTAPE_APP", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "jobs.db").exists()  # it ran on the store it was given
    return done.stdout


def test_every_seed_has_its_example() -> None:
    seeds = {f"seed_{n:03d}" for n in range(5)}
    assert {p.name[:8] for p in EXAMPLES.glob("seed_*.py")} == seeds


def test_seed_000_jobs(tmp_path: Path) -> None:
    out = run_example("seed_000_jobs.py", tmp_path)
    assert "jobs: daily-report, sync-inventory" in out
    assert "daily-report: name='Weekly Report' event_type=ACTION intervals=604800000" in out  # the update
    assert "run daily-report: completed (output status 200)" in out
    assert "run sync-inventory: completed (output status 200)" in out
    assert "received POST /reports" in out and "received POST /stock/sync" in out


def test_seed_001_older_spelling(tmp_path: Path) -> None:
    out = run_example("seed_001_jobs_older_spelling.py", tmp_path)
    assert "runs before the update: 3" in out  # start_at in the past: now, then every minute
    assert "jobs: ['example_job']" in out
    assert "example_job: name='Updated Job Name' executions=10 intervals=120000" in out
    # 3 runs a minute apart, then every 2 minutes from the last one, until 10 in all
    assert "run times: 00:00 00:01 00:02 00:04 00:06 00:08 00:10 00:12 00:14 00:16" in out
    assert "phases: ['completed']" in out
    assert "schedule: completed" in out
    assert "requests received: 10" in out


def test_seed_002_product_jobs(tmp_path: Path) -> None:
    out = run_example("seed_002_product_jobs.py", tmp_path)
    assert "jobs: ['example_job'] of product shop" in out  # ductape.product.jobs: the product's own job
    assert "example_job: name='Updated Job Name' executions=10 intervals=120000" in out
    assert "received POST /action\nreceived POST /other" in out  # event_tag updated between the two runs
    assert "phases: ['completed', 'completed']" in out
    assert "failed runs: 0" in out


def test_seed_003_job_event_in_a_feature(tmp_path: Path) -> None:
    out = run_example("seed_003_job_events.py", tmp_path)
    assert "feature run: completed; event send_notification (job): completed" in out
    assert "job event output: None" in out
    assert "job run send_notification: completed, retries allowed 3" in out
    assert (
        "push: Reminder Alert | This is a reminder for your upcoming event. | "
        "{'eventId': 'ev_42', 'reminderType': 'upcoming_event'} | ['device-abc']"
    ) in out
    assert (
        "email: ada@example.com | Event Reminder | Hello! This is a reminder for your upcoming event on 2026-05-01."
    ) in out


def test_seed_004_scheduling(tmp_path: Path) -> None:
    out = run_example("seed_004_scheduling.py", tmp_path)
    assert "cron '0 0 * * 0': Sun 2024-01-07 00:00, Sun 2024-01-14 00:00" in out
    assert "cron '*/15 * * * *': Sun 2023-12-31 12:00, Sun 2023-12-31 12:15" in out
    # start_at 1704067200: exactly then; the cron's first day at 9 in New York (EST)
    assert (
        "send_campaign ran for 2024-01-01 00:00 UTC with {'campaignId': 'camp_123', 'audience': 'active_users'}" in out
    )
    assert "generate_daily_report ran for 2023-12-31 14:00 UTC with {}" in out
    assert "received POST /payments {'order': 'order_456', 'amount': 99.99}" in out
    assert "received POST /reminders {'user': 'user_123'}" in out
    assert "mail to john@example.com: Welcome (Hi user_123!)" in out
    assert "mail to john@example.com: Your digest (for user_123)" in out  # $Session{user}{...}
    summary = dict(re.findall(r"^(\w+): (\w+, runs .*)$", out, flags=re.MULTILINE))
    assert summary == {
        "check_promo_status": "completed, runs {'completed': 732}, last 2025-12-31 12:00, hours [12]",
        "generate_daily_report": "active, runs {'completed': 733}, last 2026-01-01 14:00, hours [13, 14]",
        "process_payment": "completed, runs {'completed': 1}, last 2023-12-31 12:00, hours [12]",
        "send_campaign": "completed, runs {'completed': 1}, last 2024-01-01 00:00, hours [0]",
        "send_digest": "completed, runs {'completed': 1}, last 2023-12-31 12:00, hours [12]",
        "send_reminder": "completed, runs {'completed': 4}, last 2024-01-21 12:00, hours [12]",
        "send_welcome_email": "completed, runs {'completed': 1}, last 2023-12-31 12:00, hours [12]",
        "sync_inventory": "active, runs {'completed': 733}, last 2026-01-01 12:00, hours [12]",
    }
