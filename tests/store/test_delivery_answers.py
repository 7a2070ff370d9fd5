"""A webhook delivery keeps what its last attempt got back (HTTP status, duration), on every backend."""

from __future__ import annotations

from test_api_store import LEASE, SEC, T0, delivery, webhook

from ductape_jobs.models import DeliveryStatus
from ductape_jobs.store import Store


def test_a_delivery_keeps_its_last_status_and_duration(store: Store) -> None:
    w = webhook()
    store.add_webhook(w)
    first, second = delivery(w), delivery(w, T0 + SEC)
    store.enqueue_deliveries([first, second])
    assert {d.delivery.id for d in store.due_deliveries(T0 + SEC, 10, LEASE)} == {first.id, second.id}
    fresh = store.list_deliveries(w.id)[0]
    assert (fresh.last_status, fresh.last_duration_ms) == (None, None)

    store.record_delivery(first.id, T0 + 2 * SEC, ok=True, status=204, duration_ms=12)
    store.record_delivery(
        second.id, T0 + 2 * SEC, ok=False, error="HTTP 503 after 40 ms", retry_at=T0 + 4 * SEC, status=503,
        duration_ms=40,
    )  # fmt: skip
    by_id = {d.id: d for d in store.list_deliveries(w.id)}
    assert (by_id[first.id].status, by_id[first.id].last_status, by_id[first.id].last_duration_ms) == (
        DeliveryStatus.DELIVERED,
        204,
        12,
    )
    assert (by_id[second.id].last_status, by_id[second.id].last_duration_ms) == (503, 40)

    store.due_deliveries(T0 + 5 * SEC, 10, LEASE)
    store.record_delivery(second.id, T0 + 5 * SEC, ok=False, error="not sent: refused")  # no answer this time
    again = {d.id: d for d in store.list_deliveries(w.id)}[second.id]
    assert (again.status, again.last_status, again.last_duration_ms) == (DeliveryStatus.FAILED, None, None)
