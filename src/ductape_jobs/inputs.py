"""The seeds' input models: a job definition (``IProductJob``), its update, a schedule request
(``IJobProcessorInput``, ``IJobRepeatOptions``, ``ISession``), and the annotated types other input models share
(``Tag``, ``NonEmpty``, ``Count``, ...). pydantic validates them; ``parse`` turns its errors into our
``ValidationError`` naming the field. Only what validates a caller's input imports this module: a worker process
runs stored records (``models.py``) and loads none of pydantic.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

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
from ductape_jobs.lifecycle import KINDS
from ductape_jobs.limits import (
    LATEST,
    LONE_SURROGATE,
    MAX_COUNT,
    MAX_MILLIS,
    MAX_RETRIES,
    MAX_SESSION_TOKEN,
    MIN_EVERY,
    check_free_data,
    check_nesting,
    check_object,
    printable_rule,
)
from ductape_jobs.models import JobEventTypes, Overlap, _tag, check_cadence, to_utc
from ductape_jobs.resources import MAX_LIMIT, MAX_PRIORITY, MIN_PRIORITY, limit_keys, parse_rate
from ductape_jobs.retention import Keep, keep_json, parse_job_keep
from ductape_jobs.timing.planning import Misfire
from ductape_jobs.timing.recurrence import check_zone, normalize_cron, zone

__all__ = [
    "JobDefinition",
    "JobUpdate",
    "RepeatOptions",
    "ScheduleRequest",
    "Session",
    "WebhookRequest",
    "invalid",
    "parse",
]


def _cadence(intervals: int | None) -> int | None:
    if intervals is not None and 0 < intervals < MIN_EVERY:
        raise ValueError(f"must be 0 (run once) or at least {MIN_EVERY} (milliseconds)")
    return intervals


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


def _event_type(value: object) -> object:
    return JobEventTypes.parse(value)


def rate_text(v: str | None) -> str | None:
    """A ``rate`` field's text as stored (``10/s``), or pydantic's ``ValueError`` naming the rule it breaks: a job's
    and a product resource's alike."""
    if v is None:
        return None
    try:
        return str(parse_rate(v, "rate"))
    except ValidationError as exc:
        raise ValueError(exc.rule) from None


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
#: A time: Unix seconds or ms, ISO 8601 text or a datetime, in UTC (``models.to_utc``; 0: now).
Instant = Annotated[datetime | None, BeforeValidator(to_utc)]
#: Runs started per window (``10/s``, ``600/min``; ``rate_text``): a job's and a product resource's.
RateText = Annotated[str | None, AfterValidator(rate_text)]


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
    start_at: Instant = None
    keep_completed: JobKeep = None
    keep_failed: JobKeep = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    resources: Resources = Field(default_factory=list, description="its product's resources")
    concurrency: Concurrency | None = Field(default=None, description="its runs executing at once")
    rate: RateText = Field(default=None, description="its runs started per window: '10/s', '600/min'")
    priority: Priority = Field(default=0, description="its runs' default priority")

    @field_validator("intervals")
    @classmethod
    def _intervals(cls, v: int) -> int:
        return _cadence(v) or 0

    @model_validator(mode="after")
    def _runs_apart(self) -> JobDefinition:
        check_cadence(self.executions, self.intervals)
        return self

    @property
    def limit_keys(self) -> list[str]:
        """The stored limits its runs fall under (``resources.py``); empty: none."""
        own = self.concurrency is not None or self.rate is not None
        return limit_keys(self.product_tag, self.tag, list(self.resources), own)


_CLEARABLE = frozenset({"start_at", "keep_completed", "keep_failed", "concurrency", "rate"})


class JobUpdate(_Input):
    """The updatable fields of a job; ``tag`` stays."""

    name: NonEmpty | None = None
    event_type: EventType | None = None
    event_tag: NonEmpty | None = None
    executions: Count | None = Field(default=None, ge=0)
    intervals: Millis | None = Field(default=None, ge=0)
    start_at: Instant = None
    resources: Resources | None = None
    concurrency: Concurrency | None = None
    rate: RateText = None
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

    @field_validator("intervals")
    @classmethod
    def _intervals(cls, v: int | None) -> int | None:
        return _cadence(v)


# ------------------------------------------------------------------------------------ schedule requests


class Session(_Input):
    """The seeds' ``ISession``: a session tag and its token (``"tag:jwt"`` is accepted too)."""

    tag: NonEmpty
    token: Annotated[str, Field(min_length=1, max_length=MAX_SESSION_TOKEN)]

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
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
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
    start_at: Instant = Field(default=None, description="Unix seconds or ms, ISO 8601; 0 = now")
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
    key: Tag | None = Field(
        default=None,
        description="names the schedule in its product and env: a schedule() with a key already made answers that "
        "schedule and makes none (not in the seeds)",
    )

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


# ------------------------------------------------------------------------------------------ webhooks


class WebhookRequest(BaseModel, metaclass=Built):
    """``POST /webhooks``: where a product's events go. ``secret`` (>= 16 characters) is drawn if absent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)  # built when first used

    product_tag: NonEmpty  # printable text, as a schedule's
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    events: list[str] = Field(min_length=1)
    secret: Annotated[str, Field(min_length=16, max_length=256)] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in v):  # CR/LF would split its request's head, NUL end it
            raise ValueError("must not contain spaces or control characters (CR, LF, NUL, ...)")
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in KINDS:
                raise ValueError(f"{name!r} is not one of {', '.join(KINDS)}")
        return list(dict.fromkeys(v))
