"""The seeds' records as the store keeps them: schedules, runs and their attempts, the lifecycle's enums, and the
checks of times, tags and filters that every entry point shares. The seeds' millisecond and Unix-timestamp fields
are converted here, once, into aware UTC ``datetime`` and ``timedelta``.

Stored records are msgspec Structs (they are read in the hot path). The input models that validate what a caller
sends (``JobDefinition``, ``ScheduleRequest``, ...) are pydantic, in ``inputs.py``: a worker process, which validates
none, does not import pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import Struct, field

from ductape_jobs.errors import NotFoundError, ValidationError, shown_key
from ductape_jobs.limits import LATEST, MIN_EVERY
from ductape_jobs.redaction import fields_without, redact_webhook_url, repr_without
from ductape_jobs.timing.planning import Misfire

__all__ = [
    "ApiKey",
    "Attempt",
    "DeliveryStatus",
    "DispatchResult",
    "DrainSummary",
    "Execution",
    "FeatureEventTypes",
    "JobEventTypes",
    "JobHistory",
    "JobStats",
    "KeyScope",
    "LoginSession",
    "MinuteCount",
    "Misfire",
    "Overlap",
    "Run",
    "RunActivity",
    "RunFilter",
    "RunPhase",
    "Schedule",
    "ScheduleStatus",
    "TriggeredBy",
    "Webhook",
    "WebhookDelivery",
]

SECONDS_LIMIT = 100_000_000_000  # a Unix timestamp below 1e11 is seconds, otherwise milliseconds
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")


EventEnum = TypeVar("EventEnum", bound=StrEnum)
T = TypeVar("T")
#: Other spellings of an event type: PUBLISH is a MESSAGEBROKER event (seed 000: "Publishes to a message broker"),
#: and seed 003 names a DATABASE_ACTION job ``db_action``.
_EVENT_ALIASES = {"publish": "messagebroker", "message_broker": "messagebroker", "db_action": "database_action"}


def parse_event_type(kind: type[EventEnum], value: object) -> EventEnum:
    """A job's or a feature's event type from its name in any case (``"database-action"``, ``"PUBLISH"``), or
    ``ValueError`` listing the known ones. The one parser of both enums."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        key = _EVENT_ALIASES.get(key, key)
        for member in kind:
            if member.value == key:
                return member
    names = ", ".join(m.name for m in kind)
    raise ValueError(f"unknown event type {value!r} (use one of {names}, or PUBLISH)")


class JobEventTypes(StrEnum):
    """The event a job runs. Accepts the seeds' names (``ACTION``) and the SDK's values (``action``);
    ``PUBLISH`` is an alias of ``MESSAGEBROKER``."""

    ACTION = "action"
    NOTIFICATION = "notification"
    DATABASE_ACTION = "database_action"
    FUNCTION = "function"
    MESSAGEBROKER = "messagebroker"
    FEATURE = "feature"  # the event_tag is a feature of the product: the run runs the feature's sequences

    @classmethod
    def parse(cls, value: object) -> JobEventTypes:
        return parse_event_type(cls, value)


class FeatureEventTypes(StrEnum):
    """What a feature event runs (the SDK's ``FeatureEventTypes``); upper case (``JOB``) is accepted too."""

    ACTION = "action"
    NOTIFICATION = "notification"
    DATABASE_ACTION = "database_action"
    FUNCTION = "function"
    MESSAGEBROKER = "messagebroker"
    FEATURE = "feature"
    JOB = "job"

    @classmethod
    def parse(cls, value: object) -> FeatureEventTypes:
        return parse_event_type(cls, value)


