"""What the store keeps of a feature run: the run itself and each event's result.

A feature run is ``running`` until it ends ``completed`` or ``failed``. Each of its events is ``pending``, then
``running`` (an attempt is going), ``retrying`` (an attempt failed, another follows after a backoff),
and ends ``completed``, ``failed`` or ``skipped`` (never started because the feature stopped).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from msgspec import Struct, field


class FeatureRunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class EventStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in (EventStatus.COMPLETED, EventStatus.FAILED, EventStatus.SKIPPED)


class EventResult(Struct, frozen=True):
    """One event of a feature run. ``output`` is what the event returned (``None`` for a JOB event, which is
    void: it keeps the ``job_id`` of the schedule it made instead)."""

    sequence_tag: str
    event_tag: str
    event_type: str
    position: int  # its place in the feature's plan (sequences in run order, then events in declared order)
    status: EventStatus = EventStatus.PENDING
    attempts: int = 0
    output: Any = None
    job_id: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class FeatureRun(Struct, frozen=True):
    """One run of a feature. When a job runs the feature, ``id`` is the job run's id."""

    id: str
    product_tag: str
    env: str
    feature_tag: str
    input: dict[str, Any]
    status: FeatureRunStatus
    created_at: datetime
    updated_at: datetime
    session: dict[str, Any] | None = None  # the verified session data, never the token
    error: str | None = None
    completed_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    events: list[EventResult] = field(default_factory=list)

    def event(self, sequence_tag: str, event_tag: str) -> EventResult:
        for result in self.events:
            if result.sequence_tag == sequence_tag and result.event_tag == event_tag:
                return result
        raise KeyError(f"feature run {self.id} has no event {sequence_tag}/{event_tag}")

    @property
    def output(self) -> dict[str, dict[str, Any]]:
        """What ``$Sequence{sequence_tag}{event_tag}`` sees: the outputs of the completed events."""
        found: dict[str, dict[str, Any]] = {}
        for result in self.events:
            if result.status is EventStatus.COMPLETED and result.event_type != "job":
                found.setdefault(result.sequence_tag, {})[result.event_tag] = result.output
        return found
