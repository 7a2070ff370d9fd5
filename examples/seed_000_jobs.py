"""Seed 000, "Jobs": create, update and fetch job definitions, in Python; then run them.

The seed's two jobs run ACTIONs (``generate_report``, ``sync_stock``) without saying what those are; here the
product ``shop`` declares them as HTTP requests to a local server, so that scheduling the jobs shows them run.

    python examples/seed_000_jobs.py        # on $DUCTAPE_STORE (a fresh store), else a temporary file
"""

from __future__ import annotations

from ductape_jobs import Ductape, JobEventTypes
from local_services import HttpRecorder, store_url

with HttpRecorder() as api, Ductape(store_url()) as ductape:
    ductape.products.add(
        {
            "tag": "shop",
            "envs": {"prd": {}},
            "apps": {
                "reports": {
                    "envs": {"prd": {"base_url": api.url}},
                    "actions": {"generate_report": {"method": "POST", "path": "/reports"}},
                },
                "inventory": {
                    "envs": {"prd": {"base_url": api.url}},
                    "actions": {"sync_stock": {"method": "POST", "path": "/stock/sync"}},
                },
            },
        }
    )

    # ## Quick Example
    ductape.job.create(
        {
            "name": "Daily Report",
            "tag": "daily-report",
            "event_type": JobEventTypes.ACTION,
            "event_tag": "generate_report",
            "executions": 0,  # 0 = unlimited
            "intervals": 86400000,  # 24 hours
        }
    )

    # ## Creating a Job
    ductape.job.create(
        {
            "name": "Sync Inventory",
            "tag": "sync-inventory",
            "event_type": JobEventTypes.ACTION,
            "event_tag": "sync_stock",
            "executions": 0,
            "intervals": 3600000,  # Every hour
        }
    )

    # ## Updating a Job
    ductape.job.update("daily-report", {"name": "Weekly Report", "intervals": 604800000})  # 7 days

    # ## Fetching Jobs
    jobs = ductape.job.fetch_all()  # Get all jobs (the seed's spelling, fetchAll(), works too)
    job = ductape.job.fetch("daily-report")  # Get specific job

    print("jobs:", ", ".join(sorted(j.tag for j in jobs)))
    print(f"daily-report: name={job.name!r} event_type={job.event_type.name} intervals={job.intervals}")

    # Not in the seed: schedule each job (its own cadence: it runs now, then every `intervals`) and run what is due.
    for tag in ("daily-report", "sync-inventory"):
        ductape.job.schedule({"env": "prd", "product_tag": "shop", "event": tag})
    print("drain:", ductape.drain())
    for run in sorted(ductape.job.runs(), key=lambda r: r.job_tag):
        print(f"run {run.job_tag}: {run.phase} (output status {run.output['status']})")
    for request in sorted(api.requests, key=lambda r: r.path):
        print(f"received {request.method} {request.path}")
