"""Load named SQL queries from a ``.sql`` file: each query follows a ``-- name: <name>`` line."""

from __future__ import annotations

import re
from importlib import resources

from ductape_jobs.errors import StoreError

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_.*\.sql$")


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


def migration_versions(package: str) -> set[int]:
    """The versions of the ``NNNN_*.sql`` files in ``package``, from their names (nothing is read)."""
    names = (entry.name for entry in resources.files(package).iterdir())
    return {int(m.group(1)) for m in map(_MIGRATION.match, names) if m}


def has_every_migration(package: str, done: set[int]) -> bool:
    """Whether a store whose applied versions are ``done`` has every migration of ``package``. One of a newer
    release (a version this one lacks) is a ``StoreError`` saying so: a process of an older release started on an
    upgraded store (a rolling deploy, a node left behind) wrote what the newer schema no longer takes (every
    claim failed on a unique index it did not know) or missed what it now does (events delivered twice, or to no
    webhook). Versions are applied in order, so the highest tells."""
    known = migration_versions(package)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in done):
        raise StoreError(
            "the table schema_migrations here is not ductape-jobs' (its versions are not whole numbers): give the "
            "store a schema of its own (PostgreSQL: ?schema=ductape) or a file of its own"
        )
    if done and max(done) > max(known):
        raise StoreError(
            f"the store's schema is at version {max(done)}, newer than this release of ductape-jobs knows "
            f"({max(known)}): a newer release upgraded it; upgrade this one (pip install -U ductape-jobs)"
        )
    return known <= done


def load_migrations(package: str) -> list[tuple[int, str]]:
    """``(version, sql)`` for every ``NNNN_*.sql`` file in ``package``, in version order."""
    found: list[tuple[int, str]] = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)
