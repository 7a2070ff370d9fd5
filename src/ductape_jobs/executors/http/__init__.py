"""HTTP transport for ACTION events and provider calls: build a request from resolved values, send it,
summarise the answer. Failures raise :class:`HttpError` (an ``ExecutionError``) with ``retryable`` set."""

from ductape_jobs.errors import HttpError
from ductape_jobs.executors.http.request import (
    HttpAuth,
    HttpRequestSpec,
    build_request,
    encode_json,
)
from ductape_jobs.executors.http.response import MAX_BODY_BYTES, perform, redact_url
from ductape_jobs.redaction import REDACT_EXTENSION, SECRET_QUERY_PARAMS

__all__ = [
    "MAX_BODY_BYTES",
    "REDACT_EXTENSION",
    "SECRET_QUERY_PARAMS",
    "HttpAuth",
    "HttpError",
    "HttpRequestSpec",
    "build_request",
    "encode_json",
    "perform",
    "redact_url",
]
