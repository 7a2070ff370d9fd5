"""Lifecycle events: what happened to a schedule or a run, as frozen records read from the store's outbox.

The store writes an event in the same transaction as the change it describes (a trigger on the runs and
schedules tables: migration 0011), so a crash loses both or neither. Consumers read the outbox after their own
cursor (``Store.relay_events``): one that was down catches up from where it stopped. Each event's ``name`` is
its webhook event name::

    job.scheduled       ScheduleCreated     a schedule was created
    job.paused          SchedulePaused      by hand or after a failure (pause_on_failure)
    job.resumed         ScheduleResumed
    job.cancelled       ScheduleCancelled
    run.queued          RunQueued           a run was created, or a failed/cancelled run queued again (retry)
    job.started         RunStarted          a worker claimed the run; ``attempt`` is the attempt starting
    run.attempt_failed  RunRetryScheduled   an attempt failed and a retry is scheduled (``retry_at``)
    run.attempt_lost    RunLost             an attempt's worker stopped heartbeating; the run is queued again
    job.completed       RunCompleted
    job.failed          RunFailed           failed for good (retries spent, or lost too often)

``run.*`` events are attempt-level: a subscriber chooses them like any other. Only events that some webhook of
the product takes are written at all (the others would have no consumer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

_TIMES = ("scheduled_at", "started_at", "completed_at", "next_run_at", "available_at")


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One event of the outbox. ``seq`` orders the events of one store; ``job_id`` is the schedule's id;
    ``values`` are the changed row's columns as the store wrote them (times in ms; ``payload`` presents them)."""

    name: ClassVar[str] = ""

    seq: int
    product_tag: str
    job_id: str
    run_id: str | None
    at: datetime
    values: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        """The ``data`` of the event's webhook body: times as ISO 8601 strings, the error's first line, a run's
        phase or a schedule's status as ``status`` (and a retry's due time as ``retry_at``)."""
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            if key in _TIMES:
                value = None if value is None else datetime.fromtimestamp(value / 1000, UTC).isoformat()
            elif key == "error" and isinstance(value, str):
                value = value.splitlines()[0] if value else None
            elif key == "recurring":
                value = bool(value)
            out["status" if key == "phase" else key] = value
        if "available_at" in out:
            when = out.pop("available_at")
            if self.name == "run.attempt_failed":
                out["retry_at"] = when
        return out


class ScheduleCreated(LifecycleEvent):
    __slots__ = ()
    name = "job.scheduled"


class SchedulePaused(LifecycleEvent):
    __slots__ = ()
    name = "job.paused"


class ScheduleResumed(LifecycleEvent):
    __slots__ = ()
    name = "job.resumed"


class ScheduleCancelled(LifecycleEvent):
    __slots__ = ()
    name = "job.cancelled"


class RunQueued(LifecycleEvent):
    __slots__ = ()
    name = "run.queued"


class RunStarted(LifecycleEvent):
    __slots__ = ()
    name = "job.started"


class RunRetryScheduled(LifecycleEvent):
    __slots__ = ()
    name = "run.attempt_failed"


class RunLost(LifecycleEvent):
    __slots__ = ()
    name = "run.attempt_lost"


class RunCompleted(LifecycleEvent):
    __slots__ = ()
    name = "job.completed"


class RunFailed(LifecycleEvent):
    __slots__ = ()
    name = "job.failed"


KINDS: dict[str, type[LifecycleEvent]] = {
    kind.name: kind
    for kind in (
        ScheduleCreated,
        SchedulePaused,
        ScheduleResumed,
        ScheduleCancelled,
        RunQueued,
        RunStarted,
        RunRetryScheduled,
        RunLost,
        RunCompleted,
        RunFailed,
    )
}
"""Every event kind by name: the webhook events a subscriber may choose."""


def lifecycle_event(
    name: str, seq: int, product_tag: str, job_id: str, run_id: str | None, at: datetime, values: dict[str, Any]
) -> LifecycleEvent:
    """The record of an outbox row (an unknown name, from a newer release, is a plain ``LifecycleEvent``)."""
    kind = KINDS.get(name, LifecycleEvent)
    return kind(seq, product_tag, job_id, run_id, at, values)
