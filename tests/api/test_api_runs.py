"""``/api/v1/runs``: history with filters, one run with attempts and timings, retrying a dead letter."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import SHOP, Api, problems

from ductape_jobs import FakeClock, ValidationError

WHOLE_1_10000 = "must be a whole number between 1 and 10000"


def test_runs_list_filter_and_show_attempts(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    api.dt.job.create({"name": "Boom", "tag": "boom", "event_type": "FUNCTION", "event_tag": "boom"})
    api.dt.function("boom")(lambda input, ctx: 1 / 0)
    ok = api.dt.job.schedule({**SHOP, "input": {"n": 1}}).job_id
    clock.advance(seconds=2)
    bad = api.dt.job.schedule({**SHOP, "event": "boom", "retries": 1}).job_id
    clock.advance(seconds=3)
    api.dt.drain()  # report completes, boom fails once and waits for its retry
    clock.advance(seconds=2)
    api.dt.drain()  # boom fails for good
    c = api.client()

    runs = c.get("/runs").json()["items"]
    assert [(r["job_tag"], r["phase"]) for r in runs] == [("boom", "failed"), ("report", "completed")]
    assert runs[0]["attempts"] == []  # lists leave attempts out
    assert [r["job_id"] for r in c.get("/runs", params={"phase": "failed"}).json()["items"]] == [bad]
    assert [r["job_id"] for r in c.get("/runs", params={"job_id": ok}).json()["items"]] == [ok]
    assert [r["job_tag"] for r in c.get("/runs", params={"job_tag": "boom"}).json()["items"]] == ["boom"]
    since = c.get("/runs", params={"since": "2026-03-02T12:00:01Z"}).json()["items"]
    assert [r["job_id"] for r in since] == [bad]
    until = c.get("/runs", params={"until": "1772452801"}).json()["items"]  # Unix seconds: 12:00:01
    assert [r["job_id"] for r in until] == [ok]

    done = c.get(f"/runs/{runs[1]['id']}").json()
    assert (done["output"], done["input"], done["attempt"], done["duration_ms"] >= 0) == (
        {"ok": True, "input": {"n": 1}},
        {"n": 1},
        1,
        True,
    )
    assert done["scheduled_at"] == "2026-03-02T12:00:00Z" and done["started_at"] == "2026-03-02T12:00:05Z"
    assert done["lateness_ms"] == 5000
    assert [(a["attempt"], a["outcome"]) for a in done["attempts"]] == [(1, "completed")]

    failed = c.get(f"/runs/{runs[0]['id']}").json()
    assert "ZeroDivisionError" in failed["error"]
    assert [a["outcome"] for a in failed["attempts"]] == ["failed", "failed"]
    assert failed["attempts"][0]["worker_id"] and failed["attempts"][0]["finished_at"]
    assert c.get("/runs/run_missing").status_code == 404


def test_retry_a_failed_run(api: Api, job: dict[str, Any]) -> None:
    api.dt.function("report")(lambda input, ctx: 1 / 0)
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    c = api.client()
    (run,) = c.get("/runs", params={"phase": "failed"}).json()["items"]
    retried = c.post(f"/runs/{run['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["phase"] == "queued" and "status" not in retried.json()
    # its attempts, as GET /runs/{id} has them (the answer said [] for a run with one), not the last one's times
    assert [a["outcome"] for a in retried.json()["attempts"]] == ["failed"]
    assert (retried.json()["started_at"], retried.json()["duration_ms"], retried.json()["retry_count"]) == (
        None,
        None,
        1,
    )
    again = c.post(f"/runs/{run['id']}/retry")
    assert again.status_code == 409
    assert "only a failed or cancelled run can be retried" in again.json()["detail"]
    assert c.post("/runs/run_missing/retry").status_code == 404


def test_run_queries_are_validated(api: Api) -> None:
    c = api.client()
    # a window the wrong way round: as /stats/jobs answers it (the runs answered [] with 200)
    for path in ("/runs", "/stats/jobs"):
        wrong = c.get(path, params={"since": "2027-01-01", "until": "2026-01-01"})
        assert problems(wrong) == [("since", "2027-01-01T00:00:00+00:00 is after until 2026-01-01T00:00:00+00:00")]
    with pytest.raises(ValidationError, match="is after until"):
        api.dt.job.runs(since="2027-01-01", until="2026-01-01")
    assert problems(c.get("/runs", params={"phase": "exploded"}))[0][0] == "phase"
    assert problems(c.get("/runs", params={"since": "last tuesday"}))[0][0] == "since"
    assert problems(c.get("/runs", params={"limit": 20_000})) == [
        ("limit", "must be a whole number between 1 and 10000")
    ]


def test_a_retry_with_a_body_it_does_not_take_is_refused_and_retries_nothing(api: Api, job: dict[str, Any]) -> None:
    """``POST /schedules/{id}/pause|resume|cancel|trigger`` refuse an unknown field (``{"why": ...}``: 422 naming it,
    nothing done); ``POST /runs/{id}/retry`` read no body at all: a caller who sent ``{"input": {...}}`` to retry
    with other input, or a typo, had the run retried as it was, told nothing."""
    api.dt.function("report")(lambda input, ctx: 1 / 0)
    api.dt.job.schedule(SHOP)
    api.dt.drain()
    c = api.client()
    (run,) = c.get("/runs", params={"phase": "failed"}).json()["items"]

    refused = c.post(f"/runs/{run['id']}/retry", json={"input": {"n": 2}})

    assert api.dt.job.run(run["id"]).phase == "failed", "the retry happened, its body ignored"
    assert problems(refused) == [("input", "is not a known field")]
    assert (
        c.post(f"/runs/{run['id']}/retry", content="not json", headers={"content-type": "application/json"}).status_code
        == 422
    )
    assert c.post(f"/runs/{run['id']}/retry").status_code == 200  # no body, or {}: as before


def test_runs_page_on_after_the_last_run_seen_and_an_unknown_one_is_a_422(
    api: Api, job: dict[str, Any], clock: FakeClock
) -> None:
    for _ in range(3):
        api.dt.job.schedule(SHOP)
        api.dt.job.schedule(SHOP)  # two at one instant: ordered by id
        clock.advance(seconds=1)
    c = api.client(api.key(scope="read"))
    whole = [r["id"] for r in c.get("/runs").json()["items"]]
    assert len(whole) == 6
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        page = c.get("/runs", params=params).json()
        seen += [r["id"] for r in page["items"]]
        if not page["has_more"]:
            break
        params["after"] = seen[-1]
    assert seen == whole
    assert problems(c.get("/runs", params={"after": "run_gone"})) == [
        (
            "after",
            "no run with id 'run_gone' in this list (never made, pruned since, or of another product or env than it "
            "keeps); page from the start",
        )
    ]
    with pytest.raises(ValidationError) as refused:  # the Python API says the same
        api.dt.job.runs(after="run_gone")
    assert refused.value.field == "after"
    long = c.get("/runs", params={"after": "r" * 60_000})  # quoted cut, not echoed whole (twice)
    assert problems(long)[0][0] == "after" and len(long.content) < 2_000
    for unstorable in ("run_\ud800", "run_\x00"):  # refused by the store's lookup: named as the caller named it
        with pytest.raises(ValidationError) as refused:
            api.dt.job.runs(after=unstorable)
        assert refused.value.field == "after", refused.value
        with pytest.raises(ValidationError) as refused:
            api.dt.job.list(after=unstorable)
        assert refused.value.field == "after", refused.value


def test_a_page_of_runs_is_bounded_in_bytes_not_only_in_items(api: Api, job: dict[str, Any]) -> None:
    """A list's runs carry their input (up to 256 KiB) and output (up to 1 MiB), and a page takes up to 10,000 of
    them: one ``GET /runs?limit=10000`` by a read key answered gigabytes, built in the server's memory (120 runs of
    480 KB: a 58 MB answer, the server's peak RSS up 270 MB; 10,000 such runs: ~22 GB, the process, worker and all,
    killed). A page stops at a size in bytes and says ``has_more``, and the next page goes on from there."""
    blob = "x" * 60_000
    for _ in range(30):
        api.dt.job.schedule({**SHOP, "input": {f"k{i}": blob for i in range(4)}})  # 240 KB in, 240 KB out
    api.dt.drain()
    c = api.client(api.key(scope="read"))

    first = c.get("/runs", params={"limit": 30})

    assert first.status_code == 200
    assert len(first.content) <= 8 * 1024 * 1024, f"a page of {len(first.content):,} bytes"
    page = first.json()
    assert page["has_more"] is True and page["items"], "a page cut by its size says so"
    rest = c.get("/runs", params={"limit": 30, "offset": len(page["items"])}).json()["items"]
    assert len({r["id"] for r in page["items"] + rest}) == len(page["items"]) + len(rest)


def test_a_schedules_history_is_bounded_in_bytes_not_only_in_runs(api: Api, job: dict[str, Any], clock: Any) -> None:
    """``GET /schedules/{id}/history?limit=10000`` (a read key) built every run's result in the server's memory, as a
    list of runs did: the executions stop at about 8 MiB and say how many were left out (``cut``)."""
    api.dt.function("report")(lambda input, ctx: {"blob": "x" * 700_000})
    job_id = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000, "limit": 16}}).job_id
    for _ in range(16):
        api.dt.drain()
        clock.advance(minutes=1)
    c = api.client(api.key(scope="read"))
    answer = c.get(f"/schedules/{job_id}/history", params={"limit": 10_000})
    assert answer.status_code == 200
    history = answer.json()
    assert history["total"] == 16 and len(answer.content) <= 9 * 1024 * 1024, len(answer.content)
    assert 1 <= len(history["executions"]) < 16 and history["cut"] == 16 - len(history["executions"])
    assert [e["number"] for e in history["executions"]] == list(range(16, 16 - len(history["executions"]), -1))
    whole = api.dt.job.history(job_id, 10_000)  # the Python API: no bound unless asked
    assert len(whole.executions) == 16 and whole.cut == 0


def test_a_page_read_in_parts_lists_no_record_twice_when_a_write_moves_one_into_the_next_part() -> None:
    """A page is read ``PAGE_CHUNK`` records at a time; a run made between two reads (a newer one, listed first)
    moves the last record of one read into the next: it is listed once, and the page still fills."""
    import asyncio
    from dataclasses import dataclass

    from ductape_jobs.api import common

    @dataclass
    class Record:
        id: str

    rows = [Record(f"r{i}") for i in range(250)]
    reads = 0

    def fetch(*, limit: int, offset: int) -> list[Record]:
        nonlocal reads
        reads += 1
        if reads == 2:
            rows.insert(0, Record("newer"))  # made between the first read and the second
        return rows[offset : offset + limit]

    items, more = asyncio.run(common.page_within_bytes(fetch, 150, 0, lambda r: 1))

    ids = [r.id for r in items]
    assert len(ids) == len(set(ids)), "a record listed twice"
    assert ids == [f"r{i}" for i in range(150)]
    assert more is True


def test_a_page_of_small_records_is_read_in_a_few_parts() -> None:
    """A review: reads of 100 made a page of 10,000 small runs 100 queries, each walking the offset again (10 s
    where one query took 0.5 s, on 300,000 runs at offset 280,000). Later reads take as many records of the largest
    size seen as the page has room for, at most ``PAGE_READ_MOST``; big records still stop the page at its bytes."""
    import asyncio
    from dataclasses import dataclass

    from ductape_jobs.api import common

    @dataclass
    class Record:
        id: str
        size: int

    def reads_of(rows: list[Record], limit: int) -> tuple[list[tuple[int, int]], list[Record], bool]:
        reads: list[tuple[int, int]] = []

        def fetch(*, limit: int, offset: int) -> list[Record]:
            reads.append((limit, offset))
            return rows[offset : offset + limit]

        items, more = asyncio.run(common.page_within_bytes(fetch, limit, 0, lambda r: r.size))
        return reads, items, more

    small = [Record(f"r{i}", 200) for i in range(12_000)]
    reads, items, more = reads_of(small, 10_000)
    assert (len(items), more) == (10_000, True)
    assert len(reads) == 11 and max(limit for limit, _ in reads) <= common.PAGE_READ_MOST + 1, reads

    big = [Record(f"b{i}", 1_000_000) for i in range(500)]
    reads, items, more = reads_of(big, 10_000)
    assert (len(items), more) == (common.MAX_PAGE_BYTES // 1_000_000, True)
    assert reads == [(common.PAGE_CHUNK + 1, 0)]
