"""The seeds' records: job definitions (``IProductJob``), schedule requests (``IJobProcessorInput``,
``IJobRepeatOptions``, ``ISession``), and what the store keeps: schedules, runs and their attempts.

Input models are pydantic (they validate); stored records are msgspec Structs (they are read in the hot
path). The seeds' millisecond and Unix-timestamp fields are converted here, once, into aware UTC
``datetime`` and ``timedelta``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from msgspec import Struct, field
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic._internal._model_construction import ModelMetaclass  # where every 2.x keeps it

from ductape_jobs.errors import ValidationError, field_path
from ductape_jobs.limits import (
    LATEST,
    LONE_SURROGATE,
    MAX_COUNT,
    MAX_MILLIS,
    MAX_RETRIES,
    MIN_EVERY,
    check_free_data,
    check_nesting,
    check_object,
    printable_rule,
)
from ductape_jobs.redaction import fields_without, redact_webhook_url, repr_without
from ductape_jobs.resources import MAX_LIMIT, MAX_PRIORITY, MIN_PRIORITY, limit_keys, parse_rate
from ductape_jobs.retention import Keep, keep_json, parse_job_keep
from ductape_jobs.timing.planning import Misfire
from ductape_jobs.timing.recurrence import check_zone, normalize_cron, zone

__all__ = [
    "ApiKey",
    "Attempt",
    "DeliveryStatus",
    "DispatchResult",
    "DrainSummary",
    "Execution",
    "JobDefinition",
    "JobEventTypes",
    "JobHistory",
    "JobStats",
    "JobUpdate",
    "KeyScope",
    "LoginSession",
    "MinuteCount",
    "Misfire",
    "Overlap",
    "RepeatOptions",
    "Run",
    "RunActivity",
    "RunFilter",
    "RunPhase",
    "Schedule",
    "ScheduleRequest",
    "ScheduleStatus",
    "Session",
    "TriggeredBy",
    "Webhook",
    "WebhookDelivery",
]

SECONDS_LIMIT = 100_000_000_000  # a Unix timestamp below 1e11 is seconds, otherwise milliseconds
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")


EventEnum = TypeVar("EventEnum", bound=StrEnum)
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
        if re.fullmatch(r"\d+(\.\d+)?", text):
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


def check_window(since: object, until: object) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` (``check_time``), ``since`` not after ``until``: the runs and the stats of a window
    refuse one the wrong way round alike (the runs answered none)."""
    start, end = check_time(since, "since"), check_time(until, "until")
    if start is not None and end is not None and start > end:
        raise ValidationError("since", f"{start.isoformat()} is after until {end.isoformat()}")
    return start, end


def _cadence(intervals: int | None) -> int | None:
    if intervals is not None and 0 < intervals < MIN_EVERY:
        raise ValueError(f"must be 0 (run once) or at least {MIN_EVERY} (milliseconds)")
    return intervals


def _not_too_late(value: datetime) -> datetime:
    if value > LATEST:
        raise ValueError(f"is after {LATEST.date().isoformat()}, the latest time the engine takes")
    return value


def _no_bool(value: object) -> object:
    if isinstance(value, bool):  # pydantic's lax int would take True as 1 (``every=True`` = every millisecond)
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str):  # nor "3" as 3: a count is a number
        raise ValueError("must be a number, not text")
    return value


def _ms_positive(value: object) -> object:
    if isinstance(value, timedelta):
        return int(value.total_seconds() * 1000)
    return _no_bool(value)


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


def _event_type(value: object) -> object:
    return JobEventTypes.parse(value)


Tag = Annotated[str, AfterValidator(_tag)]  # after: checks the stripped text


def _distinct(names: list[str]) -> list[str]:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ValidationError(f"[{i}]", f"{name!r} is named twice")
    return names


#: The resources a job names: each once (a name given twice was stored twice).
Resources = Annotated[list[Tag], Field(max_length=16), AfterValidator(_distinct)]
EventType = Annotated[JobEventTypes, BeforeValidator(_event_type)]
Millis = Annotated[int, BeforeValidator(_ms_positive), Field(le=MAX_MILLIS)]
Count = Annotated[int, BeforeValidator(_no_bool), Field(le=MAX_COUNT)]
# Their bounds before the validator, so that the JSON schema spells them minimum / maximum (after it: ge / le)
Priority = Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY), BeforeValidator(_no_bool)]
Concurrency = Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(_no_bool)]  # runs of a job at once


def _printable(value: str) -> str:
    """No control character (``limits.check_printable``): a name is shown on terminals; NUL, which PostgreSQL's
    text cannot hold (SQLite's can), is refused on both stores too, before any write."""
    rule = printable_rule(value)
    if rule is not None:
        raise ValueError(rule)
    return value


NonEmpty = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_printable)]
ShortText = Annotated[str, Field(max_length=128), AfterValidator(_printable)]


