"""Load named SQL queries from a ``.sql`` file: each query follows a ``-- name: <name>`` line."""

from __future__ import annotations

import re
from importlib import resources

from msgspec import Struct

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


def release_version() -> int:
    """This release's schema version: its latest migration's, the same in both dialects' folders. Read from the
    SQLite folder's file names without importing its store (``ductape --version`` answers at once)."""
    folder = resources.files(__package__ or "ductape_jobs.store").joinpath("sqlite", "migrations")
    return max(int(m.group(1)) for m in (_MIGRATION.match(entry.name) for entry in folder.iterdir()) if m)


class SchemaState(Struct, frozen=True):
    """Where a store's schema stands against this release's migrations (``Store.schema_state``): the versions the
    store records having applied (none: no store was made there) and the versions this release holds."""

    applied: tuple[int, ...]
    known: tuple[int, ...]
    made: bool

    @property
    def version(self) -> int:
        """The store's schema version: the highest applied (0: none)."""
        return max(self.applied, default=0)

    @property
    def release(self) -> int:
        """This release's schema version: the highest it holds."""
        return max(self.known, default=0)

    @property
    def pending(self) -> tuple[int, ...]:
        """This release's versions the store lacks, in the order they are applied."""
        done = set(self.applied)
        return tuple(v for v in self.known if v not in done)

    @property
    def newer(self) -> bool:
        """Whether a newer release upgraded the store (it holds a version this release does not know)."""
        return self.version > self.release


def schema_state(package: str, done: set[int] | None) -> SchemaState:
    """The ``SchemaState`` of a store whose applied versions are ``done`` (``None``: it has no migrations table)
    against the migrations of ``package``. Versions that are not whole numbers are a ``StoreError``: the table is
    another program's."""
    if done is not None and not all(isinstance(v, int) and not isinstance(v, bool) for v in done):
        raise StoreError(
            "the table schema_migrations here is not ductape-jobs' (its versions are not whole numbers): give the "
            "store a schema of its own (PostgreSQL: ?schema=ductape) or a file of its own"
        )
    known = migration_versions(package)
    return SchemaState(applied=tuple(sorted(done or ())), known=tuple(sorted(known)), made=done is not None)


def shown_versions(versions: tuple[int, ...] | list[int]) -> str:
    """``26``, ``25 and 26``, ``1 to 26``, ``none``: versions as a message or a table names them."""
    if not versions:
        return "none"
    if len(versions) > 2 and tuple(versions) == tuple(range(versions[0], versions[-1] + 1)):
        return f"{versions[0]} to {versions[-1]}"
    return " and ".join(", ".join(map(str, versions)).rsplit(", ", 1))


def newer_error(state: SchemaState) -> StoreError:
    """What a process of this release says of a store a newer release upgraded."""
    return StoreError(
        f"the store's schema is at version {state.version}, newer than this release of ductape-jobs knows "
        f"({state.release}): a newer release upgraded it; upgrade this one (pip install -U ductape-jobs)"
    )


def has_every_migration(package: str, done: set[int]) -> bool:
    """Whether a store whose applied versions are ``done`` has every migration of ``package``. One of a newer
    release (a version this one lacks) is a ``StoreError`` saying so: a process of an older release started on an
    upgraded store (a rolling deploy, a node left behind) wrote what the newer schema no longer takes (every
    claim failed on a unique index it did not know) or missed what it now does (events delivered twice, or to no
    webhook). Versions are applied in order, so the highest tells."""
    state = schema_state(package, done)
    if state.newer:
        raise newer_error(state)
    return not state.pending


def load_migrations(package: str) -> list[tuple[int, str]]:
    """``(version, sql)`` for every ``NNNN_*.sql`` file in ``package``, in version order."""
    found: list[tuple[int, str]] = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)
