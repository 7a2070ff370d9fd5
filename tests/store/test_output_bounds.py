"""What a run records is bounded, on both stores: an output whose JSON is longer than ``MAX_OUTPUT_BYTES`` fails
its attempt for good with a ``ResultError`` naming both sizes (never the worker, never the other outcomes of its
batch), one at the bound is kept whole; an error text longer than ``ERROR_TEXT_CHARS`` is kept cut, its end marked.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from storekit import Backend
from test_contract import LEASE, MIN, T0, ok, outcomes, run_of, setup

from ductape_jobs import Ductape, FakeClock, RunContext
from ductape_jobs.errors import ERROR_TEXT_CHARS
from ductape_jobs.limits import MAX_OUTPUT_BYTES
from ductape_jobs.models import DrainSummary, RunPhase
from ductape_jobs.store import Outcome, Store
from support import recorded_batches

OVER = {"s": "x" * (MAX_OUTPUT_BYTES - 7)}  # {"s":"..."}: 8 characters around the text, one byte past the bound
AT = {"s": "x" * (MAX_OUTPUT_BYTES - 8)}  # exactly the bound
TOO_BIG = f"ResultError: the output is {MAX_OUTPUT_BYTES + 1:,} bytes of JSON; at most {MAX_OUTPUT_BYTES:,} are stored"


def test_an_output_past_the_bound_fails_its_attempt_and_not_the_batch(store: Store) -> None:
    _, (over, at, fine) = setup(store, T0 - 2 * MIN, T0 - MIN, T0)
    by_id = {r.id: r for r in store.acquire_runs("w1", 3, LEASE, T0)}
    store.finish_runs([ok(by_id[over], output=OVER), ok(by_id[at], output=AT), ok(by_id[fine], output=1)], T0)
    failed = run_of(store, over)
    assert (failed.phase, failed.output, failed.error, outcomes(store, over)) == (
        RunPhase.FAILED, None, TOO_BIG, ["failed"],
    )  # fmt: skip
    assert failed.attempts[0].error == TOO_BIG
    kept = run_of(store, at)
    assert kept.phase is RunPhase.COMPLETED and kept.output == AT  # whole
    assert (run_of(store, fine).phase, run_of(store, fine).output) == (RunPhase.COMPLETED, 1)


def test_an_outputs_size_is_counted_in_the_bytes_stored(store: Store) -> None:
    """Text outside ASCII is stored as ``\\u`` escapes: six bytes a character, counted so."""
    _, (run_id,) = setup(store, T0)
    (claimed,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([ok(claimed, output="é" * (MAX_OUTPUT_BYTES // 6))], T0)  # 174,762 characters, 1,048,574 bytes
    assert run_of(store, run_id).phase is RunPhase.COMPLETED
    _, (run_id,) = setup(store, T0)
    (claimed,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([ok(claimed, output="é" * (MAX_OUTPUT_BYTES // 6 + 1))], T0)
    assert run_of(store, run_id).error == (
        f"ResultError: the output is {MAX_OUTPUT_BYTES + 4:,} bytes of JSON; at most {MAX_OUTPUT_BYTES:,} are stored"
    )


@pytest.mark.parametrize("text", ["boom " * 1_000_000, "\x00\udce9" * 10_000])
def test_a_huge_error_text_is_stored_cut_with_its_end_marked(store: Store, text: str) -> None:
    """Whoever built it (the worker's own texts are cut already; a store's caller, a masking that lengthens them):
    its start is kept, ``ERROR_TEXT_CHARS`` characters in all, escapes included, and the mark names its length."""
    _, (run_id,) = setup(store, T0)
    (claimed,) = store.acquire_runs("w1", 1, LEASE, T0)
    store.finish_runs([Outcome(claimed.id, claimed.attempt, "w1", False, T0, 5, error=text)], T0)
    run = run_of(store, run_id)
    assert run.phase is RunPhase.FAILED and run.error is not None and len(run.error) == ERROR_TEXT_CHARS
    assert run.error.endswith(f" [... cut: {len(text):,} characters in all]")
    assert run.error.startswith(text[:100] if text.isascii() else "\\x00\\udce9\\x00")
    assert run.attempts[0].error == run.error


def test_an_output_past_the_bound_is_not_cached(store: Store) -> None:
    store.cache_put("big", OVER, T0 + LEASE, T0)
    store.cache_put("at", AT, T0 + LEASE, T0)
    assert store.cache_get("big", T0) == (False, None)
    assert store.cache_get("at", T0) == (True, AT)


# ------------------------------------------------------------------------------------------------ the engine


@pytest.fixture
def dt(backend: Backend) -> Iterator[Ductape]:
    d = Ductape(backend.url, clock=FakeClock(T0))
    yield d
    d.close()


def test_a_function_returning_past_the_bound_fails_for_good_and_the_worker_goes_on(dt: Ductape) -> None:
    """Its attempt fails (not retried: it would return as much again); the run recorded in the same batch completes,
    and the worker runs what comes after."""

    @dt.function("make")
    async def make(input: dict[str, Any], ctx: RunContext) -> Any:
        return {"big": OVER, "at": AT, "small": {"n": 1}}[input["size"]]

    dt.job.create({"name": "Make", "tag": "make", "event_type": "FUNCTION", "event_tag": "make"})
    batches = recorded_batches(dt)
    scheduled = dt.job.schedule_many(
        [{"env": "prd", "product_tag": "shop", "event": "make", "input": {"size": size}, "retries": 3}
         for size in ("big", "small")]
    )  # fmt: skip
    big, small = (s.job_id for s in scheduled)
    worker = dt.new_worker(concurrency=2)
    asyncio.run(worker.run_until_idle())
    assert (worker.summary.completed, worker.summary.failed) == (1, 1)  # as recorded: drain's exit code reads them
    (failed,) = dt.job.runs(job_id=big)
    (done,) = dt.job.runs(job_id=small)
    assert (failed.phase, failed.output, failed.error) == (RunPhase.FAILED, None, TOO_BIG)
    assert (done.phase, done.output) == (RunPhase.COMPLETED, {"n": 1})
    assert {failed.id, done.id} in batches  # recorded together
    assert dt.drain().ran == 0  # not retried
    again = dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "make", "input": {"size": "big"}})
    later = dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "make", "input": {"size": "at"}})
    assert dt.drain() == DrainSummary(completed=1, failed=1)
    assert dt.job.runs(job_id=again.job_id)[0].error == TOO_BIG
    (kept,) = dt.job.runs(job_id=later.job_id)
    assert (kept.phase, kept.output) == (RunPhase.COMPLETED, AT)


def test_a_function_raising_a_huge_message_records_it_cut_and_marked(
    dt: Ductape, caplog: pytest.LogCaptureFixture
) -> None:
    @dt.function("shout")
    def shout(input: dict[str, Any], ctx: RunContext) -> None:
        raise RuntimeError("A" * 5_000_000)

    dt.job.create({"name": "Shout", "tag": "shout", "event_type": "FUNCTION", "event_tag": "shout"})
    s = dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "shout"})
    dt.drain()
    (run,) = dt.job.runs(job_id=s.job_id)
    assert run.phase is RunPhase.FAILED and run.error is not None and len(run.error) == ERROR_TEXT_CHARS
    assert run.error.startswith("RuntimeError: AAAA")
    cut = re.search(r" \[\.\.\. cut: ([\d,]+) characters in all\]$", run.error)
    assert cut is not None and int(cut[1].replace(",", "")) > 5_000_000  # the message, and its traceback's
    (logged,) = [r.getMessage() for r in caplog.records if "failed for good" in r.getMessage()]
    assert logged.startswith(f"run {run.id} failed for good: RuntimeError: AAAA")  # its first line, not a list
    assert len(logged) < 4_100  # as stored: cut
