"""Limits and priorities through the Python API (a sandbox: SQLite and a fake clock): product resources, a job's
own limits, validation that writes nothing, priorities on a schedule request, and what ``ductape.resources``
shows. The real-process proofs on PostgreSQL are in ``test_limits_processes.py``."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ductape_jobs.client as client_module
from ductape_jobs import Ductape, ValidationError
from ductape_jobs.cli.main import app as cli
from ductape_jobs.products import Products
from ductape_jobs.products.watch import ResourceWatch
from ductape_jobs.testing import Sandbox

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SHOP: dict[str, Any] = {"tag": "shop", "envs": ["prd"], "resources": {"crm-api": {"concurrency": 1, "rate": "2/min"}}}


def sandbox() -> Sandbox:
    return Sandbox(start=T0, products=Products([SHOP]))  # type: ignore[list-item]


def fn_job(tag: str, **extra: Any) -> dict[str, Any]:
    return {"name": tag, "tag": tag, "event_type": "FUNCTION", "event_tag": "work", **extra}


def test_a_product_resource_holds_runs_across_jobs_and_they_wait_without_spending_retries() -> None:
    dt = sandbox()
    started: list[tuple[str, datetime]] = []
    dt.function("work")(lambda input, ctx: started.append((input["n"], dt.now())))
    shop = dt.product("shop").jobs
    shop.create(fn_job("sync-a", resources=["crm-api"]))
    shop.create(fn_job("sync-b", resources=["crm-api"]))
    for n in range(3):
        dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "sync-a", "input": {"n": f"a{n}"}})
        dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "sync-b", "input": {"n": f"b{n}"}})
    dt.drain()
    assert len(started) == 2  # rate 2/min
    (use,) = dt.resources.use("shop")
    assert (use.limit.name, use.recent_starts, use.waiting) == ("crm-api", 2, 4)
    waiting = dt.resources.waiting()
    assert len(waiting) == 4 and all("of 'crm-api'" in (r.waiting_on or "") for r in waiting)
    assert all(r.attempt == 0 and r.retry_count == 0 for r in waiting)
    dt.advance(minutes=3)
    assert len(started) == 6
    times = [t for _, t in started]
    for t in times:  # never more than 2 starts in any minute
        assert sum(1 for s in times if t <= s < t + timedelta(minutes=1)) <= 2
    assert dt.resources.waiting() == []


def test_a_job_s_own_concurrency_and_a_schedule_s_priority() -> None:
    dt = sandbox()
    order: list[str] = []
    dt.function("work")(lambda input, ctx: order.append(input["n"]))
    job = dt.product("shop").jobs.create(fn_job("mail", concurrency=1, rate="100/s", priority=5))
    assert (job.concurrency, job.rate, job.priority) == (1, "100/s", 5)
    for n, priority in (("low", -10), ("default", None), ("high", 50)):
        req: dict[str, Any] = {"env": "prd", "product_tag": "shop", "event": "mail", "input": {"n": n}}
        if priority is not None:
            req["priority"] = priority
        dt.job.schedule(req)
    dt.drain()
    assert order == ["high", "default", "low"]
    assert {r.priority for r in dt.job.runs(job_tag="mail")} == {50, 5, -10}


@pytest.mark.parametrize(
    ("details", "field"),
    [
        (fn_job("x", resources=["nope"]), "resources[0]"),
        (fn_job("x", concurrency=0), "concurrency"),
        (fn_job("x", concurrency=-1), "concurrency"),
        (fn_job("x", rate="0/s"), "rate"),
        (fn_job("x", rate="fast"), "rate"),
        (fn_job("x", priority=101), "priority"),
    ],
)
def test_bad_limits_on_a_job_name_the_field_and_write_nothing(details: dict[str, Any], field: str) -> None:
    dt = sandbox()
    with pytest.raises(ValidationError) as err:
        dt.product("shop").jobs.create(details)
    assert err.value.field == field
    assert dt.job.fetch_all() == [] and dt.resources.use() == []


def test_bad_declarations_and_priorities_name_the_field() -> None:
    for resources, field in (
        ({"crm": {"concurrency": -2}}, "resources.crm.concurrency"),
        ({"crm": {"rate": "0/s"}}, "resources.crm.rate"),
        ({"crm": {}}, "resources.crm"),
        ({"crm": {"concurrency": True}}, "resources.crm.concurrency"),  # was a limit of 1
        ({"crm": {"concurrency": "4"}}, "resources.crm.concurrency"),
    ):
        with pytest.raises(ValidationError) as err:
            Products().add({"tag": "shop", "resources": resources})
        assert err.value.field.endswith(field)
    for expiry in (10**12, 10**400):  # a session's token lifetime: past a date's range it was a 500 (OverflowError)
        with pytest.raises(ValidationError) as err:
            Products().add({"tag": "shop", "sessions": {"user": {"name": "User", "expiry": expiry}}})
        assert err.value.field.endswith("sessions.user.expiry") and "<=" in err.value.rule
    dt = sandbox()
    dt.product("shop").jobs.create(fn_job("mail"))
    with pytest.raises(ValidationError) as err:
        dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "mail", "priority": -101})
    assert err.value.field == "priority"
    assert dt.job.list() == []
    with pytest.raises(ValidationError) as err:
        dt.job.create(fn_job("shared", resources=["crm-api"]))  # a shared job has no product's resources
    assert err.value.field == "resources"


def test_the_cli_lists_resources_and_the_runs_they_hold(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    dt = Ductape(store, products=Products([SHOP]))  # type: ignore[list-item]
    dt.product("shop").jobs.create(fn_job("sync", resources=["crm-api"]))
    for _ in range(2):
        dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "sync"})
    dt.store.acquire_runs("w1", 10, timedelta(seconds=30), dt.clock.now())  # one starts, one waits
    dt.close()
    result = CliRunner().invoke(cli, ["resources", "--store", store, "--waiting", "--json"], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (use,) = data["resources"]
    assert (use["name"], use["concurrency"], use["rate"], use["running"], use["waiting"]) == ("crm-api", 1, "2/m", 1, 1)
    (held,) = data["waiting"]
    assert "concurrency of 'crm-api'" in held["waiting_on"]
    table = CliRunner().invoke(
        cli, ["resources", "--store", store, "--waiting"], env={"NO_COLOR": "1", "COLUMNS": "200"}
    )
    assert table.exit_code == 0 and "crm-api" in table.output and "Waiting on a limit (1)" in table.output


JOB_CREATE = ["job", "create", "--event-type", "FUNCTION", "--event-tag", "work"]


def test_the_cli_creates_a_limited_job_and_schedules_with_a_priority(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    base = ["--store", store, "--json"]
    made = CliRunner().invoke(
        cli,
        [
            *JOB_CREATE,
            "--name",
            "M",
            "--tag",
            "mail",
            "--concurrency",
            "2",
            "--rate",
            "10 per second",
            "--priority",
            "7",
            *base,
        ],
    )
    assert made.exit_code == 0, made.output
    job = json.loads(made.output)
    assert (job["concurrency"], job["rate"], job["priority"]) == (2, "10/s", 7)
    bad = CliRunner().invoke(
        cli,
        [*JOB_CREATE, "--name", "X", "--tag", "x", "--concurrency", "0", *base],
    )
    assert bad.exit_code == 2 and "concurrency" in bad.output
    sent = CliRunner().invoke(
        cli, ["schedule", "--event", "mail", "--env", "prd", "--product-tag", "p", "--priority", "9", *base]
    )
    assert sent.exit_code == 0, sent.output
    dt = Ductape(store)
    (run,) = dt.job.runs(job_tag="mail")
    assert run.priority == 9
    dt.close()


def product_file(path: Path, concurrency: int, extra: str = "") -> None:
    head = "products:\n  - tag: shop\n    envs: [prd]\n    resources:\n"
    path.write_text(f"{head}      crm-api: {{concurrency: {concurrency}}}\n{extra}")
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp, stamp + concurrency * 10**9))  # a distinct time, whatever the file system's grain


def test_a_product_file_s_edited_resources_are_read_again_and_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ductape.yaml"
    product_file(path, 1)
    products = Products.load(path)
    watch = ResourceWatch(products, path)
    assert watch.poll() is None  # unchanged
    product_file(path, 3, "      db: {rate: 5/s}\n")
    limits = {limit.name: limit for limit in watch.poll() or []}
    assert (limits["crm-api"].concurrency, str(limits["db"].rate)) == (3, "5/s")
    assert products.get("shop").resources["crm-api"].concurrency == 3  # jobs saved here are checked against it
    assert watch.poll() is None
    path.write_text("products: [{tag: shop, resources: {crm-api: {concurrency: 0}}}]")
    with pytest.raises(ValidationError) as err:
        watch.poll()
    assert err.value.field.startswith("product_file")
    assert watch.poll() is None  # reported once
    assert products.get("shop").resources["crm-api"].concurrency == 3  # the last good ones stay


@pytest.mark.parametrize("unreadable", [False, True])
def test_a_running_worker_stores_an_edited_product_file_s_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unreadable: bool
) -> None:
    """``unreadable``: an edit in between holds a value its YAML tag cannot make (``!!bool "..."``). PyYAML raised
    a KeyError, which ended the watch unseen: the next good edit was never stored."""
    monkeypatch.setattr(client_module, "RESOURCE_WATCH_EVERY", timedelta(milliseconds=20))
    path = tmp_path / "ductape.yaml"
    product_file(path, 1)
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", product_file=str(path))

    async def main() -> int | None:
        stop = asyncio.Event()
        worker = asyncio.create_task(dt.run_worker(stop, poll=timedelta(milliseconds=20)))
        try:
            for _ in range(250):  # up to 5 s for the worker to start and store the first limits
                await asyncio.sleep(0.02)
                if [u.limit.concurrency for u in dt.resources.use("shop")] == [1]:
                    break
            if unreadable:
                product_file(path, 2, '      db: {concurrency: !!bool "yes please"}\n')
                await asyncio.sleep(0.2)  # ten looks at it
            product_file(path, 4)
            for _ in range(250):
                await asyncio.sleep(0.02)
                (use,) = dt.resources.use("shop")
                if use.limit.concurrency != 1:
                    return use.limit.concurrency
            return None
        finally:
            stop.set()
            await worker

    try:
        assert asyncio.run(main()) == 4
    finally:
        dt.close()


def test_a_worker_whose_limited_run_ends_claims_the_next_in_the_transaction_that_records_it() -> None:
    dt = Sandbox(
        start=T0, products=Products([{"tag": "shop", "envs": ["prd"], "resources": {"db": {"concurrency": 1}}}])
    )  # type: ignore[list-item]
    dt.function("work")(lambda input, ctx: None)
    dt.product("shop").jobs.create(fn_job("load", resources=["db"]))
    for _ in range(3):
        dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "load"})
    refills: list[int] = []
    store, finish_and_acquire = dt.store, dt.store.finish_and_acquire

    def spy(*args: Any, **kwargs: Any) -> Any:
        recorded = finish_and_acquire(*args, **kwargs)
        refills.append(len(recorded.claimed))
        return recorded

    store.finish_and_acquire = spy  # type: ignore[method-assign]
    summary = dt.drain()
    assert summary.completed == 3
    assert refills[:2] == [1, 1]  # the second and third runs came with the outcomes of the first and second
