"""The store core's part for the outbox of lifecycle events (queries in ``outbox.sql``; the table and the
triggers that write it in the transaction of each change: migration 0011). See ``OutboxStore``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ductape_jobs.lifecycle import LifecycleEvent, lifecycle_event
from ductape_jobs.store.api_codec import delivery_params, webhook_from_row
from ductape_jobs.store.codec import from_ms, ms
from ductape_jobs.store.contracts import Relay
from ductape_jobs.store.dialect import Row, Tx, UsesDialect


def event_from_row(r: Row) -> LifecycleEvent:
    at = from_ms(r["created_at"])
    assert at is not None
    values: dict[str, Any] = json.loads(r["data"])
    return lifecycle_event(r["event"], r["seq"], r["product_tag"], r["schedule_id"], r["run_id"], at, values)


class OutboxCore(UsesDialect):
    """Relaying the outbox to consumers (see ``OutboxStore`` for the contract)."""

    def relay_events(self, consumer: str, limit: int, now: datetime, relay: Relay) -> int:
        if not self.pending_events(consumer, 1):  # a read first: nothing to do costs no write transaction
            return 0

        def op(tx: Tx) -> int:
            cursor = tx.one("lock_consumer", {"name": consumer})
            if cursor is None:
                tx.run("add_consumer", {"name": consumer, "now": ms(now)})
                cursor = tx.one("lock_consumer", {"name": consumer})
                assert cursor is not None
            rows = tx.all("events_after", {**cursor, "limit": limit})
            if not rows:
                return 0
            hooks = [webhook_from_row(r) for r in tx.all("list_webhooks", {"product_tag": None})]
            deliveries = relay([event_from_row(r) for r in rows], hooks)
            if deliveries:
                tx.many("insert_delivery", [delivery_params(d) for d in deliveries])
            last = rows[-1]
            tx.run("advance_consumer", {"name": consumer, "txid": last["txid"], "seq": last["seq"], "now": ms(now)})
            return len(rows)

        return self._write(op)

    def pending_events(self, consumer: str, limit: int) -> list[LifecycleEvent]:
        def op(tx: Tx) -> list[Row]:
            cursor = tx.one("consumer_cursor", {"name": consumer}) or {"txid": 0, "seq": 0}
            return tx.all("events_after", {**cursor, "limit": limit})

        return [event_from_row(r) for r in self._read(op)]
