"""The whole exception tree of ductape-jobs.

::

    DuctapeError
     +-- ValidationError (also ValueError)   bad input; names the field and the rule; nothing was written
     +-- NotFoundError   (also LookupError)  no job, schedule or run with that tag or id
     +-- ConflictError                        the store refused the change (duplicate tag, wrong state)
     |    +-- StaleJobError                    a job definition changed since it was read (schedule() reads again)
     |    +-- AlreadyMade                      a schedule is already as the change makes it (a pause of a paused one)
     +-- StoreError                           the store failed (driver errors are translated into this)
 |    +-- StoreUnusableError               closed, or opened by the process this one was forked from
     +-- WouldWait                            a call in Store.promptly() would wait; nothing was written
     +-- RunningLoopError (also RuntimeError) a blocking call inside a running event loop: use AsyncDuctape
     +-- MissingExtraError (also ImportError) an optional dependency is not installed; names the extra
     +-- TargetRefused                        a webhook/callback target the network policy refuses
     +-- PipingSyntaxError (also ValueError)  malformed piping text ($Input{...}, $Default(...))
     +-- PipingError (also ValueError)        a piping placeholder could not be resolved
     |    +-- PipingMissingError               ... because the referenced value is not there
     |    +-- PipingTooLarge                   ... because what it fills in is past the bound on an input
     +-- ExecutionError                       raised inside a run: the event failed (`retryable`, `details`)
          +-- ExecutorNotFoundError            no executor / no registered function for the event
          +-- RunTimeoutError                  the run passed its `timeout`
          +-- ResultError                      the event returned what cannot be stored (not JSON, or too big)
          +-- PipingFailure                    the run's input could not be resolved
          +-- HttpError                        an HTTP call (ACTION, push, SMS, callback) failed
          +-- SmtpError                        sending an email failed
          +-- DatabaseError                    a DATABASE_ACTION failed
          +-- NotificationInputError           a channel did not find its fields in the input
          +-- FeatureFailed                    a feature run ended failed; another attempt resumes it
          +-- FeatureRejected                  a feature cannot run with this input or definition

Executors and features raise these; nothing else in the package defines an exception class (a test checks).
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable
from typing import Any

#: The most characters of an error's text that a run or feature event records: a longer one (a traceback, a message
#: from user code, a remote server's answer) keeps its start and ends with a mark that it was cut (``clip``).
ERROR_TEXT_CHARS = 4000


def field_path(root: str, *keys: str | int) -> str:
    """A field's path in the one format every error uses: ``input.user.email``, ``sequence[0].events[1]``."""
    path = root
    for key in keys:
        path += f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
    return path


def describe(exc: BaseException, trace: int = 0, mask: Callable[[str], str] | None = None) -> str:
    """The one exception-to-text: ``Type: message`` (without repeating a type name the message starts with),
    then the last ``trace`` entries of its traceback, at most ``ERROR_TEXT_CHARS`` characters (``clip``), masked
    by ``mask`` (a run's ``Secrets.mask_text``) before it is cut: a secret the cut fell inside was kept in part.

    It never raises: the exception may be user code's, whose ``__str__`` raises (or returns a ``str`` subclass
    whose methods do). Its text is then the type name and that its text could not be read, and a traceback that
    cannot be formatted is left out: the run it ended is recorded failed, not left ``running`` by a worker (or a
    ``drain()``) that died describing it."""
    name = type(exc).__name__
    try:
        text = str.strip(str(exc))  # str's own strip: a subclass's may be anything
    except Exception as unread:
        text = f"{name}: its text could not be read (str() raised {type(unread).__name__})"
    line = name if not text else text if text.startswith(name) else f"{name}: {text}"
    if trace:
        # traceback's own guards cover __str__; anything else it trips on leaves the traceback out, not the run
        with contextlib.suppress(Exception):
            line += "\n" + "".join(traceback.format_exception(exc)[-trace:])
    return clip(line if mask is None else mask(line))


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt may help a run that ``exc`` failed: its ``retryable`` (``ExecutionError``'s), true
    for an exception without one. Never raises: user code's exception may have a ``retryable`` that raises, or
    that is not a plain boolean; such a one is not retried (what it says cannot be read)."""
    try:
        return bool(getattr(exc, "retryable", True))
    except Exception:
        return False


def clip(text: str, size: int | None = None) -> str:
    """``text`` as it is within ``ERROR_TEXT_CHARS``; past it, its start and a mark that it was cut naming its length
    (``size``, when ``text`` was already cut from a longer one), ``ERROR_TEXT_CHARS`` characters in all."""
    if len(text) <= ERROR_TEXT_CHARS:
        return text
    mark = f" [... cut: {max(size or 0, len(text)):,} characters in all]"
    return text[: ERROR_TEXT_CHARS - len(mark)] + mark


class DuctapeError(Exception):
    """Root of every error ductape-jobs raises on purpose."""


class ValidationError(DuctapeError, ValueError):
    """Input broke a rule. ``field`` names the input field, ``rule`` the rule it broke."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": str(self)}


