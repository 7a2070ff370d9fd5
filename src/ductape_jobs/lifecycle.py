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
    run.cancelled       RunCancelled        an attempt failed, lost or given back after its schedule was cancelled:
                                            no retry, it ends cancelled
    job.completed       RunCompleted
    job.failed          RunFailed           failed for good (retries spent, or lost too often)

``run.*`` events are attempt-level: a subscriber chooses them like any other. Only events that some reader may
want are written at all: while a live stream (the dashboard's ``/api/v1/events``) is open, every event; otherwise
those some webhook of the product takes (the others would have no consumer).

A live stream reads the outbox from a ``StreamPosition``: the recording ``epoch`` it began in and the cursor
``(txid, seq)`` of the last event it read, written ``<epoch>-<txid>-<seq>`` (the SSE ``id``, sent back by a browser
as ``Last-Event-ID`` when it reconnects).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from msgspec import Struct
from msgspec.structs import replace

from ductape_jobs.clock import iso_text
from ductape_jobs.errors import ValidationError

_TIMES = ("scheduled_at", "started_at", "completed_at", "next_run_at", "available_at")
#: What a run's row still holds of an earlier attempt, which an event of another stage of the run does not carry as
#: its own (``None``): a retry's error and duration when the next attempt starts or is lost (a rescued attempt has
#: none of its own), and when ``job.retry`` queues a failed run again its start and duration (not yet; it keeps the
#: error that failed it).
_NOT_ITS_OWN = {
    "job.started": ("error", "completed_at", "duration_ms"),
    "run.attempt_lost": ("error", "completed_at", "duration_ms"),
    "run.queued": ("started_at", "completed_at", "duration_ms"),
}
#: Fields every run event carries, ``None`` when the store's row held none (SQLite's run.queued of a new run wrote
#: none of them, PostgreSQL's all).
_RUN_FIELDS = ("started_at", "completed_at", "duration_ms", "error")


class LifecycleEvent(Struct, frozen=True):
    """One event of the outbox. ``(txid, seq)`` orders the events of one store (its ``cursor``; ``txid`` is
    PostgreSQL's writing transaction, 0 on SQLite); ``job_id`` is the schedule's id; ``values`` are the changed
    row's columns as the store wrote them (times in ms; ``payload`` presents them)."""

    name: ClassVar[str] = ""

    seq: int
    product_tag: str
    job_id: str
    run_id: str | None
    at: datetime
    values: dict[str, Any]
    txid: int = 0

    @property
    def cursor(self) -> tuple[int, int]:
        """Where the event lies in the outbox's order: ``(txid, seq)``."""
        return (self.txid, self.seq)

    def payload(self) -> dict[str, Any]:
        """The ``data`` of the event's webhook body: times as ISO 8601 strings spelled as the API answers them
        (``clock.iso_text``), the error's first line, a run's phase or a schedule's status as ``status`` (and a
        retry's due time as ``retry_at``). A run's events have the same fields on both stores, without what belongs
        to an earlier attempt (``_NOT_ITS_OWN``)."""
        out: dict[str, Any] = {}
        values = self.values if self.run_id is None else {**dict.fromkeys(_RUN_FIELDS), **self.values}
        stale = _NOT_ITS_OWN.get(self.name, ())
        for key, value in values.items():
            if key in stale:
                value = None
            elif key in _TIMES:
                value = None if value is None else iso_text(datetime.fromtimestamp(value / 1000, UTC))
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


class ScheduleCreated(LifecycleEvent, frozen=True):
    name = "job.scheduled"


class SchedulePaused(LifecycleEvent, frozen=True):
    name = "job.paused"


class ScheduleResumed(LifecycleEvent, frozen=True):
    name = "job.resumed"


class ScheduleCancelled(LifecycleEvent, frozen=True):
    name = "job.cancelled"


class RunQueued(LifecycleEvent, frozen=True):
    name = "run.queued"


class RunStarted(LifecycleEvent, frozen=True):
    name = "job.started"


class RunRetryScheduled(LifecycleEvent, frozen=True):
    name = "run.attempt_failed"


class RunLost(LifecycleEvent, frozen=True):
    name = "run.attempt_lost"


class RunCancelled(LifecycleEvent, frozen=True):
    name = "run.cancelled"


class RunCompleted(LifecycleEvent, frozen=True):
    name = "job.completed"


class RunFailed(LifecycleEvent, frozen=True):
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
        RunCancelled,
        RunCompleted,
        RunFailed,
    )
}
"""Every event kind by name: the webhook events a subscriber may choose."""


def lifecycle_event(
    name: str,
    seq: int,
    product_tag: str,
    job_id: str,
    run_id: str | None,
    at: datetime,
    values: dict[str, Any],
    txid: int = 0,
) -> LifecycleEvent:
    """The record of an outbox row (an unknown name, from a newer release, is a plain ``LifecycleEvent``)."""
    kind = KINDS.get(name, LifecycleEvent)
    return kind(seq, product_tag, job_id, run_id, at, values, txid)


_POSITION = re.compile(r"([0-9]{1,18})-([0-9]{1,18})-([0-9]{1,18})")  # ASCII digits only


class StreamPosition(Struct, frozen=True, order=True):
    """A live stream's place in the outbox: after the event whose cursor is ``(txid, seq)`` (``(0, 0)``: before
    every event), in the live streams' recording ``epoch``. An epoch begins when a stream opens while no other is
    live (the store then starts writing every event, not only the ones webhooks take) and lasts while some stream
    stays live; a position of an earlier epoch may lie before events that were never written."""

    epoch: int
    txid: int
    seq: int

    @property
    def cursor(self) -> tuple[int, int]:
        return (self.txid, self.seq)

    def past(self, event: LifecycleEvent) -> StreamPosition:
        """This position moved past ``event`` (read in the outbox's order)."""
        return replace(self, txid=event.txid, seq=event.seq)

    def __str__(self) -> str:
        return f"{self.epoch}-{self.txid}-{self.seq}"

    @classmethod
    def parse(cls, text: str, field: str = "position") -> StreamPosition:
        """The position written as ``str()`` writes it; anything else is a ``ValidationError`` on ``field``."""
        found = _POSITION.fullmatch(text.strip())
        if found is None:
            raise ValidationError(field, f"must be a stream position <epoch>-<txid>-<seq>, not {text[:40]!r}")
        epoch, txid, seq = (int(part) for part in found.groups())
        return cls(epoch, txid, seq)


class StreamStart(Struct, frozen=True):
    """Where a live stream that just opened reads from. ``gap``: the position it asked to resume from could not
    be kept (events after it were pruned, or not written while no stream was live), so it starts at the newest
    event instead and must tell its reader to reload what it shows."""

    position: StreamPosition
    gap: bool = False