class RunPhase(StrEnum):
    """A run's phase, as the SDK names them."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRY_SCHEDULED = "retry_scheduled"


PENDING_PHASES = (RunPhase.SCHEDULED, RunPhase.QUEUED, RunPhase.RETRY_SCHEDULED)
ACTIVE_PHASES = (*PENDING_PHASES, RunPhase.RUNNING)
TERMINAL_PHASES = (RunPhase.COMPLETED, RunPhase.FAILED, RunPhase.CANCELLED)


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class Overlap(StrEnum):
    """What a recurring schedule does when an occurrence falls due while its previous run still goes."""

    ALLOW = "allow"
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"


class TriggeredBy(StrEnum):
    SCHEDULE = "schedule"
    CRON = "cron"
    API = "api"
    MANUAL = "manual"


# ---------------------------------------------------------------------------------------------- times


def to_utc(value: object, *, allow_zero: bool = True) -> datetime | None:  # noqa: C901
    """A Unix timestamp (seconds below 1e11, else ms), ``datetime`` or ISO 8601 string as aware UTC.

    ``0`` and ``None`` give ``None`` (meaning "now" for ``start_at``). Raises ``ValueError``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be a Unix timestamp, a datetime or an ISO 8601 string, not a boolean")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        if value < 0:
            raise ValueError("must not be negative")
        if value == 0:
            if allow_zero:
                return None
            raise ValueError("must be a timestamp after 1970-01-01")
        try:  # an int past a float's range (10**400) cannot be divided into one: it is past every time too
            seconds = value if value < SECONDS_LIMIT else value / 1000
            return _not_too_late(datetime.fromtimestamp(seconds, UTC))
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"is after {LATEST.date().isoformat()}, the latest time the engine takes") from None
    if isinstance(value, datetime):
        try:
            aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of the range of dates") from None
        return _not_too_late(aware)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise ValueError("is too long for a timestamp or an ISO 8601 date-time")
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):  # ASCII digits: float() and int() read Arabic-Indic ones too
            return to_utc(float(text) if "." in text else int(text), allow_zero=allow_zero)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not a Unix timestamp or an ISO 8601 date-time") from None
        return to_utc(parsed)
    raise ValueError(f"must be a Unix timestamp, a datetime or an ISO 8601 string, not {type(value).__name__}")


def check_time(value: object, field: str) -> datetime | None:
    """A time bound given outside a model (``since``, ``until``: what ``start_at`` takes; ``None``: none) as aware
    UTC; a ``ValidationError`` naming ``field`` otherwise. 0 is no time here."""
    try:
        return to_utc(value, allow_zero=False)
    except ValueError as exc:
        raise ValidationError(field, str(exc)) from None


#: The longest ``product_tag``/``env`` filter a listing or a statistic takes (a schedule's own are at most this).
FILTER_LENGTH = 256


