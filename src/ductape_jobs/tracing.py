"""OpenTelemetry tracing (the ``otel`` extra): the one module that imports ``opentelemetry``.

Off by default, and then nothing here imports OpenTelemetry: the client holds ``tracing = None`` and every call
site is one ``if ... is not None``. ``Ductape(tracing=True)`` (or ``DUCTAPE_TRACING=1``) calls ``enable()``, which
imports the API and the official instrumentations of the libraries the executors use (httpx, psycopg, PyMySQL,
sqlite3, redis, aio-pika, aiokafka), or raises ``MissingExtraError`` naming ``pip install 'ductape-jobs[otel]'``.

What the engine does with it:

- ``capture(recurring)`` at ``schedule()``: the W3C trace context current then (``propagate.inject``), as a
  JSON text the store keeps with the schedule and copies to each of its runs, with how the runs relate to it:
  a one-off's attempts are its children (``"parent"``); a recurring schedule's runs each start their own trace
  with a link to it (``"link"``), so that one trace does not grow for ever.
- ``attempt(run)`` in the worker: a span ``ductape.run <job tag>`` per attempt, current while the executor runs
  (so the instrumentations' HTTP, query and publish spans are its children); ``AttemptSpan.finish`` records
  the outcome. Retries are further attempts: each its own span under the same parent or link.
- ``feature_run`` / ``feature_event``: a feature run's span, parent of its events' spans.
- ``connection(conn, system)``: a database executor's own connection, traced (the store's are not: its
  queries would drown the events' in noise). A no-op while no client enabled tracing in this process.

Spans go to whatever ``TracerProvider`` the application set (the OpenTelemetry SDK and an exporter of its
choice); without one they are the API's no-op spans.

No secret leaves in a span: the engine's spans and those of the instrumentations it enables are made through
``MASKING`` (a provider over the application's), whose spans mask every text written to them (attributes, event
and exception texts, status descriptions, names) by value, with the secrets of the product whose run is current
(``attempt`` and ``feature_run`` set them; outside a run, every secret this process knows), as the run's records
are masked; an HTTP span's URL is masked by shape too (``_redact_http_url``).
"""

from __future__ import annotations