def _json_object(value: object) -> dict[str, Any]:
    """A JSON object within the input limits (``limits.py``); errors name the path inside it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("must be an object (a dict)")
    try:
        return check_object(value, "$")
    except ValidationError as exc:  # pydantic puts the field's own name in front
        inner = exc.field.removeprefix("$").removeprefix(".")
        if not inner:
            raise ValueError(exc.rule) from None
        raise ValidationError(inner, exc.rule) from None


def _nested(value: Any) -> Any:
    """A product's free-form value (an app's constants, an action's body, a feature event's input) nests at most
    ``MAX_DEPTH`` levels (``limits.check_nesting``): every walk of a product's values (its secrets learnt, its
    ``${VAR}`` expanded, its placeholders found) recurses. Errors name the path inside it."""
    try:
        check_nesting(value, "$")
        check_free_data(value, "$")  # what JSON cannot send (bytes, a set, NaN, 10**23) failed each run that sent it
    except ValidationError as exc:  # pydantic puts the field's own name in front
        inner = exc.field.removeprefix("$").removeprefix(".")
        if not inner:
            raise ValueError(exc.rule) from None
        raise ValidationError(inner, exc.rule) from None
    return value


#: A product's free-form value, and one that is an object.
Free = Annotated[Any, AfterValidator(_nested)]
FreeObject = Annotated[dict[str, Any], AfterValidator(_nested)]


def _keep(value: object) -> Keep | None:
    try:
        return None if value is None else parse_job_keep(value, "keep")
    except ValidationError as exc:  # pydantic puts the field's own name in front
        raise ValueError(exc.rule) from None


JobKeep = Annotated[
    Keep | None,
    BeforeValidator(_keep),
    PlainSerializer(keep_json, when_used="json"),
    Field(description="how long this job's runs of that outcome are kept (7d, 12h), or how many of the newest"),
]


class Built(ModelMetaclass):
    """Built directly (``RepeatOptions(every=1000)``), a model raises our ``ValidationError`` naming the field, as
    ``parse`` does (pydantic's, which ``except ductape_jobs.ValidationError`` missed). Only a call of the class
    comes here: pydantic validates a nested model without calling it (an ``__init__`` of our own would be called
    for those too, and would lose their path)."""

    def __call__(cls, *args: Any, **data: Any) -> Any:
        try:
            return super().__call__(*args, **data)
        except PydanticValidationError as exc:
            raise invalid(reported(exc), default=cls.__name__) from None


class _Input(BaseModel, metaclass=Built):
    # validators are built on first use: a worker process, which validates none, does not pay for them
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True, defer_build=True)


# ------------------------------------------------------------------------------------- job definitions


class JobDefinition(_Input):
    """A job (the seeds' ``IProductJob``): which event it runs and its default cadence.

    A job belongs to a product (``product_tag``; its tag is unique within the product), as the seeds'
    ``product.jobs`` has it; ``ductape.product("shop").jobs.create(...)`` sets it. A job without a product is
    shared: every product's schedules may run it (a product's own job of the same tag comes first).

    ``keep_completed`` / ``keep_failed`` (not in the seeds): this job's own retention of its completed or failed
    runs, a duration (``"3d"``) or a count (``100``: the newest 100); unset, the client's ``Retention`` applies.
    """

    name: NonEmpty
    tag: Tag
    product_tag: Tag | None = None
    event_type: EventType
    event_tag: NonEmpty
    executions: Count = Field(default=0, ge=0, description="runs of the job's cadence; 0 = unlimited")
    intervals: Millis = Field(default=0, ge=0, description="milliseconds between runs; 0 = run once")
    start_at: datetime | None = None
    keep_completed: JobKeep = None
    keep_failed: JobKeep = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    resources: Resources = Field(default_factory=list, description="its product's resources")
    concurrency: Concurrency | None = Field(default=None, description="its runs executing at once")
    rate: str | None = Field(default=None, description="its runs started per window: '10/s', '600/min'")
    priority: Priority = Field(default=0, description="its runs' default priority")

    @field_validator("start_at", mode="before")
    @classmethod
    def _start(cls, v: object) -> datetime | None:
        return to_utc(v)

    @field_validator("intervals")
    @classmethod
    def _intervals(cls, v: int) -> int:
        return _cadence(v) or 0

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        return _rate(v)

    @model_validator(mode="after")
    def _runs_apart(self) -> JobDefinition:
        check_cadence(self.executions, self.intervals)
        return self

    @property
    def limit_keys(self) -> list[str]:
        """The stored limits its runs fall under (``resources.py``); empty: none."""
        own = self.concurrency is not None or self.rate is not None
        return limit_keys(self.product_tag, self.tag, list(self.resources), own)


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


def _rate(v: str | None) -> str | None:
    if v is None:
        return None
    try:
        return str(parse_rate(v, "rate"))
    except ValidationError as exc:
        raise ValueError(exc.rule) from None


_CLEARABLE = frozenset({"start_at", "keep_completed", "keep_failed", "concurrency", "rate"})


class JobUpdate(_Input):
    """The updatable fields of a job; ``tag`` stays."""

    name: NonEmpty | None = None
    event_type: EventType | None = None
    event_tag: NonEmpty | None = None
    executions: Count | None = Field(default=None, ge=0)
    intervals: Millis | None = Field(default=None, ge=0)
    start_at: datetime | None = None
    resources: Resources | None = None
    concurrency: Concurrency | None = None
    rate: str | None = None
    priority: Priority | None = None
    keep_completed: JobKeep = None
    keep_failed: JobKeep = None

    @model_validator(mode="before")
    @classmethod
    def _no_tag(cls, data: object) -> object:
        for fixed in ("tag", "product_tag"):
            if isinstance(data, dict) and fixed in data:
                raise ValidationError(fixed, "cannot be changed; create a new job instead")
        if isinstance(data, dict):
            for name, value in data.items():
                if value is None and name not in _CLEARABLE:  # null clears these; the others always hold a value
                    raise ValidationError(str(name), "must not be null (leave it out to keep the current value)")
        return data

    @field_validator("start_at", mode="before")
    @classmethod
    def _start(cls, v: object) -> datetime | None:
        return to_utc(v)

    @field_validator("intervals")
    @classmethod
    def _intervals(cls, v: int | None) -> int | None:
        return _cadence(v)

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        return _rate(v)


# ------------------------------------------------------------------------------------ schedule requests


class Session(_Input):
    """The seeds' ``ISession``: a session tag and its token (``"tag:jwt"`` is accepted too)."""

    tag: NonEmpty
    token: Annotated[str, Field(min_length=1, max_length=16_384)]

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: object) -> object:
        if isinstance(data, str):
            tag, sep, token = data.partition(":")
            if not sep or not tag or not token:
                raise ValueError("a session string must be 'tag:token'")
            return {"tag": tag, "token": token}
        return data


