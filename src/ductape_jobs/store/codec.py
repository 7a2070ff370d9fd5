"""Conversions between records and the column values both SQL backends store (ms timestamps, JSON text)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import msgspec

from ductape_jobs.errors import ERROR_TEXT_CHARS, ValidationError, clip, describe
from ductape_jobs.limits import LONE_SURROGATE, MAX_OUTPUT_BYTES, has_lone_surrogate
from ductape_jobs.logs import logger
from ductape_jobs.models import (
    Attempt,
    JobEventTypes,
    Misfire,
    NewRun,
    Overlap,
    Run,
    RunPhase,
    Schedule,
    ScheduleStatus,
    TriggeredBy,
)
from ductape_jobs.retention import MAX_KEEP_RUNS, MAX_KEEP_TIME, Keep, format_keep, parse_job_keep

if TYPE_CHECKING:
    from ductape_jobs.inputs import JobDefinition
    from ductape_jobs.store.base import Outcome, ScheduleChange

log = logger("ductape_jobs.store")


def ms(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def from_ms(v: int | None) -> datetime | None:
    return None if v is None else datetime.fromtimestamp(v / 1000, UTC)


def td_ms(d: timedelta | None) -> int | None:
    return None if d is None else int(d.total_seconds() * 1000)


def ms_td(v: int | None) -> timedelta | None:
    return None if v is None else timedelta(milliseconds=v)


_E = TypeVar("_E", bound=Enum)


def _members(cls: type[_E]) -> Callable[[str], _E]:
    """``cls(value)`` by one dict lookup: calling an Enum class costs about 1 µs, and a claimed run decodes three.
    A value that is not a member's raises as ``cls(value)`` does."""
    members = {m.value: m for m in cls}

    def member(value: str) -> _E:
        found = members.get(value)
        return cls(value) if found is None else found

    return member


_event_type, _phase, _triggered_by = _members(JobEventTypes), _members(RunPhase), _members(TriggeredBy)
_status, _misfire, _overlap = _members(ScheduleStatus), _members(Misfire), _members(Overlap)


#: Values the codec stores as their text (``str(value)``) besides JSON's own types.
AS_TEXT: tuple[type, ...] = (datetime, date, time, Decimal, UUID)
_SCALARS = (str, bool, int, float, *AS_TEXT)


#: One encoder for every value (``json.dumps`` with options builds an encoder a call: most of a small value's cost).
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


def dumps(value: Any) -> str:
    return _ENCODE(value)


#: Rows sent as one JSON document (a statement that reads its rows with ``json_to_recordset`` or ``json_each``):
#: msgspec's encoder, in C, takes about a tenth of ``json.dumps``' time a row (a bulk ``schedule_many`` spent a
#: quarter of its CPU there).
_ROWS = msgspec.json.Encoder()


def rows_json(rows: Sequence[Any]) -> str:
    """``rows`` (parameter dicts, or plain values such as ids) as one JSON list."""
    try:
        return _ROWS.encode(rows).decode()
    except (UnicodeEncodeError, TypeError):  # a lone surrogate (json.dumps writes an escape; the server answers), or
        return json.dumps(list(rows), separators=(",", ":"))  # a subclass of str, int or float, which msgspec refuses


_DECODE = msgspec.json.decode


def loads(text: str) -> Any:
    """Stored JSON text as values: msgspec's decoder (a run's small input in a seventh of ``json.loads``'s time).
    What it refuses and ``json`` reads (NaN, a number past a float's range, a lone surrogate: ``dumps`` can write
    them), ``json`` reads, so every value decodes as ``json.loads`` would."""
    try:
        return _DECODE(text)
    except (msgspec.DecodeError, UnicodeEncodeError):  # the latter: a str holding a lone surrogate unescaped
        return json.loads(text)