import contextlib
import json
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from ductape_jobs.extras import require
from ductape_jobs.models import Run
from ductape_jobs.redaction import (
    REDACT_EXTENSION,
    SECRETS,
    WEBHOOK_EXTENSION,
    Secrets,
    redact_url,
    redact_webhook_url,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ductape_jobs.store.base import Outcome
    from ductape_jobs.store.records import FeatureRun

ENV = "DUCTAPE_TRACING"
WHAT = "tracing (Ductape(tracing=True) or DUCTAPE_TRACING=1)"
PARENT, LINK = "parent", "link"

_active: Tracing | None = None  # set by enable(): the instrumentations are per process, as OpenTelemetry's are


def enable() -> Tracing:
    """Tracing for this process: imports OpenTelemetry and instruments the executors' libraries (once)."""
    global _active
    if _active is None:
        for module in ("opentelemetry.trace", "opentelemetry.propagate", "opentelemetry.instrumentation.httpx"):
            require(module, "otel", WHAT)
        from opentelemetry import trace

        # OpenTelemetry's own checks (``use_span``, ``get_current_span``) take the masking classes for its own
        trace.Span.register(_MaskedSpan)
        trace.Tracer.register(_MaskingTracer)
        trace.TracerProvider.register(_MaskingProvider)
        _active = Tracing()
        _instrument_libraries()
    return _active


class AttemptSpan:
    """The span of one attempt, current while it runs; ``finish`` records how it ended."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def finish(self, outcome: Outcome | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        if outcome is None:
            return
        word = outcome.outcome or "completed"
        if not outcome.ok:
            word = outcome.outcome or ("retry_scheduled" if outcome.retry_at is not None else "failed")
            first = (outcome.error or "").splitlines()[:1]
            self.span.set_status(Status(StatusCode.ERROR, first[0] if first else None))
        self.span.set_attribute("ductape.outcome", word)
        self.span.set_attribute("ductape.duration_ms", outcome.duration_ms)


class Tracing:
    """Spans of the engine's work; build it with ``enable()``."""

    def __init__(self) -> None:
        from opentelemetry import propagate, trace

        from ductape_jobs._version import __version__

        self._trace = trace
        self._propagate = propagate
        self.tracer = MASKING.get_tracer("ductape_jobs", __version__)

    # ------------------------------------------------------------------------------- schedule()

    def capture(self, recurring: bool) -> str | None:
        """The trace context current now, as the store keeps it; ``None`` when no span is current."""
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier)
        if "traceparent" not in carrier:
            return None
        carrier["relation"] = LINK if recurring else PARENT
        return json.dumps(carrier, sort_keys=True, separators=(",", ":"))

    # ----------------------------------------------------------------------------------- a run

    @contextlib.contextmanager
    def attempt(self, run: Run, now: datetime, secrets: Secrets | None = None) -> Iterator[AttemptSpan]:
        """``ductape.run <job tag>``: a child of the context stored with the run, or a new trace linked to it. The
        spans written while it is current are masked with ``secrets`` (its product's, as its records are)."""
        parent, links = self._continued(run.trace_context)
        due = run.available_at or run.scheduled_at
        attributes: dict[str, Any] = {
            "ductape.job.tag": run.job_tag,
            "ductape.product": run.product_tag,
            "ductape.env": run.env,
            "ductape.event.type": run.event_type.name,
            "ductape.event.tag": run.event_tag,
            "ductape.attempt": run.attempt,
            "ductape.run.id": run.id,
            "ductape.job_id": run.job_id,
            "ductape.triggered_by": run.triggered_by.value,
            "ductape.lateness_ms": max(0, int((now - due).total_seconds() * 1000)),
        }
        with (
            masked_by(secrets),
            self.tracer.start_as_current_span(
                f"ductape.run {run.job_tag}",
                context=parent,
                links=links,
                kind=self._trace.SpanKind.CONSUMER,
                attributes=attributes,
            ) as span,
        ):
            yield AttemptSpan(span)

    def _continued(self, stored: str | None) -> tuple[Any, list[Any]]:
        """(the parent context, the links) of an attempt whose run holds ``stored``."""
        root = self._trace.set_span_in_context(self._trace.INVALID_SPAN)  # not the worker's own context
        if not stored:
            return root, []
        try:
            carrier = json.loads(stored)
        except ValueError:
            return root, []
        if not isinstance(carrier, dict):
            return root, []
        context = self._propagate.extract({k: v for k, v in carrier.items() if isinstance(v, str)})
        captured = self._trace.get_current_span(context).get_span_context()
        if not captured.is_valid:
            return root, []
        if carrier.get("relation") == LINK:
            return root, [self._trace.Link(captured, {"ductape.link": "schedule"})]
        return context, []

    # ------------------------------------------------------------------------------- features

    @contextlib.contextmanager
    def feature_run(self, run: FeatureRun, secrets: Secrets | None = None) -> Iterator[None]:
        """The feature run's span, current while its events run (their spans are its children, and they are masked
        with ``secrets``, its product's: the tasks of its events are made in this context)."""
        attributes: dict[str, str] = {
            "ductape.feature.tag": run.feature_tag,
            "ductape.feature_run.id": run.id,
            "ductape.product": run.product_tag,
            "ductape.env": run.env,
        }
        with (
            masked_by(secrets),
            self.tracer.start_as_current_span(f"ductape.feature {run.feature_tag}", attributes=attributes),
        ):
            yield

    @contextlib.contextmanager
    def feature_event(self, run_id: str, sequence: str, event: str, event_type: str, attempt: int) -> Iterator[None]:
        attributes: dict[str, str | int] = {
            "ductape.feature_run.id": run_id,
            "ductape.sequence": sequence,
            "ductape.event.tag": event,
            "ductape.event.type": event_type,
            "ductape.attempt": attempt,
        }
        with self.tracer.start_as_current_span(f"ductape.event {sequence}/{event}", attributes=attributes):
            yield


