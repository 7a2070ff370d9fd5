"""The store core's part for the HTTP API: API keys, login sessions, webhooks and their deliveries, and what the
API's statistics read (queries in ``api_queries.sql``).

Reads and the writes that set absolute values are *idempotent* (a dialect may retry them even when a COMMIT's
outcome is unknown); ``add_api_key``, ``add_login_session``, ``add_webhook``, ``enqueue_deliveries`` and
``due_deliveries`` (a claim) are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ductape_jobs.errors import NotFoundError
from ductape_jobs.models import ApiKey, LoginSession, MinuteCount, RunActivity, Schedule, Webhook, WebhookDelivery
from ductape_jobs.store.api_codec import (
    activity_from_row,
    api_key_from_row,
    api_key_params,
    delivery_from_row,
    delivery_params,
    lateness_from_rows,
    login_from_row,
    login_params,
    minute_from_row,
    record_params,
    scope,
    webhook_from_row,
    webhook_params,
)
from ductape_jobs.store.codec import from_ms, ms, schedule_from_row
from ductape_jobs.store.contracts import DueDelivery
from ductape_jobs.store.dialect import NO_CURSOR, Cursor, Row, Tx, UsesDialect

_DELIVERIES = Cursor("get_delivery", "webhook delivery", "created_at", ("webhook_id",))


class ApiCore(UsesDialect):
    """API keys, login sessions, webhooks, deliveries and statistics (see ``AccessStore`` and ``StatsStore``)."""

    def _one(self, name: str, params: dict[str, Any]) -> Row | None:
        return self._read_one(name, params)

    def _all(self, name: str, params: dict[str, Any]) -> list[Row]:
        return self._read_all(name, params)

    # ----------------------------------------------------------------------------------- API keys

    def add_api_key(self, key: ApiKey) -> None:
        self._write(lambda tx: tx.run("insert_api_key", api_key_params(key)))

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        row = self._write(lambda tx: tx.one("revoke_api_key", {"id": key_id, "now": ms(now)}), idempotent=True)
        if row is None:
            raise NotFoundError("api key", key_id)
        return api_key_from_row(row)

    def touch_api_key(self, key_id: str, now: datetime) -> None:
        self._write(lambda tx: tx.run("touch_api_key", {"id": key_id, "now": ms(now)}), idempotent=True)

    # ----------------------------------------------------------------------------------- login sessions

    def add_login_session(self, session: LoginSession) -> None:
        def op(tx: Tx) -> None:
            tx.run("delete_expired_login_sessions", {"now": ms(session.created_at)})
            tx.run("insert_login_session", login_params(session))

        self._write(op)

    def delete_login_session(self, token_hash: str) -> None:
        self._write(lambda tx: tx.run("delete_login_session", {"token_hash": token_hash}), idempotent=True)

    def delete_login_sessions(self, key_id: str) -> int:
        return self._write(lambda tx: tx.run("delete_login_sessions_of_key", {"key_id": key_id}), idempotent=True)

    # ----------------------------------------------------------------------------------- webhooks

    def add_webhook(self, webhook: Webhook) -> None:
        def op(tx: Tx) -> None:
            tx.run("lock_webhooks")
            tx.run("insert_webhook", webhook_params(webhook))
            tx.sync_outbox_triggers()  # the outbox's triggers exist while some webhook does

        self._write(op)

    def delete_webhook(self, webhook_id: str) -> None:
        def op(tx: Tx) -> None:
            tx.run("lock_webhooks")
            if tx.run("delete_webhook", {"id": webhook_id}) != 1:
                raise NotFoundError("webhook", webhook_id)
            tx.run("delete_deliveries_of_webhook", {"id": webhook_id})
            tx.sync_outbox_triggers()

        self._write(op)

    def enqueue_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> None:
        if deliveries:
            self._write(lambda tx: tx.many("insert_delivery", [delivery_params(d) for d in deliveries]))

    def due_deliveries(self, now: datetime, limit: int, lease_for: timedelta) -> list[DueDelivery]:
        params = {"now": ms(now), "lease_until": ms(now + lease_for), "limit": limit}

        def op(tx: Tx) -> tuple[list[Row], dict[str, Row]]:
            held = sorted(r["id"] for r in tx.all("hold_webhooks", params))
            if not held:
                return [], {}
            rows = tx.all("claim_deliveries", {**params, "hooks": held})
            unused = sorted(set(held) - {r["webhook_id"] for r in rows})  # past the limit: free for another
            if unused:
                tx.run("release_webhooks", {"ids": unused, "lease_until": params["lease_until"]})
            if not rows:
                return [], {}
            ids = sorted({r["webhook_id"] for r in rows})
            return rows, {w["id"]: w for w in tx.all("webhooks_by_id", {"ids": ids})}

        rows, hooks = self._write(op)
        rows.sort(key=lambda r: (r["created_at"], r["id"]))
        return [
            DueDelivery(delivery_from_row(r), hooks[r["webhook_id"]]["url"], hooks[r["webhook_id"]]["secret"])
            for r in rows
            if r["webhook_id"] in hooks  # a delivery whose webhook was deleted meanwhile is dropped
        ]

    def release_webhooks(self, webhook_ids: Sequence[str], held_until: datetime, unsent: Sequence[str] = ()) -> None:
        if not webhook_ids:
            return
        held = ms(held_until)
        params = {"ids": sorted(set(webhook_ids)), "lease_until": held}

        def op(tx: Tx) -> None:
            if unsent:  # before the webhooks go: no other sender claims them meanwhile
                tx.run("unclaim_deliveries", {"ids": sorted(set(unsent)), "lease_until": held})
            tx.run("release_webhooks", params)

        self._write(op, idempotent=True)

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
        self._write(lambda tx: tx.run("record_delivery", params), idempotent=True)

    # ----------------------------------------------------------------------------------- reads

    def find_api_key(self, prefix: str) -> ApiKey | None:
        row = self._one("find_api_key", {"prefix": prefix})
        return None if row is None else api_key_from_row(row)

    def list_api_keys(self) -> list[ApiKey]:
        return [api_key_from_row(r) for r in self._all("list_api_keys", {})]

    def find_login_session(self, token_hash: str) -> tuple[LoginSession, ApiKey] | None:
        row = self._one("find_login_session", {"token_hash": token_hash})
        return None if row is None else login_from_row(row)

    def list_webhooks(self, product_tag: str | None = None) -> list[Webhook]:
        rows = self._all("list_webhooks", {"product_tag": product_tag})
        return [webhook_from_row(r) for r in rows]

    def get_webhook(self, webhook_id: str) -> Webhook | None:
        row = self._one("get_webhook", {"id": webhook_id})
        return None if row is None else webhook_from_row(row)

    def list_deliveries(
        self, webhook_id: str, *, limit: int = 100, offset: int = 0, after: str | None = None
    ) -> list[WebhookDelivery]:
        params = {"webhook_id": webhook_id, "limit": limit, "offset": offset, **NO_CURSOR}
        return self._page("list_deliveries", params, after, _DELIVERIES, delivery_from_row)

    def runs_per_minute(
        self, since: datetime, until: datetime, *, product_tag: str | None = None, env: str | None = None
    ) -> list[MinuteCount]:
        params = {"since": ms(since), "until": ms(until), **scope(product_tag, env)}
        return [minute_from_row(r) for r in self._all("runs_per_minute", params)]

    def lateness_sample(
        self, since: datetime, limit: int, *, product_tag: str | None = None, env: str | None = None
    ) -> list[timedelta]:
        params = {"since": ms(since), "limit": limit, **scope(product_tag, env)}
        return lateness_from_rows(self._all("lateness_sample", params))

    def delivery_backlog(self) -> tuple[int, datetime | None]:
        row = self._one("delivery_backlog", {})
        if row is None or row["oldest"] is None:
            return 0, None
        return int(row["n"]), from_ms(row["oldest"])

    def queue_depth(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> int:
        row = self._one("queue_depth", {"now": ms(now), **scope(product_tag, env)})
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
        return [schedule_from_row(r) for r in self._all("next_due_schedules", params)]

    def run_activity(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> RunActivity:
        row = self._one("run_activity", {"now": ms(now), **scope(product_tag, env)})
        assert row is not None
        return activity_from_row(row)
