"""Reads of the API's tables (keys, webhooks, deliveries, statistics), the same on every SQL backend.

A backend's API mixin inherits ``ApiReads`` and gives it the backend's named queries (``_api_queries``) and two
read helpers (``_rows``, ``_row``); the writes, whose transactions differ by backend, stay in the mixin.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ductape_jobs.models import ApiKey, LoginSession, MinuteCount, RunActivity, Schedule, Webhook, WebhookDelivery
from ductape_jobs.store.api_codec import (
    activity_from_row,
    api_key_from_row,
    delivery_from_row,
    lateness_from_rows,
    login_from_row,
    minute_from_row,
    scope,
    webhook_from_row,
)
from ductape_jobs.store.codec import ms, schedule_from_row


class ApiReads:
    _api_queries: dict[str, str]

    def _rows(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _row(self, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def find_api_key(self, prefix: str) -> ApiKey | None:
        row = self._row(self._api_queries["find_api_key"], {"prefix": prefix})
        return None if row is None else api_key_from_row(row)

    def list_api_keys(self) -> list[ApiKey]:
        return [api_key_from_row(r) for r in self._rows(self._api_queries["list_api_keys"], {})]

    def find_login_session(self, token_hash: str) -> tuple[LoginSession, ApiKey] | None:
        row = self._row(self._api_queries["find_login_session"], {"token_hash": token_hash})
        return None if row is None else login_from_row(row)

    def list_webhooks(self, product_tag: str | None = None) -> list[Webhook]:
        rows = self._rows(self._api_queries["list_webhooks"], {"product_tag": product_tag})
        return [webhook_from_row(r) for r in rows]

    def list_deliveries(self, webhook_id: str, *, limit: int = 100, offset: int = 0) -> list[WebhookDelivery]:
        params = {"webhook_id": webhook_id, "limit": limit, "offset": offset}
        return [delivery_from_row(r) for r in self._rows(self._api_queries["list_deliveries"], params)]

    def runs_per_minute(
        self, since: datetime, until: datetime, *, product_tag: str | None = None, env: str | None = None
    ) -> list[MinuteCount]:
        params = {"since": ms(since), "until": ms(until), **scope(product_tag, env)}
        return [minute_from_row(r) for r in self._rows(self._api_queries["runs_per_minute"], params)]

    def lateness_sample(
        self, since: datetime, limit: int, *, product_tag: str | None = None, env: str | None = None
    ) -> list[timedelta]:
        params = {"since": ms(since), "limit": limit, **scope(product_tag, env)}
        return lateness_from_rows(self._rows(self._api_queries["lateness_sample"], params))

    def queue_depth(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> int:
        row = self._row(self._api_queries["queue_depth"], {"now": ms(now), **scope(product_tag, env)})
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
        return [schedule_from_row(r) for r in self._rows(self._api_queries["next_due_schedules"], params)]

    def run_activity(self, now: datetime, *, product_tag: str | None = None, env: str | None = None) -> RunActivity:
        row = self._row(self._api_queries["run_activity"], {"now": ms(now), **scope(product_tag, env)})
        assert row is not None
        return activity_from_row(row)