def storable(text: str | None) -> str | None:
    """An error text as every store can keep it (an exception's message, a remote server's answer): at most
    ``ERROR_TEXT_CHARS`` characters, a longer one cut with a mark (``errors.clip``; whoever built it, and after
    masking, which may lengthen it), a NUL character, which PostgreSQL's text cannot hold, written ``\\x00``, and a
    lone surrogate (a file name decoded with ``surrogateescape``), which UTF-8 cannot encode, written ``\\udce9``; on
    both stores, so both read the same."""
    if text is None:
        return None
    size = len(text)
    if size > ERROR_TEXT_CHARS:  # cut first: the scans below then read at most the bound
        text = clip(text)
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= ERROR_TEXT_CHARS else clip(text, size)  # the escapes made it longer


def not_json(value: Any, name: str = "output") -> str | None:
    """Why ``value`` is not a JSON value by the codec's rules, naming where (``output.rows[2] is a Foo``), or
    ``None`` when it is: dicts with string (or number, boolean, null) keys, lists, tuples, strings, numbers,
    booleans, ``None``, and the :data:`AS_TEXT` types (stored as text). Not: a value nested deeper than
    ``MAX_OUTPUT_DEPTH`` (one that contains itself is), a NaN or an infinity, an integer of more than 4,000 digits
    (past Python's own bound on converting one to text), text with a lone surrogate (UTF-8 cannot encode it)."""
    stack: list[tuple[str, Any, int]] = [(name, value, 0)]
    while stack:
        where, item, depth = stack.pop()
        if item is None:
            continue
        if isinstance(item, _SCALARS):
            problem = _not_json_scalar(item)
            if problem is not None:
                return f"{where} {problem}"
            continue
        if depth >= MAX_OUTPUT_DEPTH and isinstance(item, dict | list | tuple):
            return f"{where} nests deeper than {MAX_OUTPUT_DEPTH} levels (or contains itself)"
        if isinstance(item, dict):
            for key, child in item.items():
                if not (key is None or isinstance(key, str | bool | int | float)):
                    return f"{where} has a key of type {type(key).__qualname__} ({_short(key)})"
                problem = None if key is None else _not_json_scalar(key)
                if problem is not None:
                    return f"{where} has a key that {problem}"
                stack.append((f"{where}.{key}", child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", child, depth + 1) for i, child in enumerate(item))
        else:
            return f"{where} is of type {type(item).__qualname__} ({_short(item)})"
    return None


#: How deep a result may nest (``{"a": {"b": 1}}`` is 2): deeper would take encoding it (and reading it back) past
#: Python's recursion limit.
MAX_OUTPUT_DEPTH = 100
_INT_BITS = 13_000  # about 3,900 digits: Python converts at most 4,300 to text


def _not_json_scalar(item: Any) -> str | None:
    if isinstance(item, str):
        if has_lone_surrogate(item):
            return LONE_SURROGATE
    elif isinstance(item, float):
        if item != item or item in (_INF, -_INF):
            return f"is {item!r}, which JSON has no number for"
    elif isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > _INT_BITS:
        return "is an integer of more than 3,900 digits"
    return None


_INF = float("inf")


def _stored_output(o: Outcome) -> tuple[str | None, str | None]:
    """The outcome's output as stored JSON, or the error that records why it cannot be (``outcome_params``): its
    ``stored`` text when its maker encoded it (a worker does, ``output_json``), else ``output_json`` of it here, for
    any other caller: an output that cannot be stored fails its attempt, for good, instead of the batch of outcomes
    it is recorded with."""
    if not o.ok or o.output is None:
        return None, None
    if o.stored is not None:
        return o.stored, None
    text, problem = output_json(o.output)
    if problem is None:
        return text, None
    log.warning("run %s, attempt %d: %s; the attempt failed", o.run_id, o.attempt, problem)
    return None, storable(f"ResultError: {problem}")


def output_json(value: Any) -> tuple[str | None, str | None]:
    """A run's output as its stored JSON text (``stored_json``), or why it cannot be stored: it fails to encode (one
    that contains itself, a number too long for text: what an executor's own check let through), or its JSON is
    longer than ``MAX_OUTPUT_BYTES`` (measured on the text encoded here: the check costs a length). The one check of
    an output, made by the worker that ran it, which then records the attempt as failed and counts it so. It never
    raises: a value kept as its text (``AS_TEXT``) may be a subclass whose ``__str__`` raises anything, which fails
    the attempt as any other output that cannot be encoded (``describe`` reads that exception's text safely)."""
    try:
        text = stored_json(value)
    except Exception as exc:
        return None, f"the output cannot be stored ({describe(exc)})"
    if len(text) <= MAX_OUTPUT_BYTES:  # ASCII (``\u`` escapes): its length is its size in bytes
        return text, None
    return None, f"the output is {len(text):,} bytes of JSON; at most {MAX_OUTPUT_BYTES:,} are stored"


def stored_json(value: Any) -> str:
    """An output as stored JSON (a run's, a feature event's): ``dumps``, with each lone surrogate in its texts (an
    HTTP answer's JSON may escape one: ``"\\ud800"``) written as that escape's text, as ``storable`` writes one in an
    error. UTF-8 cannot encode a lone surrogate, so the HTTP API could not answer the run (500 on every list that
    held it). Pairs (an emoji escaped as two) are kept; distinct keys stay distinct. Only an output whose JSON escapes
    a lone surrogate is walked (``_lone_surrogate``: an emoji's pair is not one)."""
    text = dumps(value)
    return dumps(_mended(value)) if "\\ud" in text and _lone_surrogate(text) else text


#: JSON as ``dumps`` writes it (ASCII, lowercase escapes) as tokens: an escape's letters (``ud83d``, ``n``, ``\\``),
#: or ``""`` for a run of other characters. An escaped backslash is one token: a ``ud800`` after it is text.
_JSON_TOKENS = re.compile(r"\\(u[0-9a-f]{4}|.)|[^\\]+")


def _lone_surrogate(text: str) -> bool:
    """Whether ``text`` (JSON from ``dumps``) escapes a lone surrogate: a high half's escape not followed at once by
    a low half's, or a low half's not preceded by a high one's."""
    high = False
    for token in _JSON_TOKENS.findall(text):
        low = "udc00" <= token <= "udfff"
        if low is not high:
            return True
        high = not low and "ud800" <= token <= "udbff"
    return high


def _mended(value: Any) -> Any:
    if isinstance(value, str):
        joined = value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")  # pairs become one
        return joined.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_mended(k): _mended(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mended(v) for v in value]
    return value


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = object.__repr__(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_or_none(text: str | None) -> Any:
    return None if text is None else loads(text)


def job_from_row(r: Any) -> JobDefinition:
    """A job as stored. Its model (pydantic) is imported here, when a job is first read: a worker that only runs
    what was scheduled reads none, and loads no pydantic."""
    from ductape_jobs.inputs import JobDefinition

    return JobDefinition.model_construct(
        name=r["name"],
        tag=r["tag"],
        product_tag=r["product_tag"] or None,
        event_type=_event_type(r["event_type"]),
        event_tag=r["event_tag"],
        executions=r["executions"],
        intervals=r["intervals"],
        start_at=from_ms(r["start_at"]),
        keep_completed=keep_from_text(r["keep_completed"]),
        keep_failed=keep_from_text(r["keep_failed"]),
        created_at=from_ms(r["created_at"]),
        updated_at=from_ms(r["updated_at"]),
        resources=loads(r.get("resources") or "[]"),
        concurrency=r.get("concurrency"),
        rate=r.get("rate"),
        priority=r.get("priority") or 0,
    )


def keep_from_text(text: str | None) -> Keep | None:
    """A job's keep as stored (``format_keep``'s text). One stored before its bounds were checked (a keep past 100
    years, which would take the pruner's cutoff off the calendar) reads as the most kept."""
    if text is None:
        return None
    try:
        return parse_job_keep(text, "keep")
    except ValidationError:
        return MAX_KEEP_RUNS if text.strip().isdigit() else MAX_KEEP_TIME


def job_params(job: JobDefinition, now: datetime) -> dict[str, Any]:
    return {
        "tag": job.tag,
        "product_tag": job.product_tag or "",
        "name": job.name,
        "event_type": job.event_type.value,
        "event_tag": job.event_tag,
        "executions": job.executions,
        "intervals": job.intervals,
        "start_at": ms(job.start_at),
        "keep_completed": None if job.keep_completed is None else format_keep(job.keep_completed),
        "keep_failed": None if job.keep_failed is None else format_keep(job.keep_failed),
        "now": ms(now),
        "resources": dumps(list(job.resources)) if job.resources else None,
        "concurrency": job.concurrency,
        "rate": job.rate,
        "priority": job.priority,
        "limit_keys": dumps(job.limit_keys) if job.limit_keys else None,
    }


def schedule_params(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "job_tag": s.job_tag,
        "job_product": s.job_product,
        "env": s.env,
        "product_tag": s.product_tag,
        "input": dumps(s.input),
        "retries": s.retries,
        "app": s.app,
        "cache": s.cache,
        "session_tag": s.session_tag,
        "session_claims": None if s.session is None else dumps(s.session),
        "cron": s.cron,
        "tz": s.tz,
        "every_ms": td_ms(s.every),
        "run_limit": s.limit,
        "end_date": ms(s.end_date),
        "follows_job": int(s.follows_job),
        "timeout_ms": td_ms(s.timeout),
        "misfire": s.misfire.value,
        "overlap": s.overlap.value,
        "pause_on_failure": int(s.pause_on_failure),
        "status": s.status.value,
        "start_at": ms(s.start_at),
        "next_run_at": ms(s.next_run_at),
        "last_due_at": ms(s.last_due_at),
        "run_count": s.run_count,
        "created_at": ms(s.created_at),
        "priority": s.priority,
        "trace_context": s.trace_context,
    }


def schedule_from_row(r: Any) -> Schedule:
    return Schedule(
        id=r["id"],
        job_tag=r["job_tag"],
        env=r["env"],
        product_tag=r["product_tag"],
        input=loads(r["input"]),
        retries=r["retries"],
        status=_status(r["status"]),
        start_at=from_ms(r["start_at"]) or datetime.fromtimestamp(0, UTC),
        next_run_at=from_ms(r["next_run_at"]),
        run_count=r["run_count"],
        created_at=from_ms(r["created_at"]) or datetime.fromtimestamp(0, UTC),
        app=r["app"],
        cache=r["cache"],
        session_tag=r["session_tag"],
        session=_json_or_none(r.get("session_claims")),
        cron=r["cron"],
        tz=r["tz"],
        every=ms_td(r["every_ms"]),
        limit=r["run_limit"],
        end_date=from_ms(r["end_date"]),
        follows_job=bool(r["follows_job"]),
        timeout=ms_td(r["timeout_ms"]),
        misfire=_misfire(r["misfire"]),
        overlap=_overlap(r["overlap"]),
        pause_on_failure=bool(r["pause_on_failure"]),
        last_due_at=from_ms(r["last_due_at"]),
        skipped_count=r["skipped_count"],
        job_product=r["job_product"],
        reason=r["reason"],
        priority=r.get("priority"),
        trace_context=r.get("trace_context"),
        feature_key=r.get("feature_key"),
    )


def run_from_row(r: Any, attempts: list[Attempt] | None = None) -> Run:
    output = r["output"]
    return Run(
        id=r["id"],
        job_id=r["schedule_id"],
        job_tag=r["job_tag"],
        product_tag=r["product_tag"],
        env=r["env"],
        event_type=_event_type(r["event_type"]),
        event_tag=r["event_tag"],
        phase=_phase(r["phase"]),
        scheduled_at=from_ms(r["scheduled_at"]) or datetime.fromtimestamp(0, UTC),
        input=loads(r["input"]),
        max_retries=r["max_retries"],
        retry_count=r["retry_count"],
        attempt=r["attempt"],
        triggered_by=_triggered_by(r["triggered_by"]),
        available_at=from_ms(r["available_at"]),
        started_at=from_ms(r["started_at"]),
        completed_at=from_ms(r["completed_at"]),
        duration_ms=r["duration_ms"],
        error=r["error"],
        output=None if output is None else loads(output),
        timeout=ms_td(r["timeout_ms"]),
        app=r["app"],
        cache=r.get("cache"),
        session=_json_or_none(r.get("session_claims")),
        lease_owner=r["lease_owner"],
        lease_expires_at=from_ms(r["lease_expires_at"]),
        attempts=attempts or [],
        priority=r.get("priority") or 0,
        waiting_on=r.get("waiting_on"),
        limit_keys=tuple(loads(r["limit_keys"])) if r.get("limit_keys") else (),
        trace_context=r.get("trace_context"),
    )


def attempt_from_row(r: Any) -> Attempt:
    return Attempt(
        run_id=r["run_id"],
        attempt=r["attempt"],
        worker_id=r["worker_id"],
        started_at=from_ms(r["started_at"]) or datetime.fromtimestamp(0, UTC),
        finished_at=from_ms(r["finished_at"]),
        outcome=r["outcome"],
        error=r["error"],
    )


# ``Store.update_schedule`` keyword -> (column, conversion to the stored value)
SCHEDULE_COLUMNS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "status": ("status", lambda v: v.value if v is not None else None),
    "reason": ("reason", lambda v: v),
    "next_run_at": ("next_run_at", ms),
    "cron": ("cron", lambda v: v),
    "tz": ("tz", lambda v: v),
    "every": ("every_ms", td_ms),
    "limit": ("run_limit", lambda v: v),
    "end_date": ("end_date", ms),
    "follows_job": ("follows_job", int),
    "start_at": ("start_at", ms),
}


def schedule_change_params(change: ScheduleChange) -> dict[str, Any] | None:
    """``update_schedule``: ``set_<column>`` (whether it changes) and ``<column>`` (its stored value) for every
    column a ``ScheduleChange`` names; ``None`` when nothing changes."""
    changed = change.changed()
    if not changed:
        return None
    params: dict[str, Any] = {}
    for key, (column, convert) in SCHEDULE_COLUMNS.items():
        params[f"set_{column}"] = key in changed
        params[column] = convert(changed[key]) if key in changed else None
    return params


def new_run_params(r: NewRun, now: datetime | None) -> dict[str, Any]:
    """The parameters of a run insert (the rest is copied from its schedule and job by the query)."""
    return {
        "id": r.id,
        "schedule_id": r.schedule_id,
        "scheduled_at": ms(r.scheduled_at),
        "available_at": ms(r.available_at),
        "phase": r.phase.value,
        "triggered_by": r.triggered_by.value,
        "now": ms(now or r.scheduled_at),
    }


def outcome_params(
    outcomes: Sequence[Outcome], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """``finish_runs``: outcomes as (completed, retry scheduled, failed) run updates and their attempt updates. Of
    outcomes given twice for one attempt (run and attempt number) the first is recorded, on the run and the attempt
    alike: the stores apply the kinds in turn (completed, then retried, then failed), and SQLite a list's rows for
    one attempt in no set order."""
    now_ms = ms(now)
    done: list[dict[str, Any]] = []
    retry: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for o in outcomes:
        if (o.run_id, o.attempt) in seen:
            log.warning(
                "run %s, attempt %d: a second outcome (%s) in one batch is dropped; the first is recorded",
                o.run_id,
                o.attempt,
                o.outcome or ("completed" if o.ok else "failed"),
            )
            continue
        seen.add((o.run_id, o.attempt))
        params: dict[str, Any] = {
            "run_id": o.run_id,
            "attempt": o.attempt,
            "worker_id": o.worker_id,
            "finished_at": ms(o.finished_at),
            "duration_ms": o.duration_ms,
            "error": storable(o.error),
            "started_at": ms(o.started_at),
            "now": now_ms,
        }
        output, unstorable = _stored_output(o)
        if unstorable is not None:  # what no check let through (a cycle, a number too long): the attempt failed
            params["error"] = unstorable
            failed.append(params)
            attempts.append({**params, "outcome": "failed"})
            continue
        if o.ok:
            done.append({**params, "output": output})
        elif o.retry_at is not None:
            retry.append({**params, "retry_at": ms(o.retry_at)})
        else:
            failed.append(params)
        attempts.append({**params, "outcome": o.outcome or ("completed" if o.ok else "failed")})
    return done, retry, failed, attempts
