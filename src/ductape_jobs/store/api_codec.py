"""Row conversions of the API's records (API keys, webhooks, deliveries, statistics), shared by both SQL backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ductape_jobs.models import (
    ApiKey,
    DeliveryStatus,
    KeyScope,
    LoginSession,
    MinuteCount,
    RunActivity,
    Webhook,
    WebhookDelivery,
)
from ductape_jobs.store.codec import dumps, from_ms, ms, storable

_EPOCH = datetime.fromtimestamp(0, UTC)


def scope(product_tag: str | None, env: str | None) -> dict[str, Any]:
    """The parameters of a query's optional product/env filter."""
    return {"product_tag": product_tag, "env": env}


def api_key_params(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "hash": key.hash,
        "product_tag": key.product_tag,
        "env": key.env,
        "created_at": ms(key.created_at),
        "scope": key.scope.value,
    }


def api_key_from_row(r: Any) -> ApiKey:
    return ApiKey(
        id=r["id"],
        name=r["name"],
        prefix=r["prefix"],
        hash=r["hash"],
        created_at=from_ms(r["created_at"]) or _EPOCH,
        product_tag=r["product_tag"],
        env=r["env"],
        last_used_at=from_ms(r["last_used_at"]),
        revoked_at=from_ms(r["revoked_at"]),
        scope=KeyScope(r["scope"]),
    )


def login_params(s: LoginSession) -> dict[str, Any]:
    return {
        "token_hash": s.token_hash,
        "key_id": s.key_id,
        "created_at": ms(s.created_at),
        "expires_at": ms(s.expires_at),
    }


def login_from_row(r: Any) -> tuple[LoginSession, ApiKey]:
    """A ``find_login_session`` row: the session and its key."""
    key = api_key_from_row(r)
    session = LoginSession(
        token_hash=r["session_token_hash"],
        key_id=key.id,
        created_at=from_ms(r["session_created_at"]) or _EPOCH,
        expires_at=from_ms(r["session_expires_at"]) or _EPOCH,
    )
    return session, key


def webhook_params(w: Webhook) -> dict[str, Any]:
    return {
        "id": w.id,
        "product_tag": w.product_tag,
        "url": w.url,
        "events": dumps(list(w.events)),
        "secret": w.secret,
        "created_at": ms(w.created_at),
    }


def webhook_from_row(r: Any) -> Webhook:
    return Webhook(
        id=r["id"],
        product_tag=r["product_tag"],
        url=r["url"],
        events=list(json.loads(r["events"])),
        secret=r["secret"],
        created_at=from_ms(r["created_at"]) or _EPOCH,
    )


def delivery_params(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhook_id": d.webhook_id,
        "event": d.event,
        "payload": dumps(d.payload),
        "next_attempt_at": ms(d.next_attempt_at or d.created_at),
        "created_at": ms(d.created_at),
    }


def delivery_from_row(r: Any) -> WebhookDelivery:
    return WebhookDelivery(
        id=r["id"],
        webhook_id=r["webhook_id"],
        event=r["event"],
        payload=json.loads(r["payload"]),
        status=DeliveryStatus(r["status"]),
        attempts=r["attempts"],
        created_at=from_ms(r["created_at"]) or _EPOCH,
        next_attempt_at=from_ms(r["next_attempt_at"]),
        last_error=r["last_error"],
        delivered_at=from_ms(r["delivered_at"]),
        last_status=r["last_status"],
        last_duration_ms=r["last_duration_ms"],
    )


def record_params(
    delivery_id: str,
    now: datetime,
    ok: bool,
    error: str | None,
    retry_at: datetime | None,
    status: int | None = None,
    duration_ms: int | None = None,
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "now": ms(now),
        "ok": int(ok),
        "error": None if ok else storable((error or "failed")[:2000]),
        "retry_at": None if ok else ms(retry_at),
        "status": status,
        "duration_ms": duration_ms,
    }


def minute_from_row(r: Any) -> MinuteCount:
    return MinuteCount(
        minute=from_ms(int(r["minute"])) or _EPOCH, completed=int(r["completed"] or 0), failed=int(r["failed"] or 0)
    )


def lateness_from_rows(rows: list[Any]) -> list[timedelta]:
    return [timedelta(milliseconds=max(0, int(r["late_ms"]))) for r in rows if r["late_ms"] is not None]


def activity_from_row(r: Any) -> RunActivity:
    return RunActivity(
        latest_run_id=r["latest_run_id"],
        latest_finished_at=from_ms(r["latest_finished_at"]),
        running=int(r["running"] or 0),
        queued=int(r["queued"] or 0),
    )