# ------------------------------------------------------------------------ the instrumentations


def connection(conn: Any, system: str) -> Any:
    """A database executor's connection (``system``: postgresql, mysql or sqlite), traced when tracing is on."""
    if _active is None:
        return conn
    if system == "postgresql":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        return PsycopgInstrumentor.instrument_connection(conn, tracer_provider=MASKING)
    if system == "mysql":
        from opentelemetry.instrumentation.pymysql import PyMySQLInstrumentor

        return PyMySQLInstrumentor.instrument_connection(conn, tracer_provider=MASKING)  # type: ignore[no-untyped-call]
    if system == "sqlite":
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        return SQLite3Instrumentor.instrument_connection(conn, tracer_provider=MASKING)
    return conn


#: The executors' libraries instrumented process-wide (each only if it is installed): (library, module, class).
LIBRARIES = (
    ("httpx", "opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    ("redis", "opentelemetry.instrumentation.redis", "RedisInstrumentor"),
    ("aio_pika", "opentelemetry.instrumentation.aio_pika", "AioPikaInstrumentor"),
    ("aiokafka", "opentelemetry.instrumentation.aiokafka", "AIOKafkaInstrumentor"),
)


def _instrumentors() -> Iterator[tuple[str, Any]]:
    import importlib

    for library, module, name in LIBRARIES:
        try:
            importlib.import_module(library)
            yield library, getattr(importlib.import_module(module), name)()
        except ImportError:  # the library's extra is not installed: nothing of it to trace
            continue


def _instrument_libraries() -> None:
    """The executors' HTTP client and brokers, instrumented process-wide (each only if its library is here), their
    spans made through ``MASKING``. An HTTP span's URL is masked by the engine's redaction too; a library
    instrumented before (``opentelemetry-instrument``) keeps that instrumentation's own settings and masks nothing
    more."""
    for library, instrumentor in _instrumentors():
        if not instrumentor.is_instrumented_by_opentelemetry:
            hooks = {"request_hook": _redact_http_url, "async_request_hook": _aredact_http_url}
            instrumentor.instrument(tracer_provider=MASKING, **(hooks if library == "httpx" else {}))


def disable() -> None:
    """Undo ``enable()`` in this process: the libraries uninstrumented, no client's tracing active (tests use it,
    so that the calls after a traced test are not traced)."""
    global _active
    for _, instrumentor in _instrumentors():
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _active = None


_URL_KEYS = ("url.full", "http.url")  # the stable and the older semantic conventions' name


def _redact_http_url(span: Span, request: Any) -> None:
    """An HTTP call's URL as its span records it, masked once more by the engine's one redaction: the password,
    the values of secret query parameters (``api_key``, ``token``, ...) and of the call's own auth parameter
    (``REDACT_EXTENSION``); a webhook's delivery's (``WEBHOOK_EXTENSION``) as answers show it, its path and query
    masked. The instrumentation masks only a few cloud signatures."""
    recorded = getattr(span, "attributes", None) or {}
    extensions = getattr(request, "extensions", None) or {}
    hidden = extensions.get(REDACT_EXTENSION, ())
    for key in _URL_KEYS:
        if key in recorded:
            url = str(recorded[key])
            span.set_attribute(
                key, redact_webhook_url(url) if extensions.get(WEBHOOK_EXTENSION) else redact_url(url, hidden)
            )


async def _aredact_http_url(span: Span, request: Any) -> None:
    _redact_http_url(span, request)


# ------------------------------------------------------------------------------------ masking

#: The secrets the spans written now are masked with: the current run's product's (``masked_by``).
_masking: ContextVar[Secrets | None] = ContextVar("ductape_tracing_secrets", default=None)


@contextlib.contextmanager
def masked_by(secrets: Secrets | None) -> Iterator[None]:
    """The spans written in this context (and the tasks and threads it starts) masked with ``secrets``."""
    if secrets is None:
        yield
        return
    token = _masking.set(secrets)
    try:
        yield
    finally:
        _masking.reset(token)


def _mask(text: str) -> str:
    """``text`` as a span may hold it: the current run's product's secrets masked (the process's, outside a run)."""
    return (_masking.get() or SECRETS).mask_text(text)


def _masked_value(value: Any) -> Any:
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) if isinstance(v, str) else v for v in value)
    return value