class NotFoundError(DuctapeError, LookupError):
    """No record with the given tag or id."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {shown_key(key)} not found")


def shown_key(key: object) -> str:
    """An id as a message quotes it: ``repr``, cut past 200 characters. An id of megabytes is not echoed whole (in the
    answer, the log line); one that is not text is named as is."""
    shown = repr(key)
    return shown if len(shown) <= 200 else f"{shown[:200]}... ({len(str(key)):,} characters)"


class ConflictError(DuctapeError):
    """The change conflicts with what is stored (duplicate tag, a run in the wrong phase)."""


class StaleJobError(ConflictError):
    """The job definition a write was planned from changed meanwhile (its ``updated_at`` moved)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        super().__init__(f"job {tag!r} changed while it was being scheduled")


class AlreadyMade(ConflictError):
    """A schedule's change refused because the schedule is already as the change would make it (a pause of a paused
    schedule): a ``ConflictError`` to the caller; a store that tries the change again after a lost connection (the
    try before may have made it) answers the schedule as it is instead (``Store.update_schedule``)."""


class StoreError(DuctapeError):
    """The store failed; the driver's exception is the ``__cause__``, but when PostgreSQL could not be connected to
    at the start: libpq's text may quote the URL's password, so only the message, masked, says why."""


class StoreUnusableError(StoreError):
    """The store cannot be used from here: its client was closed, or it was opened by the process this one was
    forked from (its connections are that process's). Not a store that is away: a worker stops on it rather than
    waiting for the store to come back."""


class WouldWait(DuctapeError):
    """Within ``Store.promptly``: the call would have waited (for a lock, or to checkpoint), and changed nothing;
    make it where waiting does no harm (a worker: in its store thread)."""


class RunningLoopError(DuctapeError, RuntimeError):
    """A blocking call (``drain()``, ``feature.run``, ...) was made from inside a running event loop."""


def install_command(extra: str) -> str:
    return f"pip install 'ductape-jobs[{extra}]'"


def missing_message(what: str, extra: str, cause: str | None = None) -> str:
    """``<what> needs the <extra> extra: pip install 'ductape-jobs[<extra>]' (<cause>)``, on one line."""
    cause = " ".join((cause or "").split())
    return f"{what} needs the {extra} extra: {install_command(extra)}" + (f" ({cause})" if cause else "")


class MissingExtraError(DuctapeError, ImportError):
    """An optional dependency is not installed. ``extra`` names the extra that brings it, ``what`` the feature
    that needs it, ``module`` the module that could not be imported."""

    def __init__(self, what: str, extra: str, module: str | None = None, cause: str | None = None) -> None:
        self.what = what
        self.extra = extra
        self.module = module
        super().__init__(missing_message(what, extra, cause), name=module)


class TargetRefused(DuctapeError):
    """The target's host is, or resolves to, an address the policy refuses (the message says which)."""


#: Where in a nested value the failing piping text sits: ``("email", "to")`` for ``{"email": {"to": "..."}}``.
Location = tuple[str | int, ...]


