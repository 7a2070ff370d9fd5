"""ductape-jobs: a durable job scheduler implementing Ductape's Jobs API."""

from ductape_jobs._version import __version__
from ductape_jobs.aio import AsyncDuctape
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
    JobDefinition,
    JobEventTypes,
    JobHistory,
    JobStats,
    JobUpdate,
    Misfire,
    Overlap,
    RepeatOptions,
    Run,
    RunPhase,
    Schedule,
    ScheduleRequest,
    ScheduleStatus,
    Session,
    TriggeredBy,
)
from ductape_jobs.piping import literal
from ductape_jobs.products.features import FeatureEvent, FeatureEventTypes
from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.timing.backoff import Backoff

# The seeds' TypeScript names.
IProductJob = JobDefinition
IJobProcessorInput = ScheduleRequest
IJobRepeatOptions = RepeatOptions
ISession = Session
IFeatureEvent = FeatureEvent


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
