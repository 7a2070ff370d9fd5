"""The engine: the scheduler (due schedules -> runs), the worker (runs -> executors), retries and leases."""

from ductape_jobs.engine.scheduler import Scheduler, recurrence_of
from ductape_jobs.engine.worker import Worker
from ductape_jobs.timing.backoff import Backoff

__all__ = ["Backoff", "Scheduler", "Worker", "recurrence_of"]
