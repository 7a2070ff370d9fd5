"""The SQLite store's part for the HTTP API: API keys, webhooks and their deliveries, statistics.

A mixin of ``SQLiteStore`` (it uses the store's ``_tx``, ``_one`` and ``_all``); its SQL is ``api_queries.sql``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
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
from ductape_jobs.store.sql import load_queries

A = load_queries("ductape_jobs.store.sqlite", "api_queries.sql")


class SQLiteApiStore(ApiReads):
    """API keys, webhooks, deliveries and statistics on SQLite (see ``Store`` for each method's contract)."""

    # the store's plumbing (``SQLiteStore``), declared for the type checker
    _tx: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _one: Callable[[str, dict[str, Any]], dict[str, Any] | None]
    _all: Callable[..., list[dict[str, Any]]]

    _api_queries = A

    def _rows(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self._all(query, params)

    def _row(self, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
        return self._one(query, params)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._tx()

    # ----------------------------------------------------------------------------------- API keys

    def add_api_key(self, key: ApiKey) -> None:
        with self._write() as db:
            db.execute(A["insert_api_key"], api_key_params(key))

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        with self._write() as db:
            row = db.execute(A["revoke_api_key"], {"id": key_id, "now": ms(now)}).fetchone()
        if row is None:
            raise NotFoundError("api key", key_id)
        return api_key_from_row(row)

    def touch_api_key(self, key_id: str, now: datetime) -> None:
        with self._write() as db:
            db.execute(A["touch_api_key"], {"id": key_id, "now": ms(now)})

    # ----------------------------------------------------------------------------------- login sessions

    def add_login_session(self, session: LoginSession) -> None:
        with self._write() as db:
            db.execute(A["delete_expired_login_sessions"], {"now": ms(session.created_at)})
            db.execute(A["insert_login_session"], login_params(session))

    def delete_login_session(self, token_hash: str) -> None:
        with self._write() as db:
            db.execute(A["delete_login_session"], {"token_hash": token_hash})

    def delete_login_sessions(self, key_id: str) -> int:
        with self._write() as db:
            return int(db.execute(A["delete_login_sessions_of_key"], {"key_id": key_id}).rowcount)

    # ----------------------------------------------------------------------------------- webhooks

    def add_webhook(self, webhook: Webhook) -> None:
        with self._write() as db:
            db.execute(A["insert_webhook"], webhook_params(webhook))

    def delete_webhook(self, webhook_id: str) -> None:
        with self._write() as db:
            if db.execute(A["delete_webhook"], {"id": webhook_id}).rowcount != 1:
                raise NotFoundError("webhook", webhook_id)
            db.execute(A["delete_deliveries_of_webhook"], {"id": webhook_id})

    def enqueue_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        if deliveries:
            with self._write() as db:
                db.executemany(A["insert_delivery"], [delivery_params(d) for d in deliveries])

    def due_deliveries(self, now: datetime, limit: int, lease_for: timedelta) -> list[DueDelivery]:
        with self._write() as db:
            params = {"now": ms(now), "lease_until": ms(now + lease_for), "limit": limit}
            rows = db.execute(A["claim_deliveries"], params).fetchall()
            if not rows:
                return []
            ids = json.dumps(sorted({r["webhook_id"] for r in rows}))
            hooks = {w["id"]: w for w in db.execute(A["webhooks_by_id"], {"ids": ids}).fetchall()}
        rows.sort(key=lambda r: (r["created_at"], r["id"]))
        return [
            DueDelivery(delivery_from_row(r), hooks[r["webhook_id"]]["url"], hooks[r["webhook_id"]]["secret"])
            for r in rows
            if r["webhook_id"] in hooks
        ]

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
        with self._write() as db:
            db.execute(A["record_delivery"], record_params(delivery_id, now, ok, error, retry_at, status, duration_ms))
