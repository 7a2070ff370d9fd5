"""The PostgreSQL store's part for the HTTP API: API keys, webhooks and their deliveries, statistics.

A mixin of ``PostgresStore`` (it uses the store's ``_db``); its SQL is ``api_queries.sql``. Reads and the
writes that set absolute values are *idempotent* (retried even when a COMMIT's outcome is unknown);
``add_api_key``, ``add_login_session``, ``add_webhook``, ``enqueue_deliveries`` and ``due_deliveries`` (a
claim) are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ductape_jobs.errors import NotFoundError
from ductape_jobs.models import ApiKey, LoginSession, Webhook, WebhookDelivery
from ductape_jobs.store.api_codec import (
    api_key_from_row,
    api_key_params,
    delivery_from_row,
    delivery_params,
    login_params,
    record_params,
    webhook_params,
)
from ductape_jobs.store.api_reads import ApiReads
from ductape_jobs.store.base import DueDelivery
from ductape_jobs.store.codec import ms
from ductape_jobs.store.postgres.connection import Conn, Database
from ductape_jobs.store.sql import load_queries

A = load_queries("ductape_jobs.store.postgres", "api_queries.sql")


class PostgresApiStore(ApiReads):
    """API keys, webhooks, deliveries and statistics on PostgreSQL (see ``Store`` for each method's contract)."""

    _db: Database  # the store's connection pool (``PostgresStore``)
    _api_queries = A

    def _rows(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._db.run(lambda c: c.execute(query, params).fetchall(), idempotent=True)
        return rows

    def _row(self, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self._db.run(lambda c: c.execute(query, params).fetchone(), idempotent=True)
        return row

    # ----------------------------------------------------------------------------------- API keys

    def add_api_key(self, key: ApiKey) -> None:
        self._db.run(lambda c: c.execute(A["insert_api_key"], api_key_params(key)))

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        row = self._row(A["revoke_api_key"], {"id": key_id, "now": ms(now)})
        if row is None:
            raise NotFoundError("api key", key_id)
        return api_key_from_row(row)

    def touch_api_key(self, key_id: str, now: datetime) -> None:
        self._db.run(lambda c: c.execute(A["touch_api_key"], {"id": key_id, "now": ms(now)}), idempotent=True)

    # ----------------------------------------------------------------------------------- login sessions

    def add_login_session(self, session: LoginSession) -> None:
        def op(conn: Conn) -> None:
            conn.execute(A["delete_expired_login_sessions"], {"now": ms(session.created_at)})
            conn.execute(A["insert_login_session"], login_params(session))

        self._db.run(op)

    def delete_login_session(self, token_hash: str) -> None:
        params = {"token_hash": token_hash}
        self._db.run(lambda c: c.execute(A["delete_login_session"], params), idempotent=True)

    def delete_login_sessions(self, key_id: str) -> int:
        def op(conn: Conn) -> int:
            return int(conn.execute(A["delete_login_sessions_of_key"], {"key_id": key_id}).rowcount)

        found: int = self._db.run(op, idempotent=True)
        return found

    # ----------------------------------------------------------------------------------- webhooks

    def add_webhook(self, webhook: Webhook) -> None:
        self._db.run(lambda c: c.execute(A["insert_webhook"], webhook_params(webhook)))

    def delete_webhook(self, webhook_id: str) -> None:
        def op(conn: Conn) -> None:
            if conn.execute(A["delete_webhook"], {"id": webhook_id}).rowcount != 1:
                raise NotFoundError("webhook", webhook_id)
            conn.execute(A["delete_deliveries_of_webhook"], {"id": webhook_id})

        self._db.run(op)

    def enqueue_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        if not deliveries:
            return

        def op(conn: Conn) -> None:
            with conn.cursor() as cur:
                cur.executemany(A["insert_delivery"], [delivery_params(d) for d in deliveries])

        self._db.run(op)

    def due_deliveries(self, now: datetime, limit: int, lease_for: timedelta) -> list[DueDelivery]:
        params = {"now": ms(now), "lease_until": ms(now + lease_for), "limit": limit}
        rows = self._db.run(lambda c: c.execute(A["claim_deliveries"], params).fetchall())
        rows.sort(key=lambda r: (r["created_at"], r["id"]))
        return [DueDelivery(delivery_from_row(r), r["url"], r["secret"]) for r in rows]

    def record_delivery(
        self,
        delivery_id: str,
        now: datetime,
        *,
        ok: bool,
        error: str | None = None,
        retry_at: datetime | None = None,
        status: int | None = None,
        duration_ms: int | None = None,
    ) -> None:
        params = record_params(delivery_id, now, ok, error, retry_at, status, duration_ms)
        self._db.run(lambda c: c.execute(A["record_delivery"], params), idempotent=True)
