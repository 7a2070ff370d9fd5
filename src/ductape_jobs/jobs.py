"""``ductape.job``: the seeds' Jobs API (create, update, fetch, fetch_all, schedule) and schedule control, put
together from ``JobScheduling`` (job_scheduling.py), ``JobControl`` (job_control.py) and ``JobReports``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ductape_jobs.clock import to_ms
from ductape_jobs.errors import ConflictError, NotFoundError, ValidationError
from ductape_jobs.job_control import JobControl
from ductape_jobs.job_reports import JobReports
from ductape_jobs.job_scheduling import JobScheduling
from ductape_jobs.limits import MAX_PAGE
from ductape_jobs.models import (
    JobEventTypes,
    ScheduleStatus,
    check_cadence,
    check_executions_given,
    check_key,
    check_tag,
    check_unlimited,
)

if TYPE_CHECKING:
    from ductape_jobs.clock import Clock
    from ductape_jobs.inputs import JobDefinition, JobUpdate
    from ductape_jobs.products import Products
    from ductape_jobs.sessions import Sessions
    from ductape_jobs.store.base import ScheduleTarget, Store
    from ductape_jobs.tracing import Tracing
    from ductape_jobs.webhooks import Webhooks


class Jobs(JobScheduling, JobControl, JobReports):
    """Reached as ``ductape.job`` (or ``ductape.product("shop").jobs``, bound to a product). Every method
    validates first and writes nothing on bad input. The definitions' methods are here; scheduling comes from
    ``JobScheduling``, schedule control and runs from ``JobControl``, ``history`` and ``stats`` from ``JobReports``.

    A job belongs to a product, as in the seeds; one without a product is shared by every product. Bound to a
    product, ``create`` makes that product's jobs, ``fetch_all`` lists them, and a tag finds the product's own
    job first, then the shared one (what the product's schedules run). Unbound, ``create`` makes a shared job
    unless the details name a ``product_tag``, ``fetch_all`` lists every job, and a tag finds the shared job,
    else the one product's job of that tag (``ValidationError`` if several products have one).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        products: Products,
        sessions: Sessions,
        webhooks: Webhooks,
        wake: Callable[[], None],
        tracing: Tracing | None = None,
        product: str | None = None,
        definitions: dict[tuple[str, str], JobDefinition] | None = None,
    ) -> None:
        """``wake`` tells this process's workers that something is due (``engine.wakeup.Wakeup``); ``webhooks``
        receives the lifecycle events; ``products`` and ``sessions`` admit product jobs."""
        self._store = store
        self._clock = clock
        self._products = products
        self._sessions = sessions
        self._webhooks = webhooks
        self._wake = wake
        self._tracing = tracing  # None: off
        self.product_tag = None if product is None else check_tag(product, "product_tag")
        # Job definitions as schedule() last read them, by (the schedule's product, tag), shared by a client's
        # Jobs. A write checks each one against the store (StaleJobError when another client changed it), so
        # a stale entry is read again, never used.
        self._definitions: dict[tuple[str, str], JobDefinition] = {} if definitions is None else definitions

    def _for_product(self, tag: str) -> Jobs:
        """The jobs of product ``tag``, on the same collaborators (and the same cache of definitions)."""
        jobs = copy.copy(self)
        jobs.product_tag = check_tag(tag, "product_tag")
        return jobs

    # ---------------------------------------------------------------------------- job definitions

    def create(self, details: JobDefinition | dict[str, Any]) -> JobDefinition:
        from ductape_jobs.inputs import JobDefinition, parse  # pydantic: loaded when a caller's input is first read

        job = parse(JobDefinition, details)
        if self.product_tag is not None:
            if job.product_tag not in (None, self.product_tag):
                raise ValidationError(
                    "product_tag", f"is {job.product_tag!r}, but these are the jobs of product {self.product_tag!r}"
                )
            job = job.model_copy(update={"product_tag": self.product_tag})
        if job.created_at is None:  # asked for (a stored job, created_at set, says what it is)
            check_executions_given(job.intervals, given="executions" in job.model_fields_set)
            if "executions" in job.model_fields_set:
                check_unlimited(job.executions, job.intervals)
        self._check_event(job)
        limits = self._products.limits_of(job)
        if self._store.get_job(job.product_tag or "", job.tag) is not None:  # the store's ConflictError: races
            where = f" in product {job.product_tag!r}" if job.product_tag else ""
            raise ConflictError(f"tag: a job with tag {job.tag!r} already exists{where}")
        self._forget(job.tag)
        self._store.define_resources(limits, self._clock.now())
        return self._store.create_job(job, to_ms(self._clock.now()))

    def update(self, tag: str, data: JobUpdate | dict[str, Any]) -> JobDefinition:
        from ductape_jobs.inputs import JobUpdate, parse

        changes = parse(JobUpdate, data).model_dump(exclude_unset=True)
        if not changes:
            raise ValidationError("data", "give at least one field to update")
        job = self.fetch(tag)
        field = "event_tag" if "event_tag" in changes else "event_type"

        def check(updated: JobDefinition, targets: Sequence[ScheduleTarget]) -> None:
            """The fields each were validated, their pairing here; the event, against the product and against where
            the job's live schedules run it (they would run the new one: a schedule() there now is refused)."""
            check_cadence(updated.executions, updated.intervals)
            if "executions" in changes:
                check_unlimited(updated.executions, updated.intervals)
            self._check_event(updated)
            for t in targets:
                try:
                    self._products.check_schedule(t.product_tag, t.env, updated.event_type, updated.event_tag, t.app)
                except ValidationError as exc:
                    where = f"product {t.product_tag!r}, env {t.env!r}" + (f", app {t.app!r}" if t.app else "")
                    raise ValidationError(
                        field,
                        f"its active or paused schedules in {where} could not run it ({exc.field}: {exc.rule}); "
                        "cancel them first",
                    ) from None

        updated = job.model_copy(update=changes)  # not validated again: the fields each were
        check(updated, [])  # bad input named before anything is written; again as it is written
        limits = self._products.limits_of(updated)
        self._forget(tag)
        self._store.define_resources(limits, self._clock.now())
        # checked again in the write's transaction, on the row as it is: two updates at once each checked the job
        # as it read it, and together made a job neither would have been let make (executions 5, intervals 0)
        return self._store.update_job(job.product_tag or "", tag, changes, to_ms(self._clock.now()), check=check)

    def fetch(self, tag: str) -> JobDefinition:
        check_key(tag, "tag")
        if self.product_tag is not None:
            job = self._store.find_job(self.product_tag, tag)
        else:
            found = self._store.jobs_tagged(tag)
            shared = [j for j in found if j.product_tag is None]
            if not shared and len(found) > 1:
                owners = ", ".join(repr(j.product_tag) for j in found)
                raise ValidationError(
                    "tag",
                    f"products {owners} each have a job {tag!r}; name one by its product_tag (Python: "
                    "ductape.product(<tag>).jobs; CLI: --product; HTTP: ?product_tag=)",
                )
            job = next(iter(shared or found), None)
        if job is None:
            raise NotFoundError("job", tag)
        return job

    def fetch_all(self) -> list[JobDefinition]:
        return self._store.list_jobs(self.product_tag)

    def delete(self, tag: str) -> None:
        """Delete a job. Its live (active or paused) schedules are cancelled first, with the reason
        ``job <tag> deleted``, and so are its finished schedules whose runs have not all started (a one-off's queued
        run, a retry): their runs that have not started too; their history is kept. A job with unlimited executions
        runs until this."""
        job = self.fetch(tag)
        owner = job.product_tag or ""
        reason = f"job {tag} deleted"
        for status in (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED):
            while live := self._store.list_schedules(status=status, job_tag=tag, job_product=owner, limit=MAX_PAGE):
                for schedule in live:
                    self.cancel(schedule.id, reason=reason)
        self._forget(tag)
        # ConflictError if a live schedule of it was made meanwhile: nothing deleted
        self._store.delete_job(owner, tag, to_ms(self._clock.now()), f"cancelled: {reason}")

    def _check_event(self, job: JobDefinition) -> None:
        """A product's job runs an event the product declares (FUNCTIONs register in workers: not checked)."""
        products = self._products
        if job.product_tag is None or job.event_type is JobEventTypes.FUNCTION:
            return
        spec = products.find(job.product_tag)
        if spec is None:
            known = ", ".join(products.tags()) or "none"
            raise ValidationError(
                "product_tag",
                f"product {job.product_tag!r} is not declared (known: {known}); a {job.event_type.name} job runs "
                "an event its product declares (ductape.products.add(...) or a product file)",
            )
        try:
            products.check_job_event(spec, job.event_type, job.event_tag)
        except ValidationError as exc:
            raise ValidationError("event_tag", exc.rule) from None

    def _forget(self, tag: str) -> None:
        for key in [k for k in self._definitions if k[1] == tag]:
            del self._definitions[key]

    # the seeds' other spellings (000, 001, 002), as written
    fetchAll = fetch_all
    fetch_jobs = fetch_all
    fetchJobs = fetch_all
    fetch_job = fetch
    fetchJob = fetch
    create_job = create
    createJob = create
    update_job = update
    updateJob = update


__all__: Sequence[str] = ["Jobs"]


class ProductJobs:
    """``ductape.product``: the seeds' ``product.jobs``. ``ductape.product("shop").jobs`` holds product shop's
    jobs; ``ductape.product.jobs`` those of the client's own product (``Ductape(product="shop")``), which
    ``ductape.job`` also is."""

    def __init__(self, root: Jobs) -> None:
        self.tag = root.product_tag
        self.jobs = root
        self._root = root

    def __call__(self, tag: str) -> ProductJobs:
        if tag == self._root.product_tag:
            return self
        return ProductJobs(self._root._for_product(tag))
