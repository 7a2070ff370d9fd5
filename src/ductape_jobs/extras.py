"""Optional dependencies: which extra brings which module, and one way to say that one is missing.

The core install (``pip install ductape-jobs``) runs the embedded SQLite store, the engine, the CLI and the
FUNCTION, ACTION, NOTIFICATION, FEATURE and SQLite DATABASE_ACTION events. Everything else comes with an
extra; a module that is missing is reported in one line naming the extra to install::

    `ductape serve` needs the api extra: pip install 'ductape-jobs[api]' (no module named 'fastapi')

``require(module, extra, what)`` imports one module of an extra, ``require_extra(extra, what)`` every module of
it. Both raise ``MissingExtraError`` (a ``DuctapeError`` and an ``ImportError``), or, with ``error=``, the
caller's own typed error built from the same message (a run's ``DatabaseError``, a ``ValidationError``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from ductape_jobs.errors import MissingExtraError, install_command, missing_message

# extra -> the import names of the distributions it installs (pyproject.toml's optional-dependencies)
EXTRAS: dict[str, tuple[str, ...]] = {
    "api": ("fastapi", "uvicorn", "prometheus_client"),  # and limits, for a rate limit only (api/app.py)
    "postgres": ("psycopg", "psycopg_pool"),
    "mysql": ("pymysql",),
    "brokers": ("redis", "aio_pika", "nats", "aiomqtt", "aiokafka"),
    "otel": ("opentelemetry",),
}


def _ours(exc: ModuleNotFoundError) -> bool:
    """A module of this package is missing: a bug or a broken install, not a missing extra."""
    return bool(exc.name) and (exc.name == "ductape_jobs" or str(exc.name).startswith("ductape_jobs."))


def _cause(exc: ImportError) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"no module named {exc.name!r}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def require(module: str, extra: str, what: str, *, error: Callable[[str], Exception] | None = None) -> ModuleType:
    """Import ``module`` (one that ``extra`` installs) for ``what`` (e.g. "`ductape serve`"), or raise
    ``MissingExtraError`` (or ``error(message)``) when it, or a module it needs, cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and _ours(exc):
            raise
        cause = _cause(exc)
        if error is not None:
            raise error(missing_message(what, extra, cause)) from exc
        raise MissingExtraError(what, extra, exc.name or module, cause) from exc


def require_extra(extra: str, what: str, *, error: Callable[[str], Exception] | None = None) -> None:
    """``require`` every module of ``extra``: the first one missing is reported."""
    for module in EXTRAS[extra]:
        require(module, extra, what, error=error)


__all__ = ["EXTRAS", "MissingExtraError", "install_command", "missing_message", "require", "require_extra"]
