"""The store core's part for retention: the pruner's batches (queries in ``retention.sql``).

Each kind is pruned in its own short transaction: pick up to ``limit`` rows (oldest first; on PostgreSQL locked
``FOR UPDATE SKIP LOCKED``, so racing pruners take different rows and never wait for each other; on SQLite the
single writer orders them), then delete them by key with what belongs to them; a schedule counts its pruned runs
(``job.history`` adds them), updated in schedule order so racing pruners never deadlock. ``prune`` is *idempotent*: the
deletes are guarded by the rows' state, so a second application deletes nothing more than a first would.

The outbox's batch first takes the outbox's marks (``lock_outbox_marks``), as a live stream opening does: the stream
either counts in the batch's bound or sees the batch's pruned mark (``mark_outbox_pruned``), so it never resumes
past a pruned event unawares. Live streams whose lease lapsed are expired before anything is pruned.

Jobs that keep their own runs (``keep_completed`` / ``keep_failed``) are read first: the client's batches leave out
their tags' runs of that outcome, and each tag gets passes of its own, one per such job (its duration, or its count
turned into the newest run past it) and one for the tag's other runs (the client's keep).

A schedule that has ended (completed, cancelled) before the client's keep of that status goes once it holds no run:
with its last run, in the batch that prunes it, or found by the sweep, which looks at the next ``limit`` schedules by
id at each prune (from the first again once it reaches the last): one cancelled before its first run, or that ended
after its runs were pruned, or that an older release kept.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from msgspec import Struct

from ductape_jobs.retention import Keep, PruneCounts, Retention
from ductape_jobs.store.codec import keep_from_text, ms, rows_json
from ductape_jobs.store.dialect import Row, Tx, UsesDialect
from ductape_jobs.store.outbox import expire_lapsed_streams

# kind -> (query picking a batch, key column, [(query deleting what belongs to it, count name)], delete, count name)
_Kind = tuple[str, str, tuple[tuple[str, str], ...], str, str]
_KINDS: tuple[_Kind, ...] = (
    ("prunable_done_runs", "id", (("delete_attempts_of_runs", "attempts"),), "delete_runs", "runs"),
    ("prunable_failed_runs", "id", (("delete_attempts_of_runs", "attempts"),), "delete_runs", "runs"),
    (
        "prunable_feature_runs",
        "id",
        (("delete_events_of_feature_runs", "feature_events"),),
        "delete_feature_runs",
        "feature_runs",
    ),
    ("prunable_deliveries", "id", (), "delete_deliveries", "webhook_deliveries"),
    ("prunable_cache_entries", "key", (), "delete_cache_entries", "cache_entries"),
    ("prunable_outbox", "seq", (), "delete_outbox", "outbox"),
    ("prunable_run_minutes", "row", (), "delete_run_minutes", "run_minutes"),
)
_COUNTS = (
    "count_prunable_runs",
    "count_prunable_schedules",
    "count_prunable_feature_runs",
    "count_prunable_deliveries",
    "count_prunable_cache_entries",
    "count_prunable_outbox",
    "count_prunable_run_minutes",
)


_FAR = 2**62  # a count keeps by due time only: "finished before" is then no bound
_OUTCOMES = (("completed", "keep_completed"), ("failed", "keep_failed"))


class _JobPass(Struct, frozen=True):
    """Runs of one outcome (``phase``) tagged ``tag``: of the jobs ``products`` that keep their own (``own``, one job,
    by its ``keep``), or of any other job of that tag (by the client's ``keep``, a duration)."""

    tag: str
    phase: str
    products: tuple[str, ...]
    keep: Keep
    own: bool


def _job_passes(rows: Sequence[Row], retention: Retention) -> list[_JobPass]:
    """The passes for the jobs that keep their own runs, tag by tag and outcome by outcome."""
    keeps: dict[tuple[str, str], list[tuple[str, Keep]]] = {}
    for r in rows:
        for phase, column in _OUTCOMES:
            keep = keep_from_text(r[column])
            if keep is not None:
                keeps.setdefault((r["tag"], phase), []).append((r["product_tag"], keep))
    passes: list[_JobPass] = []
    for (tag, phase), jobs in sorted(keeps.items()):
        passes += [_JobPass(tag, phase, (product,), keep, True) for product, keep in jobs]
        client = retention.keep_completed if phase == "completed" else retention.keep_failed
        passes.append(_JobPass(tag, phase, tuple(product for product, _ in jobs), client, False))
    return passes


def _pass_params(tx: Tx, job_pass: _JobPass, now: datetime) -> dict[str, Any] | None:
    """What a pass's queries read: runs due up to (at, id) and finished before ``before``; None: none to prune
    (a count not reached)."""
    base = {"tag": job_pass.tag, "phase": job_pass.phase, "products": list(job_pass.products)}
    if isinstance(job_pass.keep, int):
        row = tx.one("nth_newest_run_of_jobs", {**base, "offset": job_pass.keep})
        return None if row is None else {**base, "at": row["scheduled_at"], "id": row["id"], "before": _FAR}
    cutoff = ms(now - job_pass.keep)
    return {**base, "at": cutoff, "id": "", "before": cutoff}  # (scheduled_at, id) <= (cutoff, ''): due before it


def _prune_job_pass(tx: Tx, job_pass: _JobPass, now: datetime, client: dict[str, Any]) -> dict[str, int]:
    params = _pass_params(tx, job_pass, now)
    if params is None:
        return {}
    pick = "prunable_runs_of_jobs" if job_pass.own else "prunable_runs_of_other_jobs"
    ids = [r["id"] for r in tx.all(pick, {**params, "limit": client["limit"]})]
    return _delete_runs(tx, ids, client) if ids else {}


def _count_job_pass(tx: Tx, job_pass: _JobPass, now: datetime) -> dict[str, int]:
    params = _pass_params(tx, job_pass, now)
    if params is None:
        return {}
    row = tx.one("count_runs_of_jobs" if job_pass.own else "count_runs_of_other_jobs", params)
    assert row is not None
    return {k: int(v or 0) for k, v in row.items()}


def _params(now: datetime, retention: Retention, passes: Sequence[_JobPass] = ()) -> dict[str, Any]:
    completed, failed, cancelled = retention.cutoffs(now)
    return {
        "own_completed": sorted({p.tag for p in passes if p.phase == "completed"}),
        "own_failed": sorted({p.tag for p in passes if p.phase == "failed"}),
        "now": ms(now),
        "completed_before": ms(completed),
        "failed_before": ms(failed),
        "cancelled_before": ms(cancelled),
        "before": ms(max(completed, failed, cancelled)),
        "done_before": ms(max(completed, cancelled)),
        "stats_before": ms(now - retention.keep_stats),
    }


def _prune_kind(tx: Tx, kind: _Kind, params: dict[str, Any]) -> dict[str, int]:
    """One batch of one kind: pick it, delete what belongs to it, then it."""
    pick, key, belongs, delete, name = kind
    if delete == "delete_outbox":
        tx.one("lock_outbox_marks")  # turns with streams opening (outbox.sql), before the batch is picked
    ids = [r[key] for r in tx.all(pick, params)]
    if not ids:
        return {}
    if delete == "delete_runs":
        return _delete_runs(tx, ids, params)
    done = {what: tx.run(query, {"ids": ids}) for query, what in belongs}
    if delete == "delete_outbox":
        tx.run("mark_outbox_pruned", {"ids": ids})  # live streams resume only after it
    done[name] = tx.run(delete, {**params, "ids": ids})
    return done


def _delete_runs(tx: Tx, ids: list[Any], params: dict[str, Any]) -> dict[str, int]:
    """Runs by id with their attempts; their schedules count them (and go, if they have ended before the keeps in
    ``params`` and hold no run any more), and their minutes' statistics add them."""
    done = {"attempts": tx.run("delete_attempts_of_runs", {"ids": ids})}
    gone = tx.all("delete_runs", {"ids": ids})
    done["runs"] = len(gone)
    tally = _tally(gone)
    tx.many("count_pruned_runs", tally)  # PostgreSQL: their schedules locked, in order, until the commit
    tx.many("add_run_minutes", _minutes(gone))
    if tally:
        done["schedules"] = tx.run("delete_ended_schedules", {**params, "ids": [c["schedule_id"] for c in tally]})
    return done


def _sweep(tx: Tx, params: dict[str, Any], after: str) -> tuple[dict[str, int], str]:
    """The sweep's batch: of the next ``limit`` schedules after ``after`` (by id), the ended ones that hold no run
    deleted; and where the next batch starts (``""``: at the first again)."""
    ids = [r["id"] for r in tx.all("schedules_after", {"after": after, "limit": params["limit"]})]
    if not ids:
        return {}, ""
    ended = [r["id"] for r in tx.all("lock_ended_schedules", {**params, "ids": ids})]
    done = {"schedules": tx.run("delete_ended_schedules", {**params, "ids": ended})} if ended else {}
    return done, ids[-1] if len(ids) == params["limit"] else ""


_MINUTE = 60_000
_ZERO = dict.fromkeys(
    ("ended_completed", "ended_failed", "due_completed", "due_failed", "due_cancelled", "due_first_try", "due_retries"),
    0,
)


def _minutes(gone: list[Row]) -> list[dict[str, Any]]:
    """Pruned runs as what ``add_run_minutes`` adds to each (minute, product, env), in key order: a run counts in
    the minute it ended (completed or failed: the runs per minute) and in the minute it was due (``job.stats``)."""
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}

    def row(at: int, r: Row) -> dict[str, Any]:
        minute = at // _MINUTE * _MINUTE
        key = (minute, r["product_tag"], r["env"])
        return rows.setdefault(key, {"minute": minute, "product_tag": key[1], "env": key[2], **_ZERO})

    for r in gone:
        phase = r["phase"]
        due = row(r["scheduled_at"], r)
        due[f"due_{phase}"] += 1
        if phase == "cancelled":
            continue
        due["due_retries"] += r["retry_count"]
        if phase == "completed" and r["retry_count"] == 0:
            due["due_first_try"] += 1
        if r["completed_at"] is not None:
            row(r["completed_at"], r)[f"ended_{phase}"] += 1
    return [rows[k] for k in sorted(rows)]