class RepeatOptions(_Input):
    """The seeds' ``IJobRepeatOptions``: exactly one of ``cron`` or ``every``."""

    cron: Annotated[str, Field(max_length=256)] | None = None
    every: Millis | None = Field(default=None, description="milliseconds between runs")
    limit: Count | None = Field(default=None, description="at most this many runs")
    end_date: datetime | None = Field(default=None, alias="endDate")
    tz: ShortText = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _one_end_date(cls, data: object) -> object:
        if isinstance(data, dict) and "endDate" in data and "end_date" in data:
            raise ValidationError("endDate", "give endDate or end_date, not both")
        if isinstance(data, dict):  # seed 004: "Stop after this date": a date alone is its whole day, in tz
            key = "endDate" if "endDate" in data else "end_date"
            end = _end_of_day(data.get(key), data.get("tz", "UTC"))
            if end is not None:
                data = {**data, key: end}
        return data

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        return None if v is None else normalize_cron(v)

    @field_validator("every")
    @classmethod
    def _every(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError("every must be > 0 (milliseconds)")
        if v is not None and v < MIN_EVERY:
            raise ValueError(f"every must be at least {MIN_EVERY} (milliseconds)")
        return v

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("limit must be >= 1")
        return v

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_zone(v)

    @field_validator("end_date", mode="before")
    @classmethod
    def _end(cls, v: object) -> datetime | None:
        return to_utc(v, allow_zero=False)

    @model_validator(mode="after")
    def _one_of(self) -> RepeatOptions:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron or every")
        if self.every is not None and self.tz not in _UTC_NAMES:
            raise ValidationError("tz", "applies to cron only: every counts absolute time in any zone")
        return self


def _end_of_day(value: object, tz: object) -> datetime | None:
    """The last millisecond (the store's unit) of the day ``value`` names, a ``date`` or ``YYYY-MM-DD`` text, in
    the zone ``tz``; ``None`` for anything else (a time, or what the fields' own checks refuse)."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            return None
    if type(value) is not date or not isinstance(tz, str) or value > LATEST.date():  # past the end: to_utc refuses
        return None
    try:
        midnight = datetime.combine(value + timedelta(days=1), time(), tzinfo=zone(check_zone(tz.strip())))
    except (ValueError, OverflowError):  # an unknown zone (tz's check says so), the last day there is
        return None
    return min(midnight.astimezone(UTC) - timedelta(milliseconds=1), LATEST)  # the last day: up to the end of time


def check_end_date(end_date: datetime | None, start: datetime, *, now: bool = False) -> None:
    """``ValidationError`` naming ``repeat.endDate`` when it is before ``start`` (``now``: the start is now): what
    ``schedule()``, ``reschedule()`` and a preview refuse alike."""
    if end_date is not None and end_date < start:
        said = " (now)" if now else ""
        raise ValidationError("repeat.endDate", f"{end_date.isoformat()} is before the start {start.isoformat()}{said}")


#: The IANA names of UTC itself (a zone at offset 0 with no daylight saving, ever): ``every`` takes any of them.
_UTC_NAMES = frozenset(
    {"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu", "GMT", "Etc/GMT", "GMT0",
     "Etc/GMT0", "GMT+0", "Etc/GMT+0", "GMT-0", "Etc/GMT-0", "Greenwich", "Etc/Greenwich"}
)  # fmt: skip


class ScheduleRequest(_Input):
    """The seeds' ``IJobProcessorInput``: run the job ``event`` of a product in an environment."""

    env: NonEmpty
    product_tag: NonEmpty
    event: Tag = Field(description="the job tag to run")
    start_at: datetime | None = Field(default=None, description="Unix seconds or ms, ISO 8601; 0 = now")
    retries: Count = Field(default=0, ge=0, le=MAX_RETRIES)
    input: dict[str, Any] = Field(default_factory=dict)
    app: ShortText | None = None
    cache: ShortText | None = None
    session: Session | None = None
    repeat: RepeatOptions | None = None
    timeout: Millis | None = Field(default=None, gt=0, description="max runtime of one attempt, ms")
    misfire: Misfire = Misfire.RUN_ONCE
    overlap: Overlap = Overlap.ALLOW
    pause_on_failure: StrictBool = False  # "yes", "off", 1 or 0 are refused: JSON's true or false only
    priority: Priority | None = Field(default=None, description="default: the job's")

    @field_validator("start_at", mode="before")
    @classmethod
    def _start(cls, v: object) -> datetime | None:
        return to_utc(v)

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, v: object) -> dict[str, Any]:
        return _json_object(v)

    @model_validator(mode="after")
    def _end_after_start(self) -> ScheduleRequest:
        if self.repeat and self.repeat.end_date and self.start_at and self.repeat.end_date < self.start_at:
            raise ValidationError("repeat.endDate", "is before start_at")
        return self


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: object, prefix: str = "") -> M:
    """Validate ``data`` (a dict or a model) into ``model``; raise our ``ValidationError`` naming the field.

    ``prefix`` names ``data`` itself (``"repeat"``): fields are reported as ``repeat.cron``.
    """
    if isinstance(data, model):
        data = data.model_dump(exclude_unset=True)
    elif isinstance(data, BaseModel):
        data = data.model_dump(exclude_unset=True, by_alias=True)
    if not isinstance(data, dict):
        raise ValidationError(prefix or "request", f"expected an object (dict), got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise invalid(reported(exc), prefix, default=model.__name__) from None


_RULES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "string_unicode": LONE_SURROGATE,
    "string_too_short": "must be at least {min_length} character(s)",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must hold at least {min_length} item(s)",
    "too_long": "must hold at most {max_length} items",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "is beyond a signed 64-bit integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "literal_error": "must be {expected}",
    "enum": "must be one of {expected}",
    "string_pattern_mismatch": "must match {pattern}",
    "datetime_parsing": "must be a date-time",
    "datetime_type": "must be a date-time",
    "json_invalid": "is not valid JSON",
}


