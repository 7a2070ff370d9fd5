"""A run whose FUNCTION fails in a way that cannot be read ends ``failed`` all the same, on both stores: an exception
whose ``__str__`` raises (or returns a ``str`` subclass whose methods do), one whose ``retryable`` raises, an output
kept as text whose ``__str__`` raises. Its error names the type and says its text could not be read; ``drain()``
returns, and the other runs claimed in the same batch complete (turning the exception into text raised, and left
them and it ``running``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from storekit import Backend
from test_contract import T0

from ductape_jobs import Ductape, FakeClock, RunContext
from ductape_jobs.errors import describe
from ductape_jobs.models import DrainSummary, RunPhase
from support import recorded_batches


class Unreadable(Exception):
    def __str__(self) -> str:
        raise ValueError("no str")


class Lying(str):
    def strip(self, chars: str | None = None) -> str:
        raise RuntimeError("no strip")


class LyingText(Exception):
    def __str__(self) -> str:
        return Lying("lying text")


class Unsure(Exception):
    @property
    def retryable(self) -> bool:
        raise RuntimeError("no answer")


class Moment(datetime):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_describe_never_raises() -> None:
    assert describe(Unreadable()) == "Unreadable: its text could not be read (str() raised ValueError)"
    assert describe(LyingText()) == "LyingText: lying text"
    try:
        raise Unreadable()
    except Unreadable as exc:
        text = describe(exc, trace=2)
    assert text.startswith("Unreadable: its text could not be read (str() raised ValueError)\n")
    assert "test_describe_never_raises" in text  # the traceback is still there


@pytest.fixture
def dt(backend: Backend) -> Iterator[Ductape]:
    d = Ductape(backend.url, clock=FakeClock(T0))
    yield d
    d.close()


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("unreadable", "Unreadable: its text could not be read (str() raised ValueError)"),
        ("lying", "LyingText: lying text"),
        ("unsure", "Unsure"),
        ("moment", "ResultError: the output cannot be stored (RuntimeError: no text)"),
    ],
)
def test_a_failure_that_cannot_be_read_fails_its_run_and_the_batch_completes(
    dt: Ductape, kind: str, error: str
) -> None:
    @dt.function("odd")
    async def odd(input: dict[str, Any], ctx: RunContext) -> Any:
        if input["kind"] == "moment":
            return {"at": Moment(2026, 3, 2)}
        raise {"unreadable": Unreadable, "lying": LyingText, "unsure": Unsure}[input["kind"]]()

    @dt.function("fine")
    async def fine(input: dict[str, Any], ctx: RunContext) -> Any:
        return {"n": input["n"]}

    dt.job.create({"name": "Odd", "tag": "odd", "event_type": "FUNCTION", "event_tag": "odd"})
    dt.job.create({"name": "Fine", "tag": "fine", "event_type": "FUNCTION", "event_tag": "fine"})
    batches = recorded_batches(dt)
    # retries where they would show: one whose retryable cannot be read, or whose output cannot be stored, is not
    # retried (an unreadable text alone says nothing of retrying: such a run retries as any other exception)
    retries = 0 if kind in ("unreadable", "lying") else 2
    odd_job = dt.job.schedule(
        {"env": "prd", "product_tag": "shop", "event": "odd", "input": {"kind": kind}, "retries": retries}
    ).job_id
    fine_jobs = [
        dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "fine", "input": {"n": n}}).job_id
        for n in (1, 2)
    ]
    assert dt.drain() == DrainSummary(completed=2, failed=1)
    (failed,) = dt.job.runs(job_id=odd_job)
    assert failed.phase is RunPhase.FAILED and failed.output is None and failed.error is not None
    assert failed.error.splitlines()[0] == error
    assert [a.outcome for a in dt.job.run(failed.id).attempts] == ["failed"]
    for job_id, n in zip(fine_jobs, (1, 2), strict=True):
        (done,) = dt.job.runs(job_id=job_id)
        assert (done.phase, done.output) == (RunPhase.COMPLETED, {"n": n})
    assert any(failed.id in batch and len(batch) > 1 for batch in batches)  # recorded with another run's outcome
