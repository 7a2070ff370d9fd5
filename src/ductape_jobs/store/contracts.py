"""The narrow parts of the store contract besides scheduling (``base.SchedulingStore``): feature runs, API
access (keys, login sessions, webhooks and their deliveries), the statistics the API reads and retention (the
pruner) and the outbox of lifecycle events. ``Store`` is all six; code that needs one part takes that part."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from msgspec import Struct

from ductape_jobs.lifecycle import LifecycleEvent, StreamPosition, StreamStart
from ductape_jobs.models import (
    WEBHOOK_SECRET,
    WEBHOOK_SHOWN,
    ApiKey,
    JobHistory,
    JobStats,
    LoginSession,
    MinuteCount,
    RunActivity,
    Schedule,
    Webhook,
    WebhookDelivery,
)
from ductape_jobs.redaction import fields_without, repr_without
from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.store.records import EventStatus, FeatureRun, FeatureRunStatus


class DueDelivery(Struct, frozen=True):
    """A webhook delivery claimed for sending, with where to send it and the secret to sign it with."""

    delivery: WebhookDelivery
    url: str
    secret: str

    def __repr__(self) -> str:
        return repr_without(self, WEBHOOK_SECRET, WEBHOOK_SHOWN)

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return fields_without(self, WEBHOOK_SECRET, WEBHOOK_SHOWN)


class FeatureStore(ABC):
    """Feature runs and each event's result."""

    # -- feature runs (``ductape.feature``): a run and each event's result, written as the run goes, so a crash
    # resumes at the event that had not finished. Writes by the run's driver name it (``owner``) and change
    # nothing once another driver took the run over (its lease expired): they return ``False``/``None``.
    @abstractmethod
    def create_feature_run(self, run: FeatureRun) -> None:
        """Store a new feature run (``running``, leased to ``run.lease_owner``) with all its events ``pending``,
        all or nothing. ``ConflictError`` if a run with that id exists."""

    @abstractmethod
    def get_feature_run(self, run_id: str) -> FeatureRun | None:
        """A feature run with its events, in plan order."""

    @abstractmethod
    def list_feature_runs(
        self,
        *,
        feature_tag: str | None = None,
        status: FeatureRunStatus | None = None,
        product_tag: str | None = None,
        env: str | None = None,
        limit: int = 100,
        offset: int = 0,
        after: str | None = None,
    ) -> list[FeatureRun]:
        """Feature runs, newest first, without their events; each filter given narrows them (``product_tag`` and
        ``env``: the runs of that product, of that env). ``after``: a feature run's id, the page past it in this order
        (``NotFoundError`` when there is no such run, or it is of another product or env than the filter keeps)."""

    @abstractmethod
    def feature_schedule(self, key: str) -> Schedule | None:
        """The schedule a JOB event made, by its ``feature_key`` (``<feature run>:<sequence>:<event>``, unique:
        a second schedule with the key is a ``ConflictError``); ``None`` if it made none."""

    @abstractmethod
    def orphaned_feature_runs(self, now: datetime, limit: int) -> list[str]:
        """Up to ``limit`` ids of direct feature runs (``feature.run``: not driven by a FEATURE job run, not a
        child feature run) still running whose lease expired before ``now``: their driver died."""

    @abstractmethod
    def claim_feature_run(
        self, run_id: str, owner: str, until: datetime, now: datetime, *, take_over: bool = False
    ) -> FeatureRun | None:
        """Lease a ``running`` feature run to ``owner`` until ``until`` when no one holds it, its lease expired
        (before ``now``), ``owner`` already holds it, or ``take_over``; returns it with its events. A finished
        run is returned as it is (no lease taken). ``None`` while another driver holds it;
        ``NotFoundError`` if there is no such run."""

    @abstractmethod
    def extend_feature_lease(self, run_id: str, owner: str, until: datetime) -> bool:
        """Heartbeat: push the lease ``owner`` holds to ``until``. ``False`` if ``owner`` lost it."""

    @abstractmethod
    def start_feature_event(
        self, run_id: str, owner: str, sequence_tag: str, event_tag: str, now: datetime
    ) -> int | None:
        """Record that an attempt of an unfinished event starts (``running``); returns its attempt number
        (1-based). ``None`` if ``owner`` does not hold the run or the event is finished."""

    @abstractmethod
    def finish_feature_event(
        self,
        run_id: str,
        owner: str,
        sequence_tag: str,
        event_tag: str,
        status: EventStatus,
        now: datetime,
        *,
        output: Any = None,
        job_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Record how an attempt ended: ``completed`` (with ``output``/``job_id``), ``failed`` for good, or
        ``retrying`` (another attempt follows). ``False`` if ``owner`` does not hold the run."""

    @abstractmethod
    def finish_feature_run(
        self, run_id: str, owner: str, status: FeatureRunStatus, now: datetime, error: str | None = None
    ) -> bool:
        """End a feature run ``completed`` or ``failed`` and release its lease; its events that did not finish
        are recorded ``skipped``. ``False`` if ``owner`` does not hold the run."""

    @abstractmethod
    def restart_feature_run(self, run_id: str, now: datetime) -> FeatureRun:
        """A ``failed`` feature run runs again: ``running``, unleased, its failed and skipped events ``pending``
        (completed ones stay). ``ConflictError`` in another status; ``NotFoundError`` if there is no such run."""


class AccessStore(ABC):
    """API keys, the dashboard's login sessions, webhooks and their deliveries."""

    # -- API keys (``ductape apikey``; the HTTP API's auth)
    @abstractmethod
    def add_api_key(self, key: ApiKey) -> None:
        """Store a new key (its hash, never the key). ``ConflictError`` if its prefix is taken."""

    @abstractmethod
    def find_api_key(self, prefix: str) -> ApiKey | None:
        """The key with this visible prefix, revoked or not (the caller checks the hash and ``revoked_at``)."""

    @abstractmethod
    def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, newest first."""

    @abstractmethod
    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        """Mark a key revoked at ``now`` (a second revoke keeps the first time). ``NotFoundError`` if unknown."""

    @abstractmethod
    def touch_api_key(self, key_id: str, now: datetime) -> None:
        """Record that the key was used at ``now``."""

    # -- the dashboard's login sessions (a hash of each token, never the token)
    @abstractmethod
    def add_login_session(self, session: LoginSession) -> None:
        """Store a new login session; sessions expired by its ``created_at`` are deleted meanwhile."""

    @abstractmethod
    def find_login_session(self, token_hash: str) -> tuple[LoginSession, ApiKey] | None:
        """The session with this token hash and its API key, expired or revoked too (the caller checks
        ``expires_at`` and the key's ``revoked_at``); ``None`` if there is none."""

    @abstractmethod
    def delete_login_session(self, token_hash: str) -> None:
        """End one session (a logout); nothing happens if there is none."""

    @abstractmethod
    def delete_login_sessions(self, key_id: str) -> int:
        """End every session of an API key (its revocation); how many there were."""

    # -- webhooks and their deliveries
    @abstractmethod
    def add_webhook(self, webhook: Webhook) -> None: ...

    @abstractmethod
    def list_webhooks(self, *, product_tag: str | None = None) -> list[Webhook]:
        """Webhooks (with their secrets, for signing), oldest first; ``product_tag`` keeps one product's."""

    @abstractmethod
    def get_webhook(self, webhook_id: str) -> Webhook | None:
        """The webhook of that id (with its secret), or ``None``."""

    @abstractmethod
    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook and its deliveries. ``NotFoundError`` if unknown."""

    @abstractmethod
    def enqueue_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        """Store deliveries to send (pending, due at their ``next_attempt_at``), all or nothing. A delivery
        whose webhook was deleted in the meantime is dropped."""

    @abstractmethod
    def due_deliveries(self, now: datetime, limit: int, lease_for: timedelta) -> list[DueDelivery]:
        """Claim up to ``limit`` pending deliveries due by ``now`` (oldest due first) of the webhooks no other
        sender holds, and hold those webhooks until ``now + lease_for`` (or ``release_webhooks``): one sender at a
        time sends a webhook's deliveries, so the events of one schedule reach it in order. The deliveries'
        ``next_attempt_at`` moves to ``now + lease_for`` too; a sender that dies leaves both due again after it."""

    @abstractmethod
    def release_webhooks(self, webhook_ids: Sequence[str], held_until: datetime, unsent: Sequence[str] = ()) -> None:
        """Stop holding these webhooks (held by ``due_deliveries`` until ``held_until``): their deliveries sent,
        another sender may take their next ones. One another sender holds since is left alone. ``unsent``: the
        deliveries claimed with them that were not sent, due again at once in their place (at their creation), not
        at the lease's end."""

    @abstractmethod
    def record_delivery(
        self,
        delivery_id: str,
        now: datetime,
        *,
        ok: bool,
        error: str | None = None,
        retry_at: datetime | None = None,
        status: int | None = None,
        duration_ms: int | None = None,
    ) -> None:
        """Record one attempt: ``ok`` -> delivered at ``now``; a failure with ``retry_at`` -> pending again
        then; a failure without -> failed for good. Each counts in ``attempts``; ``error``, the HTTP ``status``
        answered (``None``: no answer) and ``duration_ms`` are kept as the last attempt's."""

    @abstractmethod
    def list_deliveries(
        self, webhook_id: str, *, limit: int = 100, offset: int = 0, after: str | None = None
    ) -> list[WebhookDelivery]:
        """A webhook's deliveries, newest first. ``after``: a delivery's id, the page past it in this order
        (``NotFoundError`` when there is no such delivery, or it is another webhook's)."""

    @abstractmethod
    def delivery_backlog(self) -> tuple[int, datetime | None]:
        """The deliveries still to send (``pending``: not yet sent, or to try again), every webhook's, and when the
        oldest of them was made (``None``: there is none)."""


class StatsStore(ABC):
    """What the API's statistics read."""

    # -- what the API's statistics read (``product_tag``/``env`` narrow each to one product)
    @abstractmethod
    def runs_per_minute(
        self, since: datetime, until: datetime, *, product_tag: str | None = None, env: str | None = None
    ) -> list[MinuteCount]:
        """Runs that ended (completed or failed for good) in ``[since, until)``, counted per minute of their
        end; minutes without any are absent. Pruned runs count too (the pruner added them to their minute's
        statistics as it deleted them), for the minutes wholly inside ``[since, until)``."""

    @abstractmethod
    def lateness_sample(
        self, since: datetime, limit: int, *, product_tag: str | None = None, env: str | None = None
    ) -> list[timedelta]:
        """How late runs started at or after ``since`` began (start minus the time they were due), for up to
        ``limit`` of the latest such runs (ended and running ones)."""

    @abstractmethod
    def queue_depth(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> int:
        """Runs due by ``now`` that no worker has claimed yet."""

    @abstractmethod
    def next_due_schedules(
        self,
        limit: int,
        *,
        before: datetime | None = None,
        product_tag: str | None = None,
        env: str | None = None,
    ) -> list[Schedule]:
        """Active schedules by their next occurrence, soonest first (only those due before ``before``)."""

    @abstractmethod
    def run_activity(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> RunActivity:
        """The newest run, the latest end, and how many runs are running and waiting (cheap: for polling)."""

    # -- a schedule's history and the runs' outcomes (``job.history``, ``job.stats``): SQL aggregates, so neither
    # loads more runs than it answers
    @abstractmethod
    def schedule_history(self, schedule_id: str, limit: int, max_bytes: int | None = None) -> JobHistory | None:
        """Counts over every run of a schedule (total, completed, failed for good) and its newest ``limit`` runs
        as executions, newest first, numbered from 1 in order of due time (ties by run id); counts and numbers
        are read at one instant. ``max_bytes``: the executions stop once their outputs and errors pass about that many
        bytes, one at least (``JobHistory.cut`` says how many were left out). ``None`` if there is no such
        schedule."""

    @abstractmethod
    def run_stats(
        self,
        *,
        product_tag: str | None = None,
        env: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> JobStats:
        """The runs due in ``[since, until)`` (a bound left ``None`` is open) of ``product_tag``/``env`` (each
        when given): counted by phase, with how many completed at their first attempt or after retries, the
        success rate over finished (completed or failed) runs and their average retry count. Pruned runs count
        too, from the statistics of the minute they were due in, for the minutes wholly inside the window."""


class RetentionStore(ABC):
    """The pruner's part: finished history older than its keep (``Retention``) is deleted in batches."""

    @abstractmethod
    def prune(self, now: datetime, retention: Retention, limit: int) -> PruneCounts:
        """Delete one batch of up to ``limit`` rows of each kind whose keep ended by ``now``, oldest first: runs
        finished (completed, failed, cancelled) before their cutoff with their attempts, feature runs with their
        events' results, ended webhook deliveries, expired cache entries, and the outbox's events every reader has
        read (after first deleting the live streams whose lease lapsed: ``expire_streams``). Never an unfinished
        run. A schedule keeps the count of its pruned runs (completed, failed, all), which ``schedule_history`` adds
        to its own; an ended one goes with its last run (``sweep_schedules`` for the rest, a batch a call).
        Each kind is its own short transaction; racing pruners delete different rows (none twice) and do not wait
        for each other's rows (only, briefly, for the count on a schedule both pruned runs of, and for the outbox's
        marks, which their outbox batches and streams opening take in turns). A kind whose count
        is below ``limit`` has nothing left for now."""

    @abstractmethod
    def count_prunable(self, now: datetime, retention: Retention) -> PruneCounts:
        """What ``prune`` would delete by ``now``, all batches together (a dry run): it deletes nothing."""

    @abstractmethod
    def sweep_schedules(self, now: datetime, retention: Retention, limit: int, after: str) -> tuple[int, str]:
        """Of the next ``limit`` schedules by id after ``after`` (``""``: from the first), delete those that ended
        (completed, cancelled) before the keep of their status and hold no run: how many, and the id the next batch
        starts after (``""``: this one reached the last). ``prune`` takes one such batch each time, going on from
        where its last one stopped; a schedule that ends with a run goes with its last run instead."""


Relay = Callable[[Sequence[LifecycleEvent], Sequence[Webhook]], Sequence[WebhookDelivery]]
"""What a consumer makes of a batch of lifecycle events, given every webhook: the deliveries to queue."""


class OutboxStore(ABC):
    """The outbox of lifecycle events (``lifecycle.py``): written by the store with the changes they describe
    (a schedule created, paused, resumed or cancelled; a run created, started, retried, lost, completed or failed)
    while some live stream is open, and otherwise only when some webhook of the product takes the event; read by
    consumers, each after its own cursor (durable ones: ``relay_events``; live streams: ``open_stream``)."""

    @abstractmethod
    def relay_events(self, consumer: str, limit: int, now: datetime, relay: Relay) -> int:
        """Give up to ``limit`` events after ``consumer``'s cursor, oldest first, to ``relay`` with the current
        webhooks; queue the deliveries it returns and move the cursor past those events, in one transaction: if
        anything fails, neither happens and the events come again. A consumer seen for the first time starts at
        the oldest event kept. Racing relays of one consumer take turns, so each event is relayed once. The
        events of one schedule come in the order of their changes. Returns how many events were relayed."""

    @abstractmethod
    def pending_events(self, consumer: str, limit: int) -> list[LifecycleEvent]:
        """Up to ``limit`` events after ``consumer``'s cursor, oldest first, without consuming them."""

    # -- live streams (the dashboard's ``/api/v1/events``): readers with a lease, that keep their cursor in the
    # store only so the pruner keeps what they have not read. While one is live every event is written.
    @abstractmethod
    def open_stream(self, name: str, after: StreamPosition | None, lease_until: datetime, now: datetime) -> StreamStart:
        """Register (or register again) the live stream ``name`` until ``lease_until``, first deleting the streams
        whose lease lapsed before ``now``; from now on every event is written, until no stream is live. It reads
        from ``after`` if no event after that position can be missing (of the current recording epoch, not before
        the pruned mark, not past the newest event); otherwise, or without ``after``, from the newest event, with
        ``gap`` set when ``after`` was given. Takes turns with ``add_webhook``, ``delete_webhook`` and the pruner's
        outbox batch."""

    @abstractmethod
    def renew_stream(self, name: str, position: StreamPosition, lease_until: datetime, now: datetime) -> bool:
        """Extend ``name``'s lease to ``lease_until`` and keep ``position`` (what it has read) as its cursor: the
        pruner keeps every event after it. ``False``: the stream was deleted (its lease lapsed); open it again."""

    @abstractmethod
    def stream_events(self, after: StreamPosition, limit: int) -> list[LifecycleEvent]:
        """Up to ``limit`` events after ``after``, of every product, oldest first, in the order of
        ``relay_events`` (on PostgreSQL, only events no running transaction can precede)."""

    @abstractmethod
    def expire_streams(self, now: datetime) -> int:
        """Delete the live streams whose lease lapsed before ``now`` (the outbox's triggers go with the last one
        when no webhook exists): how many. Also drops triggers that nobody wants any more but that stayed because
        a long transaction held runs or schedules when the last reader went (PostgreSQL gives way to it rather than
        queue the store's writers behind it). ``prune`` does it first; one read when there is nothing to do."""
