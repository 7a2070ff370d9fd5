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
from ductape_jobs.models import ApiKey, MinuteCount, RunActivity, Schedule, Webhook, WebhookDelivery
from ductape_jobs.store.api_codec import (
    activity_from_row,
    api_key_from_row,
    api_key_params,
    delivery_from_row,
    delivery_params,
    lateness_from_rows,
    minute_from_row,
    record_params,
    scope,
    webhook_from_row,
    webhook_params,
)
from ductape_jobs.store.base import DueDelivery
from ductape_jobs.store.codec import ms, schedule_from_row
from ductape_jobs.store.sql import load_queries

A = load_queries("ductape_jobs.store.sqlite", "api_queries.sql")


class SQLiteApiStore:
    """API keys, webhooks, deliveries and statistics on SQLite (see ``Store`` for each method's contract)."""

    # the store's plumbing (``SQLiteStore``), declared for the type checker
    _tx: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _one: Callable[[str, dict[str, Any]], dict[str, Any] | None]
    _all: Callable[..., list[dict[str, Any]]]

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._tx()

    # ----------------------------------------------------------------------------------- API keys

    def add_api_key(self, key: ApiKey) -> None:
        with self._write() as db:
            db.execute(A["insert_api_key"], api_key_params(key))

    def find_api_key(self, prefix: str) -> ApiKey | None:
        row = self._one(A["find_api_key"], {"prefix": prefix})
        return None if row is None else api_key_from_row(row)

    def list_api_keys(self) -> list[ApiKey]:
        return [api_key_from_row(r) for r in self._all(A["list_api_keys"])]

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        with self._write() as db:
            row = db.execute(A["revoke_api_key"], {"id": key_id, "now": ms(now)}).fetchone()
        if row is None:
            raise NotFoundError("api key", key_id)
        return api_key_from_row(row)

    def touch_api_key(self, key_id: str, now: datetime) -> None:
        with self._write() as db:
            db.execute(A["touch_api_key"], {"id": key_id, "now": ms(now)})

    # ----------------------------------------------------------------------------------- webhooks

    def add_webhook(self, webhook: Webhook) -> None:
        with self._write() as db:
            db.execute(A["insert_webhook"], webhook_params(webhook))

    def list_webhooks(self, *, product_tag: str | None = None) -> list[Webhook]:
        return [webhook_from_row(r) for r in self._all(A["list_webhooks"], {"product_tag": product_tag})]

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
        self, delivery_id: str, now: datetime, *, ok: bool, error: str | None = None, retry_at: datetime | None = None
    ) -> None:
        with self._write() as db:
            db.execute(A["record_delivery"], record_params(delivery_id, now, ok, error, retry_at))

    def list_deliveries(self, webhook_id: str, *, limit: int = 100, offset: int = 0) -> list[WebhookDelivery]:
        params = {"webhook_id": webhook_id, "limit": limit, "offset": offset}
        return [delivery_from_row(r) for r in self._all(A["list_deliveries"], params)]

    # --------------------------------------------------------------------------------- statistics

    def runs_per_minute(
        self, since: datetime, until: datetime, *, product_tag: str | None = None, env: str | None = None
    ) -> list[MinuteCount]:
        params = {"since": ms(since), "until": ms(until), **scope(product_tag, env)}
        return [minute_from_row(r) for r in self._all(A["runs_per_minute"], params)]

    def lateness_sample(
        self, since: datetime, limit: int, *, product_tag: str | None = None, env: str | None = None
    ) -> list[timedelta]:
        params = {"since": ms(since), "limit": limit, **scope(product_tag, env)}
        return lateness_from_rows(self._all(A["lateness_sample"], params))

    def queue_depth(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> int:
        row = self._one(A["queue_depth"], {"now": ms(now), **scope(product_tag, env)})
        return int(row["n"]) if row else 0

    def next_due_schedules(
        self,
        limit: int,
        *,
        before: datetime | None = None,
        product_tag: str | None = None,
        env: str | None = None,
    ) -> list[Schedule]:
        params = {"limit": limit, "before": ms(before), **scope(product_tag, env)}
        return [schedule_from_row(r) for r in self._all(A["next_due_schedules"], params)]

    def run_activity(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> RunActivity:
        row = self._one(A["run_activity"], {"now": ms(now), **scope(product_tag, env)})
        return activity_from_row(row)
