"""``ductape migrate``: a store's schema upgraded to this release's as a step of its own (or, ``--check``, looked at).

Every process migrates the store it opens unless told not to (``migrate=False``, ``$DUCTAPE_MIGRATE=0``): a team
that upgrades by hand runs this first, then starts the new release's processes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from ductape_jobs import logs
from ductape_jobs.cli import render
from ductape_jobs.cli.common import AppOpt, JsonOpt, StoreOpt, client, emit, flag, store_label
from ductape_jobs.client import OPEN_ONLY, SCHEMA_LEFT
from ductape_jobs.errors import ValidationError
from ductape_jobs.store.sql import newer_error, shown_versions

#: ``--check``'s exit code when the store lacks a migration (1: the command failed; 0: nothing is pending).
PENDING = 3


def migrate(
    check: Annotated[
        bool,
        flag(
            "--check",
            help="Apply nothing: say which migrations the store lacks, and exit 3 if it lacks any (0: none; 1: the "
            "check failed; 2: no store there, or a bad URL).",
        ),
    ] = False,
    store: StoreOpt = None,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upgrade the store's schema to this release's: apply the migrations it lacks, each recorded as it is applied
    (a new store is made). The old release's workers may run while PostgreSQL builds the new indexes (concurrently);
    once a version is applied, replace them. Run it before starting a new release's processes when they do not
    migrate (DUCTAPE_MIGRATE=0)."""
    logs.setup(logging.WARNING)  # an index build's and a wait's warnings, as a worker logs them
    with _schema_left(opening_only=check), client(store, app_, creates=not check) as dt:
        before = dt.store.schema_state()
        if before.newer:
            raise newer_error(before)  # user_errors (client's): exit 1
        if check and not before.made:  # as every command that reads refuses one: a mistyped ?schema=
            raise ValidationError(
                "store",
                f"no ductape-jobs store in {store_label(dt)} (none was made there): check the URL; `ductape migrate` "
                "makes one",
            )
        applied = dt.store.migrate() if not check and before.pending else ()
        after = before if check else dt.store.schema_state()
        label = store_label(dt)
    data: dict[str, Any] = {
        "store": label,
        "version": after.version,  # the store's, after the command
        "release": after.release,  # this release's
        "pending": list(after.pending),
    }
    if not check:
        data["applied"] = list(applied)  # by this command: another process may have applied the rest meanwhile
    title = "Schema (nothing applied)" if check else "Migrated" if applied else "Schema up to date"
    emit(data, as_json, lambda: render.fields(title, [(k, _shown(v)) for k, v in data.items()]))
    if check and after.pending:
        raise typer.Exit(PENDING)


@contextmanager
def _schema_left(*, opening_only: bool) -> Iterator[None]:
    """The client this command opens (an ``--app``'s own ``Ductape()`` too) leaves the schema to it; with
    ``opening_only`` it makes no store either."""
    left = SCHEMA_LEFT.set(True)
    only = OPEN_ONLY.set(True) if opening_only else None
    try:
        yield
    finally:
        if only is not None:
            OPEN_ONLY.reset(only)
        SCHEMA_LEFT.reset(left)


def _shown(value: Any) -> str:
    return shown_versions(value) if isinstance(value, list) else str(value)
