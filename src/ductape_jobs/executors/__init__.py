"""Executors run a run's event. One small module per event type behind the ``Executor`` protocol."""

from ductape_jobs.executors.base import Executor, RunContext
from ductape_jobs.executors.function import FunctionExecutor, FunctionRegistry
from ductape_jobs.executors.registry import ExecutorRegistry

__all__ = ["Executor", "ExecutorRegistry", "FunctionExecutor", "FunctionRegistry", "RunContext"]
