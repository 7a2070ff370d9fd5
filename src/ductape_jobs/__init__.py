"""ductape-jobs: a durable job scheduler implementing Ductape's Jobs API.

The input models (``JobDefinition``, ``ScheduleRequest``, ... and the seeds' ``I*`` names of them) are pydantic
models, imported when first named: a worker process, which validates no input, loads none of pydantic. So is
``AsyncDuctape`` (``aio.py``), which no worker needs."""

import typing as _typing

from ductape_jobs._version import __version__
from ductape_jobs.client import Ductape
from ductape_jobs.clock import Clock, FakeClock, SystemClock
from ductape_jobs.errors import (
    ConflictError,
    DuctapeError,
    ExecutionError,
    ExecutorNotFoundError,
    NotFoundError,
    RunningLoopError,
    RunTimeoutError,
    StoreError,
    StoreUnusableError,
    ValidationError,
)
from ductape_jobs.executors.base import RunContext
from ductape_jobs.models import (
    Attempt,
    DispatchResult,
    DrainSummary,
    Execution,
    FeatureEventTypes,
    JobEventTypes,
    JobHistory,
    JobStats,
    Misfire,
    Overlap,
    Run,
    RunPhase,
    Schedule,
    ScheduleStatus,
    TriggeredBy,
)
from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.timing.backoff import Backoff

if _typing.TYPE_CHECKING:
    from ductape_jobs.aio import AsyncDuctape
    from ductape_jobs.inputs import JobDefinition, JobUpdate, RepeatOptions, ScheduleRequest, Session
    from ductape_jobs.piping import literal
    from ductape_jobs.products.features import FeatureEvent

    # The seeds' TypeScript names.
    IProductJob = JobDefinition
    IJobProcessorInput = ScheduleRequest
    IJobRepeatOptions = RepeatOptions
    ISession = Session
    IFeatureEvent = FeatureEvent
else:
    #: The input models by the names this package gives them, the seeds' TypeScript names too, the asyncio client
    #: and piping's ``literal``: (module, name), each loaded when first named.
    _LAZY = {
        "AsyncDuctape": ("ductape_jobs.aio", "AsyncDuctape"),
        "literal": ("ductape_jobs.piping", "literal"),
        "JobDefinition": ("ductape_jobs.inputs", "JobDefinition"),
        "JobUpdate": ("ductape_jobs.inputs", "JobUpdate"),
        "RepeatOptions": ("ductape_jobs.inputs", "RepeatOptions"),
        "ScheduleRequest": ("ductape_jobs.inputs", "ScheduleRequest"),
        "Session": ("ductape_jobs.inputs", "Session"),
        "FeatureEvent": ("ductape_jobs.products.features", "FeatureEvent"),
        "IProductJob": ("ductape_jobs.inputs", "JobDefinition"),
        "IJobProcessorInput": ("ductape_jobs.inputs", "ScheduleRequest"),
        "IJobRepeatOptions": ("ductape_jobs.inputs", "RepeatOptions"),
        "ISession": ("ductape_jobs.inputs", "Session"),
        "IFeatureEvent": ("ductape_jobs.products.features", "FeatureEvent"),
    }

    def __getattr__(name: str) -> _typing.Any:
        if name in _LAZY:
            from importlib import import_module

            module, attribute = _LAZY[name]
            value = getattr(import_module(module), attribute)
            globals()[name] = value  # looked up once
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})  # the lazy names too: dir(), a REPL's completion


__all__ = [
    "AsyncDuctape",
    "Attempt",
    "Backoff",
    "Clock",
    "ConflictError",
    "DispatchResult",
    "DrainSummary",
    "Ductape",
    "DuctapeError",
    "Execution",
    "ExecutionError",
    "ExecutorNotFoundError",
    "FakeClock",
    "FeatureEvent",
    "FeatureEventTypes",
    "IFeatureEvent",
    "IJobProcessorInput",
    "IJobRepeatOptions",
    "IProductJob",
    "ISession",
    "JobDefinition",
    "JobEventTypes",
    "JobHistory",
    "JobStats",
    "JobUpdate",
    "Misfire",
    "NotFoundError",
    "Overlap",
    "PruneCounts",
    "RepeatOptions",
    "Retention",
    "Run",
    "RunContext",
    "RunPhase",
    "RunTimeoutError",
    "RunningLoopError",
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
    "literal",
]