def reported(exc: PydanticValidationError) -> Any:
    """The one of pydantic's errors a ``ValidationError`` reports: a field that is not known, if any (a typo, such
    as ``event`` for ``events``, also leaves the field meant missing: ``events: is required`` hid the typo), else
    the first."""
    errors = exc.errors()
    return next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])


def invalid(err: Any, prefix: str = "", default: str = "body") -> ValidationError:
    """Our ``ValidationError`` for one of pydantic's (or FastAPI's) error dicts: the field in our path format
    (``sequence[0].events[1].input``), the rule in our words (``must be >= 0``, not pydantic's sentence)."""
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    keys: list[str | int] = [k for k in err.get("loc", ()) if not (isinstance(k, str) and "[" in k)]
    within = ""  # the path inside the field, when it starts with a list's index: body[0], not body.[0]
    if isinstance(cause, ValidationError):  # a validator that knows which field it checks
        if cause.field.startswith("["):
            within = cause.field
        else:
            keys.append(cause.field)
        rule = cause.rule
    else:
        template = _RULES.get(str(err.get("type")))
        try:
            rule = template.format(**ctx) if template else ""
        except (KeyError, IndexError):
            rule = ""
        rule = rule or str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    return ValidationError(field_path(prefix, *keys) + within or default, rule)


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
    # a JOB event's schedule: "<feature run>:<sequence>:<event>", unique, so a resumed feature run finds it
    feature_key: str | None = None

    @property
    def recurring(self) -> bool:
        return self.cron is not None or self.every is not None

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
