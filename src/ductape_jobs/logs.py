"""Logs of ``ductape worker`` and ``ductape serve``: JSON lines when stderr is not a terminal (for a log
collector), readable lines on a terminal. Lines logged while a run executes carry its ``run_id``, ``job_id``,
``job_tag`` and ``attempt`` (the worker binds them to the run's task); API keys, webhook secrets, bearer
tokens and session tokens are masked in every line, and so is every secret of a product, by value
(``redaction.py``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ductape_jobs.limits import CONTROL_CHARACTER, span_text, visible
from ductape_jobs.redaction import mask_text

if TYPE_CHECKING:
    from ductape_jobs.models import Run

RUN_FIELDS = ("run_id", "job_id", "job_tag", "attempt")

_run: ContextVar[dict[str, Any] | None] = ContextVar("ductape_run", default=None)

# What never reaches a log line: API keys, webhook secrets, dashboard login tokens, bearer values, JWTs
# (session tokens), and secret-looking query parameters.
_SECRETS = re.compile(
    r"dtk_[A-Za-z0-9]+_[A-Za-z0-9_\-]+"
    r"|dts_[A-Za-z0-9_\-]+"
    r"|whsec_[A-Za-z0-9_\-]+"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]+=*"
    r"|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
    r"|(?i:(?:api_key|apikey|token|access_token|secret|password)=)(?!dtk_)[^&\s\"']+"
)


def bind_run(run: Run) -> None:
    """Tag the log lines of the current task (or thread) with ``run``'s id, job and attempt."""
    _run.set({"run_id": run.id, "job_id": run.job_id, "job_tag": run.job_tag, "attempt": run.attempt})


def redact(text: str) -> str:
    """``text`` with keys, secrets and tokens masked: by shape, and the products' secrets by value. A shape that
    percent-encoding hides (an access line's ``?job_tag=dtk%5F...``, ``to%6Ben=...``) is found in the text decoded,
    which is then what is written."""
    masked = _SECRETS.sub(_mask, mask_text(text))
    if "%" in masked:
        decoded = unquote(masked)
        found = _SECRETS.sub(_mask, decoded)
        if found != decoded:  # a shape the encoding hid: its control characters encoded again (a %0A: no new line)
            return CONTROL_CHARACTER.sub(lambda c: quote(c.group()), found)
    return masked


def _mask(match: re.Match[str]) -> str:
    found = match.group(0)
    if match.string.startswith("***", match.end()):  # masked already (the filter, then a formatter): as it is
        return found
    if found.startswith("dtk_"):
        return found[: found.index("_", 4)] + "_***"  # the visible prefix stays: it names the key
    if "=" in found and not found.lower().startswith("bearer"):
        return found[: found.index("=") + 1] + "***"
    if found.lower().startswith("bearer"):
        return found.split()[0] + " ***"
    return found[:6] + "***"


class Repeats:
    """A failure that repeats while something is away (the database): its first occurrence is logged, then one line
    each ``every`` seconds saying how many more there were, and one when it works again (``ok``), rather than a
    line for each try (one a second: 140 lines a worker over a 45 s outage). ``clock``: seconds, monotonic."""

    def __init__(
        self, logger: logging.Logger, what: str, *, every: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = logger
        self.what = what
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # the first failure since it last worked
        self._logged = 0.0  # when a line was last logged
        self._unlogged = 0  # failures since that line

    def failed(self, reason: object, then: str = "") -> None:
        """Another failure, for ``reason``; ``then``: what follows (``; trying again in 1s``)."""
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._since, self._logged, self._unlogged = now, now, 0
                self._log.warning("%s failed (%s)%s", self.what, reason, then)
            elif now - self._logged >= self.every:
                failing = span_text(timedelta(seconds=round(now - self._since)))
                more = self._unlogged + 1
                self._log.warning(
                    "%s still failing after %s, %d more time(s) (%s)%s", self.what, failing, more, reason, then
                )
                self._logged, self._unlogged = now, 0
            else:
                self._unlogged += 1

    def ok(self) -> None:
        """It worked: said once, if it had failed."""
        if self._since is None:  # the usual case, without the lock
            return
        with self._lock:
            if self._since is not None:
                failing = span_text(timedelta(seconds=round(self._clock() - self._since, 1)))
                self._log.info("%s works again, after failing for %s", self.what, failing)
                self._since = None


class Masked(logging.Filter):
    """Masks a record of the engine (``redact``) where it is made, whatever handler writes it: a process that never
    called ``setup()`` (``ductape drain``, a script of yours) wrote Python's last-resort line with a session token
    whole. Its traceback is formatted and masked too (a handler's formatter uses that text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
        return True


_TRACEBACKS = logging.Formatter()
_MASKED = Masked()


def logger(name: str) -> logging.Logger:
    """The engine's logger ``name`` (``ductape_jobs.*``), its records ``Masked``."""
    log = logging.getLogger(name)
    if _MASKED not in log.filters:
        log.addFilter(_MASKED)
    return log


class RunFields(logging.Filter):
    """Copies the bound run's fields onto each record (unless the call gave them with ``extra=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _run.get()
        if bound:
            for key, value in bound.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the run's fields when present, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in RUN_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [run=... job=... attempt=...]`` for people, on a terminal: its control characters
    written as escapes (``limits.visible``), as the CLI shows them."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tags = [f"{key}={getattr(record, key)}" for key in RUN_FIELDS if getattr(record, key, None) is not None]
        if tags:
            first, sep, rest = text.partition("\n")
            text = f"{first} [{' '.join(tags)}]{sep}{rest}"
        return visible(redact(text))  # for a terminal: a message quoting data never drives it


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines to whatever ``sys.stderr`` is when one is written (a test's capture ends; the handler stays)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self, logging.WARNING)
        self.setFormatter(TextFormatter())

    @property
    def stream(self) -> IO[str]:
        return sys.stderr


def last_resort() -> None:
    """Warnings that no handler takes (logging never set up: ``ductape drain``, ``feature run``) written as
    ``TextFormatter``'s lines, their control characters as escapes, not raw by Python's handler of last resort
    (``logging.lastResort``). Only for records nothing else handles: an app's ``basicConfig`` or a test's capture
    takes them as before."""
    logging.lastResort = _Stderr()


def setup(level: int = logging.INFO, *, stream: IO[str] | None = None, json_lines: bool | None = None) -> None:
    """Send logs to ``stream`` (stderr): JSON lines unless it is a terminal (``json_lines`` forces either).
    Replaces the root logger's handlers, so calling it again is harmless."""
    out = stream or sys.stderr
    as_json = json_lines if json_lines is not None else not _is_tty(out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.addFilter(RunFields())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry full URLs (query secrets)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _Probes) for f in access.filters):
        access.addFilter(_Probes())


#: The paths a load balancer, Kubernetes or Prometheus asks every few seconds (``api/ops.py``).
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class _Probes(logging.Filter):
    """uvicorn's access line of a probe that succeeded is not logged: a pod's liveness, readiness and scrape made
    thousands of lines a day that said nothing. One that failed (``/readyz`` 503: the store is away) still is."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:  # client, method, path with its query, HTTP version, status
            path, status = str(args[2]).partition("?")[0], args[4]
            return not (path in PROBES and isinstance(status, int) and status < 400)
        return True


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
