"""The store core's part for shared resources (``resources.py``): the claim under concurrency and rate limits,
and what the limits hold (queries in each dialect's ``limits.sql``).

The claim has two paths. Runs under no limit are claimed by the dialect's one statement (``claim_runs``), which
also says whether a run under a limit is due; while none is, the resource tables are never read. Once one is,
this process claims on the limited path until none is due: it picks due runs of both kinds in claim order
(due time aged by priority), those under a limit without a lock; locks the rows of the limits they fall under
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``: a limit another transaction holds is passed over with its runs, and the
runs after them under their limits, so claims of one resource take turns across every worker and node and none
waits on another); then locks the runs under the limits it holds, counts the runs executing under each and the
starts in each rate window, and claims the runs that fit, in order, up to the worker's batch. A claim thus holds
a run under a limit only while it holds the limit: no other claim skips that run to take a later one of the
limit (``_lock_picked``). A run that does not fit stays due (not late, no retry spent); its set of limits found
full gets one row of ``limit_holds`` (which limit holds it: the runs' ``waiting_on``; and when to look again: each
worker's next_wakeup waits for it), however many runs wait in it; runs whose set of limits is full are skipped,
so the runs behind them are reached.
A dead worker's runs hold their slots until its lease expires and the rescue makes them due again.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from msgspec import Struct

from ductape_jobs.models import Run
from ductape_jobs.resources import Rate, ResourceLimit, ResourceUse
from ductape_jobs.store.codec import loads, ms, run_from_row
from ductape_jobs.store.dialect import Params, Row, Tx, UsesDialect

RECHECK = 1000  # ms: when other workers look again at a run held by a full concurrency limit
BUSY_RECHECK = 100  # ms: when workers look again at runs a claim passed over (see _lock_picked)
PASSED_OVER = "a limit or a run of its set held by another transaction (another claim, a save, a cancel)"


class _Room(Struct):
    limit: ResourceLimit
    running: int
    starts: int
    oldest: int | None  # the oldest start in the rate window (ms)

    def holds(self, taken: int, now: int) -> tuple[str, int] | None:
        """Why one more run does not fit and when to look again (``None``: it fits), with ``taken`` already
        given out in this claim. A rate frees when its oldest start leaves the window; a concurrency slot when
        a run ends (its worker claims again at once; others look again after ``RECHECK``)."""
        c, r = self.limit.concurrency, self.limit.rate
        if c is not None and self.running + taken >= c:
            return f"concurrency of {self.limit.describe()}: {self.running + taken} of {c} executing", now + RECHECK
        if r is not None and self.starts + taken >= r.count:
            window = int(r.window.total_seconds() * 1000)
            why = f"rate of {self.limit.describe()}: {self.starts + taken} started in the last {_span(r.window)}"
            return why, (now if self.oldest is None else self.oldest) + window
        return None


def store_limits(tx: Tx, limits: Sequence[ResourceLimit], now: datetime) -> None:
    """Store ``limits`` (a product's resources, or a job's own limit) in ``tx``. The holds of the sets of limits
    that name one that changed were judged by the old limits: they are released and, if there were any, the workers
    woken, so those sets are looked at again now, not when the hold lapses. Rows are written in key order and the
    holds locked in a claim's order (``release_limit_holds``). A claim locks schedules (a tick, a failure's pause)
    and resources (never waiting) before it writes holds, so the caller takes no lock after this: then two
    writers, or a writer and a claim, never wait on each other in opposite orders."""
    params = sorted((limit_params(limit, now) for limit in limits), key=lambda p: str(p["key"]))
    changed = [row["key"] for row in tx.each("upsert_resource", params)]
    if changed and tx.run("release_limit_holds", {"keys": changed}):
        tx.notify()


class LimitsCore(UsesDialect):
    _limited_due: bool = False  # this process saw a run under a limit due: claim on the limited path

    def define_resources(self, limits: Sequence[ResourceLimit], now: datetime) -> None:
        if limits:
            self._write(lambda tx: store_limits(tx, limits, now), idempotent=True)

    def resource_use(self, now: datetime, product_tag: str | None = None) -> list[ResourceUse]:
        def op(tx: Tx) -> list[ResourceUse]:
            limits = [_limit_from_row(r) for r in tx.all("list_resources", {"product_tag": product_tag})]
            running = _count_keys(tx.all("running_limit_keys"))
            waiting = _count_keys(tx.all("waiting_limit_keys", {"now": ms(now)}))
            out = []
            for limit in limits:
                starts = 0
                if limit.rate is not None:
                    since = ms(now - limit.rate.window)
                    starts = _n(tx.one("count_starts", {"key": limit.key, "since": since}))
                out.append(ResourceUse(limit, running[limit.key], starts, waiting[limit.key]))
            return out

        return self._read(op)

    def waiting_runs(self, now: datetime, product_tag: str | None = None, limit: int = 100) -> list[Run]:
        params = {"now": ms(now), "product_tag": product_tag, "limit": limit}
        return [run_from_row(r) for r in self._read_all("waiting_runs", params)]

    # ------------------------------------------------------------------------------------ the claim

    def _claim(self, tx: Tx, params: Params) -> list[Row]:
        """Claim up to ``params["limit"]`` due runs (see the module's docstring)."""
        if not self._limited_due:
            rows, limited = tx.claim_runs(params)
            if not limited:
                return rows
            self._limited_due = True
            room = params["limit"] - len(rows)
            return rows if room <= 0 else rows + self._claim_limited(tx, {**params, "limit": room}, free=False)
        return self._claim_limited(tx, params, free=True)

    def _claim_limited(self, tx: Tx, params: Params, *, free: bool) -> list[Row]:
        limit, now = params["limit"], params["now"]
        rooms: dict[str, _Room] = {}
        taken: Counter[str] = Counter()
        admitted: list[Row] = []
        seen: set[str] = set()
        blocked: dict[str, tuple[str, int]] = {}  # limit_keys -> why, when to look again
        busy: set[str] = set()  # limit keys this claim passes over (see _lock_picked)
        skipped: set[str] = set()  # limit_keys (sets) of the runs it passed over: past them in the next picks
        found = cut = False
        free_rows = tx.later("pick_free_runs", params) if free else list  # sent with the first pick
        free_runs: list[Row] | None = None
        ahead_of: list[tuple[int, str]] = []  # the runs under no limit, in claim order: first in the batch
        while not cut:  # each pick past the sets found full so far: every set with a due run is reached
            raw = tx.all("pick_limited_runs", {**params, "blocked": sorted(skipped | blocked.keys())})
            if free_runs is None:  # read with the first pick's answer
                free_runs = free_rows()
                ahead_of = sorted((r["claim_key"], r["id"]) for r in free_runs)
            fresh = [r for r in raw if r["id"] not in seen]
            if not fresh:
                break
            found = True
            seen.update(r["id"] for r in fresh)
            fresh.sort(key=lambda r: (r["claim_key"], r["id"]))
            for row, locked in _lock_picked(tx, fresh, rooms, busy, now):
                if len(admitted) + bisect.bisect_left(ahead_of, (row["claim_key"], row["id"])) >= limit:
                    cut = True  # past the batch, runs under no limit first: judged by a later claim, not held
                    break
                under = loads(row["limit_keys"])
                free_of = [k for k in under if k not in busy]  # its limits this claim holds, or undeclared ones
                held = blocked.get(row["limit_keys"]) or _hold(rooms, taken, free_of, now)
                if held is not None:  # one of them is full: it could not start now anyway
                    blocked[row["limit_keys"]] = held
                elif locked is None or len(free_of) < len(under):  # passed over: the runs after it under its
                    busy.update(under)  # limits wait too, so each limit's slots go in claim order
                    skipped.add(row["limit_keys"])
                else:
                    admitted.append(locked)
                    taken.update(under)
            if len(admitted) >= limit or len(raw) < limit:
                break
        if not found:
            self._limited_due = False
        candidates = admitted + (free_runs or [])  # read with the first pick, which every claim makes
        candidates.sort(key=lambda r: (r["claim_key"], r["id"]))
        chosen = candidates[:limit]
        passed = {k: (PASSED_OVER, now + BUSY_RECHECK) for k in skipped - blocked.keys()}  # looked at again soon,
        holds = [  # not at once by every worker; in limit_keys order (hold_limit_set)
            {"limit_keys": k, "waiting_on": w, "held_until": u, "full": k in blocked, "now": now}
            for k, (w, u) in sorted({**blocked, **passed}.items())
        ]
        tx.many("hold_limit_set", holds)  # one row per set found full or passed over, however many runs it holds
        if not chosen:
            return []
        rows = tx.claim_picked({**params, "ids": [r["id"] for r in chosen]})
        starts = [
            {"key": key, "started_at": now, "run_id": r["id"]}
            for r in rows
            if r["limit_keys"]
            for key in loads(r["limit_keys"])
            if key in rooms and rooms[key].limit.rate is not None
        ]
        tx.many("insert_start", starts)
        return rows


#: How long a start is kept past its rate's window. Claims commit in the order they got the limit's lock, not in
#: the order of their ``now`` (read before a wait for the lock): a claim whose ``now`` is older than one already
#: committed must still count every start after its own window's beginning, so no claim deletes the starts such
#: a claim would count. A minute covers any wait for the lock.
KEEP_STARTS_MS = 60_000


def _lock_picked(
    tx: Tx, fresh: list[Row], rooms: dict[str, _Room], busy: set[str], now: int
) -> list[tuple[Row, Row | None]]:
    """Each run of ``fresh`` (picked unlocked, in claim order) that is still due, with its row locked by this claim
    (``None``: passed over), after the limits it falls under (added to ``rooms``). A claim locks a run under a
    limit only while it holds the limit, so no claim skips another's first runs of a limit to take a later one. A
    limit another transaction holds (a claim, a save of its definition) is not waited for (its key added to
    ``busy``), nor is a run's row another write holds (a cancel, say): no claim waits on another, so none deadlock.
    A run passed over keeps the later runs of its limits from this claim (``_claim_limited``)."""
    keys = sorted({k for r in fresh for k in loads(r["limit_keys"])} - rooms.keys() - busy)
    if keys:
        got, held = _rooms(tx, keys, now)
        rooms.update(got)
        busy.update(held)
    ids = [r["id"] for r in fresh if busy.isdisjoint(loads(r["limit_keys"]))]
    locked = {r["id"]: r for r in tx.all("lock_limited_runs", {"ids": ids, "now": now})} if ids else {}
    gone = [i for i in ids if i not in locked]
    held_rows = {r["id"] for r in tx.all("still_due_runs", {"ids": gone, "now": now})} if gone else set()
    mine = set(ids)  # the others have a busy limit
    out: list[tuple[Row, Row | None]] = []
    for row in fresh:
        now_row = locked.get(row["id"])
        if now_row is not None and now_row["limit_keys"] != row["limit_keys"]:
            # a job.update moved it under other limits after the pick (PostgreSQL: the pick reads no lock): judged
            # under the limits it was picked under, it started beside a full new one's runs (a probe: 21 running
            # under a concurrency of 1). It is judged under its limits as they are: passed over if this claim does
            # not hold them all (the next claim locks them); under none now, the next claim takes it as it takes
            # the runs under none.
            if now_row["limit_keys"] is None:
                continue
            unheld = [k for k in loads(now_row["limit_keys"]) if k not in rooms]
            busy.update(unheld)
            out.append(({**row, "limit_keys": now_row["limit_keys"]}, None if unheld else now_row))
        elif now_row is not None or row["id"] in held_rows or row["id"] not in mine:  # not: no longer due
            out.append((row, now_row))
    return out


def _rooms(tx: Tx, keys: list[str], now: int) -> tuple[dict[str, _Room], set[str]]:
    """The limits ``keys`` that this claim could lock (their rows locked until it commits), with their use now:
    counted after the lock, so a claim that held it and committed is seen (PostgreSQL's READ COMMITTED reads anew
    per statement); and the keys another transaction holds locked. A key in neither is not declared."""
    rooms = {}
    with tx.together():  # one round trip: the count runs after the locks are taken (the server runs them in order)
        lock = tx.later("lock_resources", {"keys": keys})
        declared = tx.later("declared_resources", {"keys": keys})
        executing = tx.later("running_limit_keys")
        locked, known, running = lock(), declared(), _count_keys(executing())
    for row in locked:
        limit = _limit_from_row(row)
        starts, oldest = 0, None
        if limit.rate is not None:
            since = now - int(limit.rate.window.total_seconds() * 1000)
            tx.run("prune_starts", {"key": limit.key, "since": since - KEEP_STARTS_MS})
            counted = tx.one("count_starts", {"key": limit.key, "since": since})
            starts, oldest = _n(counted), (counted or {}).get("oldest")
        rooms[limit.key] = _Room(limit, running[limit.key], starts, oldest)
    return rooms, {r["key"] for r in known} - rooms.keys()


def _hold(rooms: dict[str, _Room], taken: Counter[str], keys: list[str], now: int) -> tuple[str, int] | None:
    for key in keys:
        room = rooms.get(key)
        if room is None:
            why = f"resource {key!r} is not declared in the store (declare it in its product and save the job)"
            return why, now + 60 * RECHECK
        held = room.holds(taken[key], now)
        if held is not None:
            return held
    return None


def _count_keys(rows: list[Row]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(loads(row["limit_keys"]))
    return counts


def _n(row: Row | None) -> int:
    return 0 if row is None else int(row["n"])


def _span(window: timedelta) -> str:
    seconds = window.total_seconds()
    return f"{seconds:g}s" if seconds < 120 else f"{seconds / 60:g}min"


def limit_params(limit: ResourceLimit, now: datetime) -> Params:
    rate = limit.rate
    return {
        "key": limit.key,
        "product_tag": limit.product_tag,
        "name": limit.name,
        "concurrency": limit.concurrency,
        "rate_count": None if rate is None else rate.count,
        "rate_window_ms": None if rate is None else int(rate.window.total_seconds() * 1000),
        "now": ms(now),
    }


def _limit_from_row(row: Row) -> ResourceLimit:
    rate = None
    if row["rate_count"] is not None:
        rate = Rate(row["rate_count"], timedelta(milliseconds=row["rate_window_ms"]))
    return ResourceLimit(row["product_tag"], row["name"], row["concurrency"], rate)
