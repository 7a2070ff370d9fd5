"""The PostgreSQL store: many schedulers and workers, in many processes on many machines, share one database.

Racing schedulers split the due schedules with ``FOR UPDATE SKIP LOCKED`` and the unique (schedule, due time)
constraint keeps each occurrence to one run; racing workers claim different runs the same way. Each call is
one transaction; calls that fail on a lost connection are retried when safe (``connection.py``; which calls
are idempotent is listed in ``store/core.py``). The store's logic is the core's; this backend is that core
over the PostgreSQL dialect (``dialect.py``).
"""

from __future__ import annotations

from datetime import timedelta

from ductape_jobs.errors import ValidationError
from ductape_jobs.redaction import redact_url
from ductape_jobs.store.core import SQLStore
from ductape_jobs.store.postgres.connection import POOL_MAX, POOL_MIN, Database, check_schema, split_url
from ductape_jobs.store.postgres.dialect import PostgresDialect


class PostgresStore(SQLStore):
    """``PostgresStore("postgresql://user@host/db?schema=jobs")``; ``schema`` (URL option or keyword) puts the
    tables in that schema (created by ``migrate``). ``pool_min``/``pool_max``/``pool_timeout`` URL options
    size the connection pool."""

    capabilities = PostgresDialect.capabilities

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        timeout: timedelta | None = None,
        retries: int = 3,
    ) -> None:
        conninfo, options = split_url(url)
        #: The URL as logs and the CLI show it: its password and secret parameters masked (``redact_url``).
        self.label = redact_url(url)
        self.schema = check_schema(schema or options["schema"]) if (schema or options.get("schema")) else None
        least = int(options.get("pool_min", POOL_MIN)) if min_size is None else min_size
        most = int(options.get("pool_max", POOL_MAX)) if max_size is None else max_size
        if (min_size, max_size) != (None, None) and not 1 <= least <= most:  # as the URL's are checked (split_url)
            raise ValidationError("store", f"min_size={least} and max_size={most}: 1 <= min_size <= max_size")
        db = Database(
            conninfo,
            schema=self.schema,
            min_size=least,
            max_size=most,
            timeout=timeout or timedelta(seconds=float(options.get("pool_timeout", 10))),
            retries=retries,
        )
        dialect = PostgresDialect(conninfo, schema=self.schema, db=db)
        self.channel = dialect.channel
        super().__init__(dialect)