def _snippet(text: str, position: int, width: int = 60) -> str:
    if len(text) <= width:
        return repr(text)
    start = max(0, position - width // 3)
    end = min(len(text), start + width)
    return ("..." if start else "") + repr(text[start:end]) + ("..." if end < len(text) else "")


class PipingSyntaxError(DuctapeError, ValueError):
    """Malformed piping text: an unclosed ``{``, an unknown source or function, a wrong number of arguments.

    ``position`` is the 0-based offset into ``text`` where the problem starts; ``at`` is where the text sits
    inside the value being resolved (empty when ``parse`` was called directly).
    """

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text = text
        self.position = position
        self.reason = reason
        self.at: Location = ()
        super().__init__(f"{reason} at position {position} in {_snippet(text, position)}")

    def __reduce__(self) -> tuple[type[PipingSyntaxError], tuple[str, int, str]]:
        return type(self), (self.text, self.position, self.reason)


class PipingError(DuctapeError, ValueError):
    """A placeholder could not be resolved. The message starts with the placeholder as written.

    ``"$Input{user}{email}: no key 'email' in input.user"``
    """

    def __init__(self, placeholder: str, reason: str) -> None:
        self.placeholder = placeholder
        self.reason = reason
        self.at: Location = ()
        super().__init__(f"{placeholder}: {reason}")

    def __reduce__(self) -> tuple[type[PipingError], tuple[str, str]]:
        return type(self), (self.placeholder, self.reason)


class PipingMissingError(PipingError):
    """The referenced value is not there: a missing key, an index out of range, no session.

    ``$Default(x, fallback)`` falls back on exactly this; a path into a non-container stays a ``PipingError``.
    """


class PipingTooLarge(PipingError):
    """What the placeholders fill in makes the value past ``limit`` bytes of JSON (``limits.MAX_FILLED_BYTES``):
    resolving stopped there, before building more of it. It is the whole value's, so it
    names no placeholder and no place (``at`` stays empty): a caller names the value (``input: filled in, ...``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.placeholder = ""
        self.reason = (
            f"filled in, it is more than {limit:,} bytes as JSON, the bound on what placeholders fill in: they fill "
            "in too much"
        )
        self.at: Location = ()
        ValueError.__init__(self, self.reason)

    def __reduce__(self) -> tuple[type[PipingTooLarge], tuple[int]]:  # type: ignore[override]
        return type(self), (self.limit,)


class ExecutionError(DuctapeError):
    """An event failed while running. ``retryable`` says whether another attempt can help (a class default,
    or set per failure); ``details`` holds what the executor learnt (an HTTP response summary, SMTP replies)."""

    retryable: bool = True
    details: dict[str, Any] | None = None

    def __init__(self, message: str = "", retryable: bool | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        if details is not None:
            self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.retryable, self.details))


class ExecutorNotFoundError(ExecutionError):
    """No executor or settings for the event: retrying cannot help. A FUNCTION this worker lacks is retryable
    (``retryable=True`` where raised): another worker may have it."""

    retryable = False


class RunTimeoutError(ExecutionError):
    """The run went past its ``timeout``."""


class ResultError(ExecutionError):
    """The event returned a value that cannot be stored as its output (a FUNCTION result that is not JSON, or any
    output past ``limits.MAX_OUTPUT_BYTES`` of JSON); running it again would return the same, so it is not retried."""

    retryable = False


class PipingFailure(ExecutionError):
    """The input could not be resolved (a missing key): retrying cannot help."""

    retryable = False


class HttpError(ExecutionError):
    """An HTTP call failed. ``retryable`` is set per failure; ``details`` holds the response summary
    (``status``, ``duration_ms``, ``headers``, ``body``, ``truncated``; plus ``error`` when no response came)."""


class SmtpError(ExecutionError):
    """Sending an email failed. Retryable for connection problems and 4xx replies, not for 5xx replies or
    a message that cannot be built. ``details`` holds ``code``/``reply`` (or ``rejected`` per recipient)."""


class DatabaseError(ExecutionError):
    """A database action failed; ``retryable`` says whether another attempt can help."""


class NotificationInputError(ExecutionError):
    """A channel that takes its fields from the input did not find them: retrying cannot help."""

    retryable = False


class FeatureFailed(ExecutionError):
    """A feature run ended failed (run by a job, as a FEATURE event or as a step of another feature); the
    next attempt resumes it, running its failed and skipped events again."""


class FeatureRejected(ExecutionError):
    """The feature cannot run with this input or definition; another attempt cannot help."""

    retryable = False
