"""Pure timing: cron in a time zone, fixed intervals, limits, end dates, misfire planning, previews.

No I/O and no clock of its own: every function takes the times it needs.
"""

from ductape_jobs.timing.planning import Occurrences, Plan, plan_due
from ductape_jobs.timing.recurrence import (
    CronRecurrence,
    EveryRecurrence,
    OnceRecurrence,
    Recurrence,
    normalize_cron,
    preview,
)

__all__ = [
    "CronRecurrence",
    "EveryRecurrence",
    "Occurrences",
    "OnceRecurrence",
    "Plan",
    "Recurrence",
    "normalize_cron",
    "plan_due",
    "preview",
]
