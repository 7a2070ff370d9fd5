"""Seed 002, "Jobs" through ``product.jobs``: create, update and fetch job definitions, in Python; then run the
job, change the event it runs (an updatable field), and look for failures (the seed's best practices).

The job's ACTION ``action_tag`` (and ``other_action``, for the update) is declared by the product ``shop`` as an
HTTP request to a local server.

    python examples/seed_002_product_jobs.py        # on $DUCTAPE_STORE (a fresh store), else a temporary file
"""

from __future__ import annotations

from ductape_jobs import Ductape, IProductJob, JobEventTypes, JobUpdate
from local_services import HttpRecorder, store_url

# the seed's `ductape.product` is the client's product: Ductape(product="shop") (or ductape.product("shop"))
with HttpRecorder() as api, Ductape(store_url(), product="shop") as ductape:
    ductape.products.add(
        {
            "tag": "shop",
            "envs": {"prd": {}},
            "apps": {
                "example": {
                    "envs": {"prd": {"base_url": api.url}},
                    "actions": {
                        "action_tag": {"method": "POST", "path": "/action"},
                        "other_action": {"method": "POST", "path": "/other"},
                    },
                }
            },
        }
    )

    # ## Creating a Job
    details = IProductJob(
        name="Example Job",
        tag="example_job",
        event_type=JobEventTypes.ACTION,  # event type to execute
        event_tag="action_tag",  # tag of the event to run
        executions=5,  # set to 0 for unlimited executions
        intervals=60000,  # interval in milliseconds
    )
    ductape.product.jobs.create(details)  # the seed's `await ductape.product.jobs.create(details)`

    # ## Updating a Job
    tag = "example_job"
    data = JobUpdate(name="Updated Job Name", executions=10, intervals=120000)  # the seed's Partial<IProductJob>
    ductape.product.jobs.update(tag, data)

    # ## Fetching Jobs
    jobs = ductape.product.jobs.fetchAll()
    job = ductape.product.jobs.fetch("example_job")
    print("jobs:", [j.tag for j in jobs], "of product", job.product_tag)
    print(f"example_job: name={job.name!r} executions={job.executions} intervals={job.intervals}")

    # Not in the seed's code: run it now; then change the event it runs (event_tag is updatable) and run it again.
    made = ductape.product.jobs.schedule({"env": "prd", "event": "example_job"})  # product_tag: the client's
    ductape.drain()
    ductape.product.jobs.update(tag, {"event_tag": "other_action"})
    ductape.job.trigger(made.job_id)  # one extra run now, outside the cadence
    ductape.drain()
    for request in api.requests:
        print(f"received {request.method} {request.path}")

    # Best practice: "Monitor job execution and failures".
    runs = ductape.job.runs(job_tag="example_job")
    print("phases:", sorted(str(r.phase) for r in runs))
    print("failed runs:", len(ductape.job.runs(phase="failed")))
