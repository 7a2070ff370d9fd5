"""The engine: the scheduler (due schedules -> runs), the worker (runs -> executors), retries and leases."""

from ductape_jobs.engine.retry import Backoff
from ductape_jobs.engine.scheduler import Scheduler, recurrence_of
from ductape_jobs.engine.worker import Worker

__all__ = ["Backoff", "Scheduler", "Worker", "recurrence_of"]