def _masked(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if attributes is None else {key: _masked_value(value) for key, value in attributes.items()}


class _MaskedSpan:
    """A span whose every text is masked as it is written (``_mask``): attributes, event and exception texts, the
    status description and the name. A ``Span`` for OpenTelemetry (registered by ``enable``); what it does not
    write (its context, its recorded attributes, which an HTTP hook reads) is the span's own."""

    def __init__(self, span: Span, record_exception: bool, set_status_on_exception: bool) -> None:
        self._span = span
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception

    def __getattr__(self, name: str) -> Any:
        return getattr(self._span, name)

    def __enter__(self) -> _MaskedSpan:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """As the SDK's span ends when used as a context manager: an exception recorded and its status set."""
        if exc is not None and kind is not None and self.is_recording():
            if self._record_exception:
                self.record_exception(exc, escaped=True)
            if self._set_status_on_exception:
                from opentelemetry.trace import Status, StatusCode

                self.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {exc}"))
        self.end()

    def end(self, end_time: int | None = None) -> None:
        self._span.end(end_time)

    def get_span_context(self) -> Any:
        return self._span.get_span_context()

    def is_recording(self) -> bool:
        return self._span.is_recording()

    def set_attribute(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, _masked_value(value))

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._span.set_attributes(_masked(attributes) or {})

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None) -> None:
        self._span.add_event(_mask(name), _masked(attributes), timestamp)

    def add_link(self, context: Any, attributes: Mapping[str, Any] | None = None) -> None:
        self._span.add_link(context, _masked(attributes))

    def update_name(self, name: str) -> None:
        self._span.update_name(_mask(name))

    def set_status(self, status: Any, description: str | None = None) -> None:
        from opentelemetry.trace import Status

        if isinstance(status, Status) and status.description:
            status = Status(status.status_code, _mask(status.description))
        self._span.set_status(status, None if description is None else _mask(description))

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The exception's message and traceback masked (the SDK's own attributes, overridden)."""
        shown = {
            "exception.message": _mask(str(exception)),
            "exception.stacktrace": _mask("".join(traceback.format_exception(exception))),
            **(_masked(attributes) or {}),
        }
        self._span.record_exception(exception, shown, timestamp, escaped)


class _MaskingTracer:
    """A tracer whose spans are ``_MaskedSpan``s (a ``Tracer`` for OpenTelemetry, registered by ``enable``)."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def start_span(
        self,
        name: str,
        context: Any = None,
        kind: Any = None,
        attributes: Mapping[str, Any] | None = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        from opentelemetry.trace import SpanKind

        span = self._tracer.start_span(
            _mask(name),
            context,
            SpanKind.INTERNAL if kind is None else kind,
            _masked(attributes),
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        return cast("Span", _MaskedSpan(span, record_exception, set_status_on_exception))

    @contextlib.contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Any = None,
        kind: Any = None,
        attributes: Mapping[str, Any] | None = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        from opentelemetry.trace import use_span

        span = self.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )
        with use_span(span, end_on_exit, record_exception, set_status_on_exception) as current:
            yield current


class _MaskingProvider:
    """The application's ``TracerProvider`` (read when a tracer is asked for), its tracers ``_MaskingTracer``s."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Tracer:
        from opentelemetry import trace

        name, version = instrumenting_module_name, instrumenting_library_version
        tracer = trace.get_tracer(name, version, None, schema_url, attributes)
        return cast("Tracer", _MaskingTracer(tracer))


#: The provider the engine and the instrumentations it enables make their spans with.
MASKING = cast("TracerProvider", _MaskingProvider())


__all__ = ["ENV", "LIBRARIES", "MASKING", "AttemptSpan", "Tracing", "connection", "disable", "enable", "masked_by"]
