"""The store core's part for the outbox of lifecycle events (queries in ``outbox.sql``; the table and the
triggers that write it in the transaction of each change: migration 0011; live streams: migration 0017). See
``OutboxStore``.

Live streams keep these invariants:

- a live stream is a row of ``outbox_consumers`` with a lease; while one exists the outbox's triggers exist and
  write every event (``Tx.sync_outbox_triggers``), so from the moment a stream opens nothing it may read is
  left out;
- the pruner keeps every event after the cursor of a stream whose lease has not lapsed, and a lapsed stream is
  deleted (with the triggers when nothing else wants them) by the next stream that opens or the next prune;
- a stream resumes from a position only if no event after it can be missing: the position is of the current
  recording epoch (streams have been live without a break since) and not before the pruned mark (every event
  after the mark is kept). Otherwise it starts at the newest event and says so (``StreamStart.gap``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ductape_jobs.lifecycle import LifecycleEvent, StreamPosition, StreamStart, lifecycle_event
from ductape_jobs.store.api_codec import delivery_params, webhook_from_row
from ductape_jobs.store.codec import from_ms, loads, ms
from ductape_jobs.store.contracts import Relay
from ductape_jobs.store.dialect import Row, Tx, UsesDialect


def event_from_row(r: Row) -> LifecycleEvent:
    at = from_ms(r["created_at"])
    assert at is not None
    values: dict[str, Any] = loads(r["data"])
    return lifecycle_event(r["event"], r["seq"], r["product_tag"], r["schedule_id"], r["run_id"], at, values, r["txid"])


def _stream_params(name: str, position: StreamPosition, lease_until: datetime, now: datetime) -> dict[str, Any]:
    return {
        "name": name,
        "txid": position.txid,
        "seq": position.seq,
        "lease_until": ms(lease_until),
        "now": ms(now),
    }


def _open_stream(tx: Tx, name: str, after: StreamPosition | None, lease_until: datetime, now: datetime) -> StreamStart:
    tx.run("lock_webhooks")  # the outbox's triggers change in turns (add_webhook, delete_webhook, expire_streams)
    marks = tx.one("lock_outbox_marks")
    assert marks is not None
    tx.run("delete_lapsed_streams", {"now": ms(now)})
    epoch = marks["streams_epoch"]
    if tx.one("live_stream") is None:  # the first live stream: every event is written from now on
        tx.run("wait_for_writers")  # PostgreSQL: those already past their trigger commit before the head is read
        tx.run("begin_streams_epoch")
        epoch += 1
    pruned = (marks["pruned_txid"], marks["pruned_seq"])
    tx.run("add_stream", _stream_params(name, StreamPosition(epoch, *pruned), lease_until, now))
    tx.sync_outbox_triggers()  # after the row: a PostgreSQL trigger is created once running writers finished
    head_row = tx.one("outbox_head")
    head = max(pruned, (head_row["txid"], head_row["seq"]) if head_row else (0, 0))
    if after is not None and after.epoch == epoch and pruned <= after.cursor <= head:
        start = StreamStart(after)
    else:
        start = StreamStart(StreamPosition(epoch, *head), gap=after is not None)
    tx.run("add_stream", _stream_params(name, start.position, lease_until, now))
    return start


def expire_lapsed_streams(core: UsesDialect, now: datetime) -> int:
    """Delete the live streams whose lease lapsed before ``now`` and drop the outbox's triggers if nothing else
    wants them (also when an earlier drop gave way to a long transaction); how many streams were deleted. Costs one
    read when there is nothing to do."""
    if core._read_one("outbox_to_settle", {"now": ms(now)}) is None:
        return 0

    def op(tx: Tx) -> int:
        tx.run("lock_webhooks")
        gone = tx.run("delete_lapsed_streams", {"now": ms(now)})
        tx.sync_outbox_triggers()
        return gone

    return core._write(op)


class OutboxCore(UsesDialect):
    """Relaying the outbox to consumers, and live streams reading it (see ``OutboxStore`` for the contract)."""

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

    def open_stream(self, name: str, after: StreamPosition | None, lease_until: datetime, now: datetime) -> StreamStart:
        return self._write(lambda tx: _open_stream(tx, name, after, lease_until, now))

    def renew_stream(self, name: str, position: StreamPosition, lease_until: datetime, now: datetime) -> bool:
        params = _stream_params(name, position, lease_until, now)
        return self._write(lambda tx: tx.run("renew_stream", params), idempotent=True) == 1

    def stream_events(self, after: StreamPosition, limit: int) -> list[LifecycleEvent]:
        params = {"txid": after.txid, "seq": after.seq, "limit": limit}
        return [event_from_row(r) for r in self._read_all("events_after", params)]

    def expire_streams(self, now: datetime) -> int:
        return expire_lapsed_streams(self, now)
