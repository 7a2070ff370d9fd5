"""Seed 001, "Jobs" in the older spelling: ``createJob``, ``updateJob``, ``fetchJobs``, ``fetchJob`` and a job's
``start_at``, in Python; then the job runs on its cadence (``executions`` runs, ``intervals`` ms apart).

The seed's ``productBuilder`` is ``ductape.job`` here; its methods take the seed's names as written. The job's
ACTION ``action_tag`` is declared by the product ``shop`` as an HTTP request to a local server. The clock is a
sandbox's (``ductape_jobs.testing.Sandbox``), so that minutes of the job's cadence pass at once.

    python examples/seed_001_jobs_older_spelling.py     # on $DUCTAPE_STORE (a fresh store), else a temporary file
"""

from __future__ import annotations

from datetime import UTC, datetime

from ductape_jobs import IProductJob, JobEventTypes, JobUpdate
from ductape_jobs.testing import Sandbox
from local_services import HttpRecorder, store_url

with HttpRecorder() as api, Sandbox(store_url(), start=datetime(2026, 1, 1, tzinfo=UTC)) as ductape:
    ductape.products.add(
        {
            "tag": "shop",
            "envs": {"prd": {}},
            "apps": {
                "example": {
                    "envs": {"prd": {"base_url": api.url}},
                    "actions": {"action_tag": {"method": "POST", "path": "/action"}},
                }
            },
        }
    )
    productBuilder = ductape.job  # the seed's name

    # ## Creating Jobs
    details = IProductJob(
        name="Example Job",  # name of job
        tag="example_job",  # unique job identifier
        event_type=JobEventTypes.ACTION,  # event type to execute
        event_tag="action_tag",  # tag of the event to run
        executions=5,  # set to 0 for unlimited executions
        intervals=60000,  # interval in milliseconds
        start_at=198766789,  # start time as a Unix timestamp (1976: already past, so "now")
    )
    productBuilder.createJob(details)

    # Not in the seed: schedule the job (no repeat: the job's own cadence) and let three minutes pass.
    made = ductape.job.schedule({"env": "prd", "product_tag": "shop", "event": "example_job"})
    ductape.advance(minutes=2)
    print("runs before the update:", len(ductape.job.runs(job_id=made.job_id)))

    # ## Updating Jobs
    tag = "example_job"
    data = JobUpdate(  # the seed's Partial<IProductJob>
        name="Updated Job Name",  # optional updated name
        executions=10,  # optional updated execution limit
        intervals=120000,  # optional updated interval
    )
    productBuilder.updateJob(tag, data)

    # ## Fetching Jobs
    jobs = productBuilder.fetchJobs()  # returns an array of all jobs
    job = productBuilder.fetchJob(tag)  # retrieves a specific job by tag
    print("jobs:", [j.tag for j in jobs])
    print(f"example_job: name={job.name!r} executions={job.executions} intervals={job.intervals}")

    # The schedule follows its job: from its last run on, every 2 minutes, until 10 runs in all.
    ductape.advance(minutes=30)
    runs = sorted(ductape.job.runs(job_id=made.job_id), key=lambda r: r.scheduled_at)
    print("run times:", " ".join(r.scheduled_at.strftime("%H:%M") for r in runs))
    print("phases:", sorted({str(r.phase) for r in runs}))
    print("schedule:", ductape.job.get(made.job_id).status)
    print("requests received:", len(api.requests))
