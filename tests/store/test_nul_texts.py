"""Error texts that hold a NUL character or a lone surrogate (an exception's message, a remote server's answer, a
file name decoded with ``surrogateescape``) are stored on both stores, written ``\\x00`` / ``\\udce9``: PostgreSQL's
text cannot hold NUL and UTF-8 cannot encode a lone surrogate, and before, such an outcome could never be recorded
(every try to record it failed, the worker died with the rest of its batch, and the run came back after its lease,
again and again)."""

from __future__ import annotations

from storekit import Backend
from test_api_store import LEASE, SEC, delivery, webhook
from test_contract import T0, setup

from ductape_jobs.store import Outcome

NUL_ERROR = "ValueError: bad\x00byte from the server"
SHOWN = "ValueError: bad\\x00byte from the server"


def test_an_outcome_whose_error_holds_a_nul_is_recorded_with_it_written_out(backend: Backend) -> None:
    store = backend.open()
    _, (run_id,) = setup(store, T0)
    (run,) = store.acquire_runs("w1", 10, LEASE, T0)
    store.finish_runs([Outcome(run.id, run.attempt, "w1", False, T0, 5, error=NUL_ERROR)], T0)
    stored = store.get_run(run_id)
    assert stored is not None
    assert stored.phase.value == "failed" and stored.error == SHOWN
    assert [a.error for a in stored.attempts] == [SHOWN]


def test_a_delivery_whose_error_holds_a_nul_is_recorded_with_it_written_out(backend: Backend) -> None:
    store = backend.open()
    w = webhook()
    store.add_webhook(w)
    d = delivery(w, T0)
    store.enqueue_deliveries([d])
    assert [x.delivery.id for x in store.due_deliveries(T0, 10, LEASE)] == [d.id]
    store.record_delivery(d.id, T0 + SEC, ok=False, error="HTTP 500: " + NUL_ERROR, retry_at=T0 + 2 * SEC)
    (recorded,) = store.list_deliveries(w.id)
    assert recorded.last_error == "HTTP 500: " + SHOWN


def test_an_outcome_whose_error_holds_a_lone_surrogate_is_recorded_with_it_written_out(backend: Backend) -> None:
    store = backend.open()
    _, (run_id,) = setup(store, T0)
    (run,) = store.acquire_runs("w1", 10, LEASE, T0)
    error = "FileNotFoundError: /data/r\udce9sum.csv"
    store.finish_runs([Outcome(run.id, run.attempt, "w1", False, T0, 5, error=error)], T0)
    stored = store.get_run(run_id)
    assert stored is not None and stored.error == "FileNotFoundError: /data/r\\udce9sum.csv"
