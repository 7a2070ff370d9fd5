"""The public surface: ``__all__``, the seeds' aliases, the exception tree and the older method spellings."""

from __future__ import annotations

import importlib
import inspect

import pytest

import ductape_jobs
from ductape_jobs import (
    ConflictError,
    Ductape,
    DuctapeError,
    ExecutionError,
    ExecutorNotFoundError,
    JobDefinition,
    NotFoundError,
    RepeatOptions,
    RunTimeoutError,
    ScheduleRequest,
    Session,
    StoreError,
    ValidationError,
)
from ductape_jobs.jobs import Jobs

EXPECTED = {
    "RunningLoopError",
    "FeatureEvent",
    "FeatureEventTypes",
    "literal",
    "AsyncDuctape",
    "Attempt",
    "Backoff",
    "Clock",
    "ConflictError",
    "DispatchResult",
    "DrainSummary",
    "Ductape",
    "DuctapeError",
    "ExecutionError",
    "Execution",
    "JobHistory",
    "JobStats",
    "ExecutorNotFoundError",
    "FakeClock",
    "IJobProcessorInput",
    "IJobRepeatOptions",
    "IProductJob",
    "IFeatureEvent",
    "ISession",
    "JobDefinition",
    "JobEventTypes",
    "JobUpdate",
    "Misfire",
    "NotFoundError",
    "Overlap",
    "PruneCounts",
    "Retention",
    "RepeatOptions",
    "Run",
    "RunContext",
    "RunPhase",
    "RunTimeoutError",
    "Schedule",
    "ScheduleRequest",
    "ScheduleStatus",
    "Session",
    "StoreError",
    "SystemClock",
    "TriggeredBy",
    "ValidationError",
    "__version__",
}


def test_all_is_exactly_the_expected_set() -> None:
    assert len(ductape_jobs.__all__) == len(set(ductape_jobs.__all__)), "duplicates in __all__"
    assert set(ductape_jobs.__all__) == EXPECTED


def test_every_public_name_in_the_package_is_in_all() -> None:
    public = {
        name for name, value in vars(ductape_jobs).items() if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == EXPECTED - {"__version__"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_name_in_all_imports(name: str) -> None:
    module = importlib.import_module("ductape_jobs")
    assert getattr(module, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from ductape_jobs import {name}", namespace)
    assert namespace[name] is getattr(module, name)


def test_version() -> None:
    assert isinstance(ductape_jobs.__version__, str)
    assert all(part.isdigit() for part in ductape_jobs.__version__.split(".")[:2])


def test_seed_aliases() -> None:
    assert ductape_jobs.IProductJob is JobDefinition
    assert ductape_jobs.IJobProcessorInput is ScheduleRequest
    assert ductape_jobs.IJobRepeatOptions is RepeatOptions
    assert ductape_jobs.ISession is Session


def test_exception_tree() -> None:
    assert issubclass(ValidationError, ValueError) and issubclass(ValidationError, DuctapeError)
    assert issubclass(NotFoundError, LookupError) and issubclass(NotFoundError, DuctapeError)
    for cls in (ConflictError, StoreError, ExecutionError):
        assert issubclass(cls, DuctapeError)
    assert issubclass(ExecutorNotFoundError, ExecutionError) and not ExecutorNotFoundError.retryable
    assert issubclass(RunTimeoutError, ExecutionError) and ExecutionError.retryable
    assert not issubclass(ConflictError, ValueError)
    assert issubclass(DuctapeError, Exception)


def test_error_payloads() -> None:
    exc = ValidationError("repeat.cron", "bad minute")
    assert (exc.field, exc.rule, str(exc)) == ("repeat.cron", "bad minute", "repeat.cron: bad minute")
    missing = NotFoundError("job", "report")
    assert (missing.kind, missing.key, str(missing)) == ("job", "report", "job 'report' not found")
    huge = NotFoundError("schedule", "job_" + "x" * 10_000_000)  # a path parameter of 10 MB is not echoed whole
    assert huge.key == "job_" + "x" * 10_000_000 and len(str(huge)) < 300 and "(10,000,004 characters)" in str(huge)
    assert str(NotFoundError("schedule", 123)) == "schedule 123 not found"  # type: ignore[arg-type]


def test_older_spellings_are_the_same_methods() -> None:
    assert Jobs.fetchAll is Jobs.fetch_all
    assert Jobs.fetch_jobs is Jobs.fetch_all
    assert Jobs.fetch_job is Jobs.fetch
    assert Jobs.create_job is Jobs.create
    assert Jobs.update_job is Jobs.update


def test_older_spellings_work(dt: Ductape) -> None:
    created = dt.job.create_job(
        {"name": "Sync", "tag": "sync", "event_type": "ACTION", "event_tag": "sync_stock", "intervals": 3_600_000}
    )
    assert created.tag == "sync"
    dt.job.create({"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report_fn"})
    assert [j.tag for j in dt.job.fetchAll()] == [j.tag for j in dt.job.fetch_all()]
    assert {j.tag for j in dt.job.fetch_jobs()} == {"sync", "report"}
    assert dt.job.fetch_job("sync") == dt.job.fetch("sync")
    updated = dt.job.update_job("sync", {"intervals": 60_000})
    assert updated.intervals == 60_000 and dt.job.fetch("sync").intervals == 60_000
    with pytest.raises(NotFoundError):
        dt.job.fetch_job("nope")
    with pytest.raises(ConflictError):
        dt.job.create_job({"name": "Sync", "tag": "sync", "event_type": "ACTION", "event_tag": "x"})