def check_filter(value: object, field: str) -> str | None:
    """A listing's or a statistic's ``product_tag``/``env`` filter (``None``: none): text of 1 to ``FILTER_LENGTH``
    characters, stripped; a ``ValidationError`` naming ``field`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= FILTER_LENGTH:
        raise ValidationError(field, f"must be text of 1 to {FILTER_LENGTH} characters")
    return value.strip()


def check_key(value: object, field: str) -> str:
    """The id or tag a call looks up (``job_id``, ``run_id``, a job's ``tag``): text, or a ``ValidationError`` naming
    ``field`` (a number or a dict reached the store: PostgreSQL's "operator does not exist", SQLite's binding error).
    Whether one is there is the store's to answer (``NotFoundError``)."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    return value


def read_past(read: Callable[[], T], kind: str, after: str | None, why: str) -> T:
    """``read()`` of a list past the ``kind`` record ``after`` (a cursor: the id of the last of the page before),
    its errors named as its caller named the cursor: one the store does not find in the list is a ``ValidationError``
    of ``after`` (saying ``why``), as is one it cannot look up (a NUL, a lone surrogate: refused naming the lookup's
    parameter, ``id``). The one cursor check of every listing that takes one (Python, CLI and HTTP)."""
    if after is not None:
        check_key(after, "after")
    try:
        return read()
    except NotFoundError as exc:
        if exc.kind != kind:
            raise
        rule = f"no {kind} with id {shown_key(after)} in this list ({why}); page from the start"
        raise ValidationError("after", rule) from None
    except ValidationError as exc:
        if exc.field != "id":
            raise
        raise ValidationError("after", exc.rule) from None


def check_window(since: object, until: object) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` (``check_time``), ``since`` not after ``until``: the runs and the stats of a window
    refuse one the wrong way round alike (the runs answered none)."""
    start, end = check_time(since, "since"), check_time(until, "until")
    if start is not None and end is not None and start > end:
        raise ValidationError("since", f"{start.isoformat()} is after until {end.isoformat()}")
    return start, end


def _not_too_late(value: datetime) -> datetime:
    if value > LATEST:
        raise ValueError(f"is after {LATEST.date().isoformat()}, the latest time the engine takes")
    return value


def _tag(value: str) -> str:
    if not TAG_PATTERN.fullmatch(value):  # match's '$' would take a trailing newline
        raise ValueError(
            "must start with a letter or digit and hold only letters, digits, '_', '-', '.', ':' (max 128)"
        )
    return value


def check_tag(value: object, field: str) -> str:
    """A tag given outside a model (a product bound in code): ``ValidationError`` naming ``field``."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    try:
        return _tag(value)
    except ValueError as exc:
        raise ValidationError(field, str(exc)) from None


def check_cadence(executions: int, intervals: int) -> None:
    """A job's cadence: more than one execution needs intervals between them (the seeds' ``intervals``, ms
    between runs; 0 runs the job once, which would quietly drop the executions after the first)."""
    if executions > 1 and intervals == 0:
        raise ValidationError(
            "intervals",
            f"must be at least {MIN_EVERY} (milliseconds) for executions {executions}: intervals 0 runs the job once",
        )


def check_executions_given(intervals: int, *, given: bool) -> None:
    """A job given a cadence (``intervals`` above 0) says how many runs (seed 002: ``executions`` is required; the
    seeds: unlimited, ``executions: 0``, "only for jobs that should run continuously"): left out, it ran for ever."""
    if intervals > 0 and not given:
        raise ValidationError(
            "executions",
            "is required with intervals: the number of runs, or 0 for unlimited runs (a job that should run "
            "continuously)",
        )


def check_unlimited(executions: int, intervals: int) -> None:
    """``executions`` given as 0: unlimited runs, ``intervals`` apart (the seeds: "run indefinitely at the
    specified interval"). With intervals 0 the job ran once, silently: refused (a job left without ``executions``
    is 0 too, and runs once without intervals: what it says)."""
    if executions == 0 and intervals == 0:
        raise ValidationError(
            "intervals",
            f"must be at least {MIN_EVERY} (milliseconds) for executions 0 (unlimited): intervals 0 runs the job "
            "once; leave executions out for a job that runs once",
        )


def schedule_key(product_tag: str, env: str, key: str) -> str:
    """How the store keeps a caller's ``key`` of a schedule of ``product_tag`` in ``env``: one per product and env,
    and never a feature event's (``<feature run>:...``). Lengths first: a product tag and an env may hold ``:``."""
    return f"key:{len(product_tag)}:{product_tag}:{len(env)}:{env}:{key}"


def check_end_date(end_date: datetime | None, start: datetime, *, now: bool = False) -> None:
    """``ValidationError`` naming ``repeat.endDate`` when it is before ``start`` (``now``: the start is now): what
    ``schedule()``, ``reschedule()`` and a preview refuse alike."""
    if end_date is not None and end_date < start:
        said = " (now)" if now else ""
        raise ValidationError("repeat.endDate", f"{end_date.isoformat()} is before the start {start.isoformat()}{said}")


# ------------------------------------------------------------------------------------- stored records


class Schedule(Struct, frozen=True):
    """A job instance made by ``schedule()``: the request, its recurrence and where it stands."""

    id: str
    job_tag: str
    env: str
    product_tag: str
    input: dict[str, Any]
    retries: int
    status: ScheduleStatus
    start_at: datetime
    next_run_at: datetime | None
    run_count: int
    created_at: datetime
    app: str | None = None
    cache: str | None = None
    session_tag: str | None = None
    session: dict[str, Any] | None = None  # the verified session data (never the token)
    cron: str | None = None
    tz: str = "UTC"
    every: timedelta | None = None
    limit: int | None = None
    end_date: datetime | None = None
    follows_job: bool = False
    timeout: timedelta | None = None
    misfire: Misfire = Misfire.RUN_ONCE
    overlap: Overlap = Overlap.ALLOW
    pause_on_failure: bool = False
    last_due_at: datetime | None = None
    skipped_count: int = 0
    reason: str | None = None
    job_product: str = ""  # the product of the job it runs: product_tag (its own job), or '' (a shared job)
    priority: int | None = None  # None: its job's priority
    trace_context: str | None = None  # the trace current at schedule() (tracing.py), when tracing is on
    # unique: a caller's key (``schedule_key``), or a JOB event's "<feature run>:<sequence>:<event>", by which a
    # resumed feature run finds the schedule its event made
    feature_key: str | None = None

    @property
    def recurring(self) -> bool:
        return self.cron is not None or self.every is not None

    @property
    def key(self) -> str | None:
        """The key the caller named it by (``schedule({..., "key": ...})``); ``None``: none."""
        named, prefix = self.feature_key, schedule_key(self.product_tag, self.env, "")
        return named[len(prefix) :] if named is not None and named.startswith(prefix) else None

    @property
    def job_id(self) -> str:
        """``id`` by the name ``schedule()`` answers it (``DispatchResult.job_id``), a run holds it (``Run.job_id``)
        and the API and the CLI show it."""
        return self.id


class Attempt(Struct, frozen=True):
    run_id: str
    attempt: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = None
    error: str | None = None


class Run(Struct, frozen=True):
    """One occurrence of a schedule (or a one-off), with its attempts' summary."""

    id: str
    job_id: str  # its schedule's id: what schedule() answered (the SDK's name)
    job_tag: str
    product_tag: str
    env: str
    event_type: JobEventTypes
    event_tag: str
    phase: RunPhase
    scheduled_at: datetime
    input: dict[str, Any]
    max_retries: int
    retry_count: int = 0
    attempt: int = 0
    triggered_by: TriggeredBy = TriggeredBy.SCHEDULE
    available_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    error: str | None = None
    output: Any = None
    timeout: timedelta | None = None
    app: str | None = None
    cache: str | None = None
    session: dict[str, Any] | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    attempts: list[Attempt] = field(default_factory=list)
    priority: int = 0
    waiting_on: str | None = None  # the limit that held it at the last claim, while it waits
    limit_keys: tuple[str, ...] = ()  # the stored limits it falls under (resources.py)
    trace_context: str | None = None  # its schedule's (tracing.py): the trace its attempts continue or link to


class NewRun(Struct, frozen=True):
    """A run the engine asks the store to create."""

    id: str
    schedule_id: str
    scheduled_at: datetime
    available_at: datetime | None
    phase: RunPhase
    triggered_by: TriggeredBy


class RunFilter(Struct, frozen=True):
    job_id: str | None = None
    job_tag: str | None = None
    phase: RunPhase | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0
    product_tag: str | None = None
    env: str | None = None
    after: str | None = None  # a run's id: the runs past it in this order (its due time, then its id)


class DispatchResult(Struct, frozen=True):
    """What ``schedule()`` answers, as the SDK's ``dispatch()`` does."""

    job_id: str
    status: RunPhase
    scheduled_at: datetime
    recurring: bool
    next_run_at: datetime | None


class DrainSummary(Struct):
    """What ``drain()`` did."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    created: int = 0
    cancelled: int = 0  # failed attempts not retried: their schedule was cancelled while they ran

    @property
    def ran(self) -> int:
        return self.completed + self.failed + self.retried + self.cancelled


class Execution(Struct, frozen=True):
    """One run of a schedule as its history shows it (``job.history``). ``number`` counts the schedule's runs
    from 1 in order of their due time (runs due at the same instant, a manual one and an occurrence, by id);
    ``result`` is the run's output."""

    number: int
    run_id: str
    phase: RunPhase
    scheduled_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    error: str | None
    result: Any
    triggered_by: TriggeredBy
    retry_count: int


class JobHistory(Struct, frozen=True):
    """What ``job.history(job_id)`` answers: counts over every run of the schedule (``successful``: completed,
    ``failed``: failed for good) and its newest runs, newest first."""

    job_id: str
    job_tag: str
    total: int
    successful: int
    failed: int
    executions: list[Execution]
    cut: int = 0  # of the newest runs asked for, those left out to keep within a bound in bytes (the HTTP API's)


class JobStats(Struct, frozen=True):
    """What ``job.stats()`` answers for the runs due in ``[since, until)`` (of ``product_tag``/``env``, when
    given). A run is *finished* when it completed or failed for good; ``success_rate`` (completed / finished)
    and ``average_retry_count`` (over finished runs) are ``None`` while none is. ``by_phase`` holds every
    phase, zeros included."""

    total: int
    by_phase: dict[RunPhase, int]
    finished: int
    success_rate: float | None
    completed_first_try: int
    completed_after_retry: int
    average_retry_count: float | None
    product_tag: str | None = None
    env: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# ------------------------------------------------------------------ operating records (API keys, webhooks, stats)


class KeyScope(StrEnum):
    """What an API key may do. Scopes are ranked, each includes the ones below it: ``read`` (lists, runs,
    statistics, events, previews), ``write`` (also schedule, pause, resume, cancel, trigger, retry, run features,
    change job definitions), ``admin`` (also webhooks; keys and products are managed by the CLI)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def granted(self) -> tuple[KeyScope, ...]:
        """This scope and the ones it includes, lowest first (``admin`` -> read, write, admin)."""
        order = tuple(KeyScope)
        return order[: order.index(self) + 1]

    def allows(self, needed: KeyScope) -> bool:
        return needed in self.granted


class ApiKey(Struct, frozen=True):
    """An API key as stored: a visible ``prefix`` and a salted ``hash``, never the key itself. ``product_tag``
    (and ``env``) limit what the key sees; ``None`` means every product (env). ``scope`` limits what it may do
    (keys stored before scopes existed are ``admin``, as they could do everything)."""

    id: str
    name: str
    prefix: str
    hash: str
    created_at: datetime
    product_tag: str | None = None
    env: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    scope: KeyScope = KeyScope.ADMIN


class LoginSession(Struct, frozen=True):
    """A dashboard login: the browser's cookie holds a random token, the store only its SHA-256
    (``token_hash``). It acts for API key ``key_id`` until ``expires_at``, its logout, or the key's revocation."""

    token_hash: str
    key_id: str
    created_at: datetime
    expires_at: datetime


class Webhook(Struct, frozen=True):
    """Lifecycle events (``job.completed``, ...) of a product's schedules and runs, POSTed to ``url``. ``url`` and
    ``secret`` are whole (deliveries use them); its ``repr`` shows ``url`` as every answer does
    (``redaction.redact_webhook_url``) and leaves ``secret`` out."""

    id: str
    product_tag: str
    url: str
    events: list[str]
    secret: str
    created_at: datetime

    def __repr__(self) -> str:
        return repr_without(self, WEBHOOK_SECRET, WEBHOOK_SHOWN)

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return fields_without(self, WEBHOOK_SECRET, WEBHOOK_SHOWN)


#: What the ``repr`` of a record holding a webhook's URL and secret leaves out and masks.
WEBHOOK_SECRET = frozenset({"secret"})
WEBHOOK_SHOWN = {"url": redact_webhook_url}


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at (again, after a failed attempt)
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last attempt


class WebhookDelivery(Struct, frozen=True):
    """One event for one webhook, and how its sending went."""

    id: str
    webhook_id: str
    event: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    last_status: int | None = None  # the HTTP status of the last attempt's answer (None: no answer, not sent)
    last_duration_ms: int | None = None  # how long the last attempt took


class MinuteCount(Struct, frozen=True):
    """Runs that ended (completed or failed for good) in the minute starting at ``minute``."""

    minute: datetime
    completed: int
    failed: int


class RunActivity(Struct, frozen=True):
    """A cheap fingerprint of the runs: it changes whenever a run is created, starts or ends."""

    latest_run_id: str | None
    latest_finished_at: datetime | None
    running: int
    queued: int


if not TYPE_CHECKING:
    #: The input models, here until inputs.py took them: an older ``from ductape_jobs.models import ScheduleRequest``,
    #: and one pickled then, still find them (imported when named, so that this module loads no pydantic).
    _MOVED = frozenset({"JobDefinition", "JobUpdate", "RepeatOptions", "ScheduleRequest", "Session", "parse"})

    def __getattr__(name: str) -> Any:
        if name in _MOVED:
            from importlib import import_module

            return getattr(import_module("ductape_jobs.inputs"), name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