def _tally(gone: list[Row]) -> list[dict[str, Any]]:
    """Pruned runs counted per schedule, in schedule order (racing pruners lock schedules in one order)."""
    counts: dict[str, dict[str, Any]] = {}
    for row in gone:
        c = counts.setdefault(
            row["schedule_id"], {"schedule_id": row["schedule_id"], "runs": 0, "completed": 0, "failed": 0}
        )
        c["runs"] += 1
        if row["phase"] in ("completed", "failed"):
            c[row["phase"]] += 1
    return [counts[k] for k in sorted(counts)]


class RetentionCore(UsesDialect):
    """The pruner (see ``RetentionStore`` for the contract)."""

    _swept_to = ""  # where this process's sweep of ended schedules goes on from (an id; "": the first)

    def _job_passes(self, retention: Retention) -> list[_JobPass]:
        return _job_passes(self._read_all("jobs_with_keeps"), retention)

    def prune(self, now: datetime, retention: Retention, limit: int) -> PruneCounts:
        expire_lapsed_streams(self, now)  # a lapsed live stream pins no event (nor keeps the outbox's triggers)
        passes = self._job_passes(retention)
        params = {**_params(now, retention, passes), "limit": limit}
        total = PruneCounts()
        for kind in _KINDS:
            total += PruneCounts(
                **self._write(functools.partial(_prune_kind, kind=kind, params=params), idempotent=True)
            )
        for job_pass in passes:
            op = functools.partial(_prune_job_pass, job_pass=job_pass, now=now, client=params)
            total += PruneCounts(**self._write(op, idempotent=True))
        swept, self._swept_to = self.sweep_schedules(now, retention, limit, self._swept_to)
        return total + PruneCounts(schedules=swept)

    def sweep_schedules(self, now: datetime, retention: Retention, limit: int, after: str) -> tuple[int, str]:
        params = {**_params(now, retention), "limit": limit}
        done, then = self._write(functools.partial(_sweep, params=params, after=after), idempotent=True)
        return done.get("schedules", 0), then

    def count_prunable(self, now: datetime, retention: Retention) -> PruneCounts:
        passes = self._job_passes(retention)
        params = _params(now, retention, passes)

        def op(tx: Tx) -> PruneCounts:
            counts: dict[str, int] = {}
            rules = [(p, _pass_params(tx, p, now)) for p in passes]  # a count not reached: that pass prunes nothing
            made = [{**rule, "own": p.own} for p, rule in rules if rule is not None]
            for query in _COUNTS:
                row = tx.one(query, {**params, "passes": rows_json(made)})  # JSON text: both dialects read it
                assert row is not None
                counts.update({k: int(v or 0) for k, v in row.items()})
            total = PruneCounts(**counts)
            for job_pass in passes:
                total += PruneCounts(**_count_job_pass(tx, job_pass, now))
            return total

        return self._read(op)
