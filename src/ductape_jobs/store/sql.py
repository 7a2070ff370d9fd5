"""Load named SQL queries from a ``.sql`` file: each query follows a ``-- name: <name>`` line."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = body.strip().rstrip(";")
    return queries


def load_dialect_queries(package: str, filenames: tuple[str, ...]) -> dict[str, str]:
    """Every query of a dialect's ``.sql`` files by name; a name in two files is an error."""
    queries: dict[str, str] = {}
    for filename in filenames:
        for name, query in load_queries(package, filename).items():
            if name in queries:
                raise ValueError(f"{package}: query {name!r} is named twice ({filename})")
            queries[name] = query
    return queries


def load_migrations(package: str) -> list[tuple[int, str]]:
    """``(version, sql)`` for every ``NNNN_*.sql`` file in ``package``, in version order."""
    found: list[tuple[int, str]] = []
    for entry in resources.files(package).iterdir():
        match = re.match(r"^(\d{4})_.*\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)
