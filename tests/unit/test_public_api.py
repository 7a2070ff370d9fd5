"""The public surface: ``__all__``, the seeds' aliases, the exception tree and the older method spellings."""

from __future__ import annotations

import importlib
import inspect
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import ductape_jobs
from ductape_jobs import (
    Backoff,
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
    "StoreUnusableError",
    "SystemClock",
    "TriggeredBy",
    "ValidationError",
    "__version__",
}


def test_all_is_exactly_the_expected_set() -> None:
    assert len(ductape_jobs.__all__) == len(set(ductape_jobs.__all__)), "duplicates in __all__"
    assert set(ductape_jobs.__all__) == EXPECTED


def test_every_public_name_in_the_package_is_in_all() -> None:
    for name in ductape_jobs.__all__:  # the input models are imported when first named (pydantic, lazily)
        getattr(ductape_jobs, name)
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
        {
            "name": "Sync",
            "tag": "sync",
            "event_type": "ACTION",
            "event_tag": "sync_stock",
            "intervals": 3_600_000,
            "executions": 0,
        }
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


@pytest.mark.parametrize(
    ("setting", "value", "rule"),
    [
        ("concurrency", 0, "must be a whole number >= 1"),
        ("concurrency", 2.5, "must be a whole number >= 1"),
        ("concurrency", True, "must be a whole number >= 1"),
        ("lease", float("nan"), "must be seconds (or a timedelta) from 0.1 to 86400"),
        ("lease", "30", "must be seconds (or a timedelta) from 0.1 to 86400"),
        ("lease", timedelta(days=2), "must be seconds (or a timedelta) from 0.1 to 86400"),
        ("lease", 0.05, "must be seconds (or a timedelta) from 0.1 to 86400"),  # lapses before it is renewed
        ("lease", 1e300, "must be seconds (or a timedelta) from 0.1 to 86400"),
        ("poll", 0, "must be seconds (or a timedelta) from 0.001 to 3600"),
        ("poll", 4e-7, "must be seconds (or a timedelta) from 0.001 to 3600"),  # no microsecond: a zero sleep
        ("poll", True, "must be seconds (or a timedelta) from 0.001 to 3600"),
        ("shutdown_grace", -1, "must be seconds (or a timedelta) from 0 to 86400"),
        ("misfire_grace", float("inf"), "must be seconds (or a timedelta) from 0 to 604800"),
        ("backoff", 3, "must be a Backoff or None, not int"),
    ],
)
def test_ductape_checks_its_worker_settings_before_it_opens_the_store(
    tmp_path: Path, setting: str, value: object, rule: str
) -> None:
    """Unchecked, ``Ductape(lease=30)`` or ``poll=0.2`` failed the worker at its first run (adding an int to a
    datetime), ``shutdown_grace=3`` at its stop (its runs left running until their leases lapsed), and
    ``concurrency=0`` ran nothing, saying nothing. A bad one names itself; nothing is opened or written."""
    db = tmp_path / "jobs.db"
    with pytest.raises(ValidationError) as err:
        Ductape(f"sqlite:///{db}", **{setting: value})
    assert (err.value.field, err.value.rule) == (setting, rule)
    assert not db.exists()


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"base": 1}, "backoff.base", "must be a timedelta of zero or more, e.g. timedelta(seconds=1) (got 1)"),
        (
            {"cap": timedelta(seconds=-1)},
            "backoff.cap",
            "must be a timedelta of zero or more, e.g. timedelta(seconds=1)",
        ),
        ({"factor": 0.5}, "backoff.factor", "must be a number from 1 to 100 (got 0.5)"),
        ({"factor": True}, "backoff.factor", "must be a number from 1 to 100 (got True)"),
        ({"jitter": 2}, "backoff.jitter", "must be a number from 0 to 1 (got 2)"),
    ],
)
def test_a_backoff_is_checked_when_made(fields: dict[str, Any], field: str, rule: str) -> None:
    """``Backoff(base=1)`` (seconds meant) was taken: the first retry raised ``AttributeError`` in the worker and
    left its run running, its attempt unfinished (found by a fidelity probe)."""
    with pytest.raises(ValidationError) as err:
        Backoff(**fields)
    assert err.value.field == field and err.value.rule.startswith(rule)


def test_a_backoff_past_a_floats_range_waits_its_cap() -> None:
    steep = Backoff(factor=100, cap=timedelta(hours=1), jitter=0)
    assert steep.delay(1000) == timedelta(hours=1)  # 100 ** 999 is no float: OverflowError


def test_ductape_takes_its_worker_settings_in_seconds_as_its_worker_does(tmp_path: Path) -> None:
    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", lease=30, poll=0.2, shutdown_grace=3, misfire_grace=1) as dt:
        options = dt.new_worker().options
        assert (options.lease, options.poll, options.shutdown_grace) == (
            timedelta(seconds=30),
            timedelta(seconds=0.2),
            timedelta(seconds=3),
        )
        assert dt.scheduler.grace == timedelta(seconds=1)
        assert dt.new_worker(lease=10, heartbeat=2).options.heartbeat == timedelta(seconds=2)
        with pytest.raises(ValidationError) as err:
            dt.new_worker(lease=10, heartbeat=10)  # the lease would lapse between two beats
        assert (err.value.field, err.value.rule) == ("heartbeat", "must be shorter than the lease (10 s)")
        for setting, value, rule in (
            ("backoff", None, "must be a Backoff, not NoneType"),  # a worker's: None is no default here
            ("run_scheduler", "no", "must be True or False, not str"),
            ("heartbeat", 1e-7, "must be seconds (or a timedelta) from 0.01 to 86400"),
        ):
            with pytest.raises(ValidationError) as err:
                dt.new_worker(**{setting: value})
            assert (err.value.field, err.value.rule) == (setting, rule)


def test_the_names_loaded_when_first_used_are_listed_by_dir() -> None:
    """``AsyncDuctape`` and the input models load when first named; ``dir()`` (a REPL's completion) lists them all
    the same, and ``ductape_jobs.cli.main`` lists ``app`` (``typer <module>`` looks for it there)."""
    import ductape_jobs.cli.main

    assert set(ductape_jobs.__all__) <= set(dir(ductape_jobs))
    assert {"AsyncDuctape", "JobDefinition", "IJobProcessorInput"} <= set(dir(ductape_jobs))
    assert "app" in dir(ductape_jobs.cli.main) and "cli" in dir(ductape_jobs.cli.main)


def test_help_documents_every_public_name() -> None:
    """``help(ductape_jobs)`` and ``help(RunContext)`` (a FUNCTION's ``ctx``) raised ``NameError: ProductSpec``:
    msgspec reads a struct's annotations for its signature, and its fields' types were named for the type checker
    only."""
    import pydoc

    pydoc.render_doc(ductape_jobs)
    for name in ductape_jobs.__all__:
        value = getattr(ductape_jobs, name)
        if callable(value):
            assert pydoc.render_doc(value), name
    assert "product" in inspect.signature(ductape_jobs.RunContext).parameters


def test_the_parts_of_the_client_are_properties() -> None:
    """``ductape.job``, ``.product``, ``.feature`` and ``.session`` are made on first use, and read as attributes:
    they are properties, which the API reference (mkdocstrings) documents as attributes (a descriptor of the
    project's own was documented as a method, ``job() -> Jobs``, that a reader would call), each with its docstring."""
    for name in ("job", "product", "feature", "session"):
        found = inspect.getattr_static(Ductape, name)
        assert isinstance(found, property), (name, found)
        assert found.__doc__ and f"ductape.{name}" in found.__doc__, name
