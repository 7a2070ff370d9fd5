"""How many runs each minute of the coming hours will start, per job, from the active schedules' cadences
(pure: the schedules and ``now`` in, counts out). Occurrences already due count in minute 0, as the misfire
policy will run them; limits and end dates are honoured. Work is bounded: a schedule firing more often than
once a minute is counted per minute arithmetically, and past ``budget`` steps the forecast stops and says
it was truncated."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from msgspec import Struct, field

from ductape_jobs.engine.scheduler import occurrences_of, recurrence_of
from ductape_jobs.models import Schedule
from ductape_jobs.resources import ResourceLimit
from ductape_jobs.timing import EveryRecurrence, plan_due

MINUTE = timedelta(minutes=1)
#: Steps (an occurrence, or a minute of a frequent schedule) before a forecast stops: about 7 µs each here, so a
#: second or two of CPU at most (1,000,000 took 7.6 s for a day of 5,000 crons, 40 s for a week).
BUDGET = 200_000


class Forecasting(Struct):
    start: datetime
    minutes: int
    budget: int = BUDGET
    truncated: bool = False
    by_job: dict[tuple[str, str], Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    #: the runs per minute of a cadence from a due time, walked once: schedules of one cadence (10,000 of
    #: ``*/5 * * * *``, each next due at the same minute) cost a step each after the first; ``uses`` counts them by
    #: job, and each (job, cadence) is added to ``by_job`` once at the end, a step a minute it fills (so the budget
    #: bounds the answer too: 5,000 jobs of a minutely cron over a week are 50 million counts)
    cadences: dict[tuple[object, ...], Counter[int]] = field(default_factory=dict)
    uses: Counter[tuple[tuple[str, str], tuple[object, ...]]] = field(default_factory=Counter)

    @property
    def counts(self) -> dict[str, Counter[int]]:
        """Runs per minute index, by job tag (the jobs of every product of that tag together)."""
        out: dict[str, Counter[int]] = defaultdict(Counter)
        for (_, tag), counts in self.by_job.items():
            out[tag].update(counts)
        return out

    @property
    def end(self) -> datetime:
        return self.start + self.minutes * MINUTE

    def index(self, t: datetime) -> int:
        return max(0, (t - self.start) // MINUTE)

    def spend(self, steps: int) -> bool:
        """Use ``steps`` of the budget; ``False`` (and truncated) once it is gone."""
        self.budget -= steps
        if self.budget < 0:
            self.truncated = True
            return False
        return True


def forecast(schedules: Sequence[Schedule], now: datetime, minutes: int, budget: int | None = None) -> Forecasting:
    f = Forecasting(now.replace(second=0, microsecond=0), minutes, BUDGET if budget is None else budget)
    for s in schedules:
        if not f.spend(1):
            break
        _add(f, s, now)
    for (job, cadence), times in f.uses.items():
        walked = f.cadences[cadence]
        if not f.spend(len(walked)):
            break
        counts = f.by_job[job]
        for minute, n in walked.items():
            counts[minute] += n * times
    return f


def _add(f: Forecasting, s: Schedule, now: datetime) -> None:
    recurrence = recurrence_of(s)
    # the occurrences already due are steps too (a run_all schedule behind lists up to 1,000 of them)
    plan = plan_due(recurrence, occurrences_of(s), now, misfire=s.misfire, max_runs=max(1, min(1000, f.budget)))
    counts = f.by_job[(s.job_product, s.job_tag)]
    if plan.due:
        counts[0] += len(plan.due)
        if not f.spend(len(plan.due)):
            return
    remaining = None if s.limit is None else s.limit - s.run_count - len(plan.due)
    stop = f.end if s.end_date is None else min(f.end, s.end_date + timedelta(microseconds=1))
    t = plan.next_due
    if t is None or t >= stop or remaining == 0:
        return
    if isinstance(recurrence, EveryRecurrence) and recurrence.every < MINUTE:
        _add_frequent(f, counts, recurrence, t, stop, remaining)
        return
    anchor = recurrence.anchor if isinstance(recurrence, EveryRecurrence) else None
    key = (s.cron, s.tz, s.every, anchor, t, stop, remaining)
    if key not in f.cadences:
        walked: Counter[int] = Counter()
        while t is not None and t < stop and (remaining is None or remaining > 0):
            if not f.spend(1):
                counts.update(walked)  # what was walked before the budget ran out
                return
            walked[f.index(t)] += 1
            remaining = None if remaining is None else remaining - 1
            t = recurrence.next_after(t)
        f.cadences[key] = walked
    f.uses[((s.job_product, s.job_tag), key)] += 1


def _add_frequent(
    f: Forecasting, counts: Counter[int], every: EveryRecurrence, first: datetime, stop: datetime, left: int | None
) -> None:
    """Count minute by minute: the occurrences in ``[a, b)`` are ``ceil(b) - ceil(a)`` in steps of ``every``."""

    def ceil_steps(t: datetime) -> int:
        return -((every.anchor - t) // every.every)

    for minute in range(f.index(first), f.minutes):
        a = max(first, f.start + minute * MINUTE)
        b = min(stop, f.start + (minute + 1) * MINUTE)
        if b <= a:
            break
        if not f.spend(1):
            return
        n = ceil_steps(b) - ceil_steps(a)
        if left is not None:
            n = min(n, left)
            left -= n
        if n:
            counts[minute] += n
        if left == 0:
            return


class OverLimit(Struct, frozen=True):
    """A minute in which the runs due to start under a rate limit exceed what it lets start in a minute."""

    limit: ResourceLimit
    minute: int
    starts: int
    allowed: int


def over_limits(
    f: Forecasting, keys_of: Mapping[tuple[str, str], Sequence[str]], limits: Sequence[ResourceLimit]
) -> list[OverLimit]:
    """The minutes in which a rate limit would hold runs back: their starts, summed over the jobs that fall under
    it (``keys_of``: (product, job tag) -> limit keys), above what the rate allows in a minute. A concurrency
    limit depends on how long runs take, which the forecast does not know: it is not marked."""
    out = []
    for limit in limits:
        if limit.rate is None:
            continue
        window = limit.rate.window
        allowed = limit.rate.count if window >= MINUTE else limit.rate.count * (MINUTE // window)
        per_minute: Counter[int] = Counter()
        for job, counts in f.by_job.items():
            if limit.key in keys_of.get(job, ()):
                per_minute.update(counts)
        out += [OverLimit(limit, m, n, allowed) for m, n in sorted(per_minute.items()) if n > allowed]
    return out
