"""FEATURE events: a job whose event is a product's feature runs that feature's sequences.

The feature run is keyed by the job run's id, so a later attempt of the same job run (a retry, or a rescue
after its worker died) carries on the feature run instead of starting over: finished events are not run again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ductape_jobs.errors import FeatureFailed
from ductape_jobs.executors.base import RunContext
from ductape_jobs.models import JobEventTypes, Run
from ductape_jobs.store.records import FeatureRun, FeatureRunStatus


class FeatureDriver(Protocol):
    """What runs the feature (``ductape_jobs.features.engine.FeatureEngine``)."""

    async def run_for_job(self, run: Run, ctx: RunContext) -> FeatureRun: ...


class FeatureExecutor:
    event_type = JobEventTypes.FEATURE

    def __init__(self, driver: Callable[[], FeatureDriver]) -> None:
        self.driver = driver  # the engine, made when the first feature runs (``Ductape.feature``)

    async def execute(self, run: Run, ctx: RunContext) -> Any:
        result = await self.driver().run_for_job(run, ctx)
        if result.status is FeatureRunStatus.FAILED:
            raise FeatureFailed(f"feature {run.event_tag!r} (run {result.id}) failed: {result.error}")
        return {"feature_run_id": result.id, "output": result.output}
