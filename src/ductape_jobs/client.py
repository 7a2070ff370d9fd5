"""``Ductape``: the synchronous client. It owns the store, the clock, the registered functions and the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import numbers
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec.structs import replace

from ductape_jobs.blocking import Blocking, run_blocking
from ductape_jobs.clock import Clock, StoreClock, SystemClock
from ductape_jobs.engine.events import RunObserver
from ductape_jobs.engine.scheduler import Scheduler
from ductape_jobs.engine.wakeup import Wakeup
from ductape_jobs.engine.worker import Worker, WorkerOptions
from ductape_jobs.errors import DuctapeError, StoreError, ValidationError
from ductape_jobs.executors import ExecutorRegistry, FunctionExecutor, FunctionRegistry
from ductape_jobs.executors.context import RunPreparer
from ductape_jobs.executors.feature import FeatureExecutor
from ductape_jobs.executors.registry import product_executors
from ductape_jobs.limits import check_flag
from ductape_jobs.logs import logger
from ductape_jobs.models import DrainSummary, check_tag
from ductape_jobs.products import Products
from ductape_jobs.products.watch import ResourceWatch
from ductape_jobs.resource_client import Resources
from ductape_jobs.retention import PruneCounts, Retention
from ductape_jobs.store import DEFAULT_URL, Store, open_store
from ductape_jobs.store.sql import newer_error, shown_versions
from ductape_jobs.targets import TargetPolicy, parse_networks
from ductape_jobs.timing.backoff import Backoff
from ductape_jobs.webhooks import Webhooks

if TYPE_CHECKING:
    from ductape_jobs.features.api import Features
    from ductape_jobs.jobs import Jobs, ProductJobs
    from ductape_jobs.sessions import Sessions
    from ductape_jobs.tracing import Tracing

F = TypeVar("F", bound=Callable[..., Any])
#: How often a running worker looks at its product file for edited resources (``products/watch.py``).
RESOURCE_WATCH_EVERY = timedelta(seconds=2)
#: How often an engine process deletes the dashboard's live streams whose lease lapsed (``OutboxStore``), pruning
#: or not: a closed dashboard's stream then neither pins the outbox nor keeps its triggers.
STREAMS_EXPIRE_EVERY = timedelta(seconds=30)
log = logger("ductape_jobs.client")


#: Set by the CLI while it imports an ``--app`` for a command that makes no store (``runs``, ``copy``, ...): a
#: ``Ductape()`` made meanwhile that leaves ``create_store`` unsaid opens its store as ``create_store=False`` does,
#: refusing one none was made in (run in the wrong folder, the app's ``Ductape("sqlite:///app.db")`` made an empty
#: store that the command then listed, or copied).
OPEN_ONLY: ContextVar[bool] = ContextVar("ductape_open_only", default=False)

#: Set by ``ductape migrate`` while it imports an ``--app``: a ``Ductape()`` made meanwhile leaves its store's schema
#: as it is, neither migrating it nor checking it (whatever its ``migrate``), for the command to look at or migrate.
SCHEMA_LEFT: ContextVar[bool] = ContextVar("ductape_schema_left", default=False)


P = TypeVar("P")  # a part of the client (``Ductape._part``)


class Ductape:
    """The entry point.

    ``Ductape()`` uses ``$DUCTAPE_STORE`` or ``sqlite:///./ductape.db``; ``Ductape("postgresql://...")`` scales out.
    ``clock`` is injectable (``ductape_jobs.testing`` passes a fake one); worker settings are defaults for
    ``worker()`` and ``drain()``: ``concurrency`` (>= 1), and ``lease``, ``poll``, ``misfire_grace`` and
    ``shutdown_grace`` as a timedelta or in seconds (``lease=30``), each checked here (``ValidationError``).

    ``server_clock``: judge due times by the database server's clock (``StoreClock``), so nodes whose clocks
    drift agree. ``None`` (the default): yes when no ``clock`` is injected and the store has a server clock
    (PostgreSQL); an injected clock is used as given. ``True``: correct even an injected clock by the
    server's. ``False``: never.

    ``product``: the product whose jobs ``ductape.job`` manages (as the seeds' ``ductape.product.jobs``);
    ``None`` (the default): shared jobs are created, and a tag finds the shared job or the one product's job.

    ``retention``: how long finished history is kept (``Retention``: completed and cancelled runs 7 days, failed
    ones 30 days, by default); workers prune by it every minute. ``Retention(enabled=False)``: never prune.

    ``webhook_allow``: networks (CIDRs, a list or a comma separated string) that webhook targets may use
    besides public addresses (default ``$DUCTAPE_WEBHOOK_ALLOW``, else none): loopback, private, link-local
    and metadata addresses are refused otherwise (``ductape_jobs.webhooks``).

    ``tracing``: OpenTelemetry spans of each attempt, continuing the trace current at ``schedule()`` (the otel
    extra; ``ductape_jobs.tracing``). ``None`` (the default): ``$DUCTAPE_TRACING`` (``1`` turns it on), else off.

    ``create_store``: ``False`` refuses a store none was made in (a SQLite file that is not there or holds none, a
    PostgreSQL schema no process has used), a ``ValidationError`` naming ``store``, rather than making it: a
    tool that only reads, pointed at a mistyped URL (the CLI's commands that read do so). ``None`` (the default):
    ``True``, but ``False`` while the CLI imports an ``--app`` for such a command (``OPEN_ONLY``).
    ``migrate``: whether this client applies the migrations its store lacks as it opens it (a worker's start, each
    command's), one process at a time. ``False``: it never changes the schema, and a store that lacks one of this
    release's migrations is refused, a ``StoreError`` saying to run ``ductape migrate`` (one none was made in, a
    ``ValidationError`` naming ``store``): an upgrade made as a step of its own, before the new release's processes
    start. ``None`` (the default):
    ``$DUCTAPE_MIGRATE`` (``0``, ``false``, ``no`` or ``off``: ``False``), else ``True``.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        clock: Clock | None = None,
        server_clock: bool | None = None,
        concurrency: int = 50,
        lease: timedelta | float = timedelta(seconds=30),
        poll: timedelta | float = timedelta(milliseconds=200),
        backoff: Backoff | None = None,
        misfire_grace: timedelta | float = timedelta(seconds=1),
        shutdown_grace: timedelta | float = timedelta(seconds=30),
        functions: FunctionRegistry | None = None,
        product_file: str | None = None,
        products: Products | None = None,
        webhook_allow: Iterable[str] | str | None = None,
        product: str | None = None,
        retention: Retention | None = None,
        tracing: bool | None = None,
        create_store: bool | None = None,
        migrate: bool | None = None,
    ) -> None:
        self.tracing: Tracing | None = None  # off: nothing of OpenTelemetry is imported
        self._parts: dict[str, Any] = {}  # job, feature, ...: each made on first use (``_part``)
        self._making = threading.RLock()  # held while one is made
        if create_store is None:  # unsaid: made, but where a CLI command that makes no store imports the app
            create_store = not OPEN_ONLY.get()
        check_flag(create_store, "create_store")  # "no" would be taken as True, and make the store
        check_flag(migrate, "migrate", optional=True)
        self._migrate = migrate  # as given: on_store passes it on
        migrating = _migrate_wanted(migrate)  # $DUCTAPE_MIGRATE checked before anything is opened
        check_flag(tracing, "tracing", optional=True)
        check_flag(server_clock, "server_clock", optional=True)  # "no" would judge due times by the server's clock
        product = None if product is None else check_tag(product, "product")  # before anything is opened
        if store is not None and not isinstance(store, str | Store):
            raise ValidationError("store", f"must be a store URL or a Store, not {type(store).__name__}")
        if _tracing_wanted(tracing):
            from ductape_jobs.tracing import enable

            self.tracing = enable()  # MissingExtraError (one line, naming the otel extra) when it is not installed
        allowed = parse_networks(
            webhook_allow if webhook_allow is not None else os.environ.get("DUCTAPE_WEBHOOK_ALLOW")
        )  # before anything is opened
        self._settings: dict[str, Any] = {  # kept for on_store()
            **_checked(
                {
                    "concurrency": concurrency,
                    "lease": lease,
                    "poll": poll,
                    "backoff": backoff,
                    "misfire_grace": misfire_grace,
                    "shutdown_grace": shutdown_grace,
                    "retention": retention,
                },
                at_start=True,
            ),
            "tracing": tracing,
        }
        self.retention = retention if retention is not None else Retention()
        self.store: Store = store if isinstance(store, Store) else self._open(store, create_store, migrating)
        self._closed = False
        try:  # a failure below closes the store this client opened
            self._open_schema(migrating, create_store)
            self._assemble(clock, server_clock, functions, product_file, products, allowed, product)
        except BaseException:
            if not isinstance(store, Store):
                self.store.close()
            raise

    def _assemble(
        self,
        clock: Clock | None,
        server_clock: bool | None,
        functions: FunctionRegistry | None,
        product_file: str | None,
        products: Products | None,
        allowed: tuple[Any, ...],
        product: str | None,
    ) -> None:
        """Build the parts and hand each its collaborators: nothing below reaches back into the client."""
        self._given_clock, self._server_clock = clock, server_clock
        local = clock or SystemClock()
        use_server = server_clock if server_clock is not None else clock is None
        self.clock: Clock = StoreClock.attach(local, self.store) if use_server else local
        self.functions = functions if functions is not None else FunctionRegistry()
        self._product_file: str | None = None  # read here: workers re-read its resources (products/watch.py)
        if products is None:
            path = product_file or os.environ.get("DUCTAPE_PRODUCT_FILE")
            products = Products.load(path) if path else Products()
            self._product_file = path or None
        self.products = products
        settings = self._settings
        self.options = WorkerOptions(
            concurrency=settings["concurrency"],
            lease=settings["lease"],
            poll=settings["poll"],
            backoff=settings["backoff"] or Backoff(),
            shutdown_grace=settings["shutdown_grace"],
            retention=self.retention,
        )
        self.scheduler = Scheduler(self.store, self.clock, grace=settings["misfire_grace"])
        self._pool_size = max(4, settings["concurrency"])
        self._pool = ThreadPoolExecutor(max_workers=self._pool_size, thread_name_prefix="ductape-fn")
        self._function_executor = FunctionExecutor(self.functions, self._pool, self.products)
        self.executors = ExecutorRegistry()
        self.executors.register(self._function_executor)
        for event_type, factory in product_executors(self.products, self._network).items():  # loaded on first use
            self.executors.register_factory(event_type, factory)
        # Each blocking call (drain, feature.run) is one event loop; the executors' connections close with it.
        self._blocking = Blocking(cleanup=self.executors.aclose)
        self.prepare = RunPreparer(self.products, self.clock)
        # lifecycle webhooks: the store writes the events (its outbox); the delivery loop relays and sends them
        self.webhooks = Webhooks(
            self.store, self.clock, allow=[str(net) for net in allowed], secrets=self.products.secrets
        )
        self.wake = Wakeup()  # this process's running workers, woken when something becomes due
        self._product = product  # the product whose jobs ``job`` manages (made when first used: ``job``)
        self.resources = Resources(self.store, self.clock)  # ductape.resources.use() / .waiting(): limits now
        self.executors.register(FeatureExecutor(lambda: self.feature.engine))  # made when the first feature runs
        self.observers: list[RunObserver] = []  # told by workers (metrics); webhooks read the store's outbox

    def _open(self, url: str | None, create_store: bool, migrating: bool) -> Store:
        """The store at ``url`` (else ``$DUCTAPE_STORE``, else the default); a process that does not migrate makes no
        SQLite file either, and says so where it refuses one that is not there."""
        try:
            return open_store(
                url or os.environ.get("DUCTAPE_STORE") or DEFAULT_URL,
                create=create_store and (migrating or SCHEMA_LEFT.get()),
            )
        except ValidationError as exc:
            if exc.field != "store" or migrating or not create_store or SCHEMA_LEFT.get():
                raise
            raise ValidationError("store", f"{exc.rule} (this process makes none: {self._how()})") from None

    def _how(self) -> str:
        """What keeps this process from migrating: its argument, or the environment."""
        return "migrate=False" if self._migrate is False else "$DUCTAPE_MIGRATE"

    def _open_schema(self, migrating: bool, create_store: bool) -> None:
        """Migrate the store, or (``migrate=False``) refuse one that lacks a migration of this release; neither while
        ``ductape migrate`` imports an app (``SCHEMA_LEFT``)."""
        if SCHEMA_LEFT.get():
            return
        if migrating:
            self.store.migrate(create=create_store)
            return
        how = self._how()
        if getattr(self.store, "path", None) == ":memory:":  # made by its opener, or never
            raise ValidationError("migrate", f"an in-memory SQLite store is made by the process that opens it ({how})")
        state = self.store.schema_state()
        if state.newer:
            raise newer_error(state)
        if not state.made:  # a mistyped URL, another program's file: as a command that reads says
            where = getattr(self.store, "label", None) or repr(getattr(self.store, "path", ""))  # no password
            raise ValidationError(
                "store",
                f"no ductape-jobs store in {where} (a PostgreSQL schema or SQLite file none was made in): check the "
                f"store's URL; `ductape migrate` makes one (this process makes none: {how})",
            )
        if state.pending:
            raise StoreError(
                f"the store's schema is at version {state.version} and this release's is at {state.release}: run "
                f"`ductape migrate` to apply {shown_versions(state.pending)} (this process does not migrate its "
                f"store: {how})"
            )

    def _part(self, name: str, make: Callable[[], P]) -> P:
        """The part ``name`` of this client (``job``, ``feature``, ...), made by ``make()`` when first used, so that a
        process that never uses it never loads it: a worker that runs FUNCTIONs loads neither the jobs API nor the
        feature engine. Made once, under the client's lock, even when threads first use it together (an API server's
        threads, a worker's loop; ``functools.cached_property`` no longer locks from Python 3.12, and two feature
        engines would each keep their own ``sleep``); read without the lock once made."""
        made: P | None = self._parts.get(name)
        if made is None:
            with self._making:  # reentrant: a part made of another (``product`` of ``job``) takes it again
                made = self._parts.get(name)
                if made is None:
                    made = self._parts[name] = make()
        return made

    @property
    def session(self) -> Sessions:
        """``ductape.session``: the session tokens of the sessions the products declare."""
        return self._part("session", self._new_session)

    def _new_session(self) -> Sessions:
        from ductape_jobs.sessions import Sessions

        return Sessions(self.products, self.clock)

    @property
    def feature(self) -> Features:
        """``ductape.feature``: run a product's feature, resume one, list them. Made when first used (a FEATURE run, a
        worker's look for feature runs whose driver died while a product is known): a worker that runs FUNCTIONs
        does not load the feature engine."""
        return self._part("feature", self._new_features)

    def _new_features(self) -> Features:
        from ductape_jobs.features.api import Features
        from ductape_jobs.features.engine import FeatureEngine

        engine = FeatureEngine(
            store=self.store,
            products=self.products,
            sessions=self.session,
            executors=self.executors,
            prepare=self.prepare,
            clock=self.clock,
            # a JOB event schedules under its key, with the feature's session (Jobs._schedule_keyed: no public call)
            schedule=lambda request, key, session: self.product(request["product_tag"]).jobs._schedule_keyed(
                request, key=key, session=session
            ),
            backoff=self.options.backoff,
            lease=self.options.lease,
            tracing=self.tracing,
        )
        return Features(self.store, engine, self._blocking)

    @property
    def job(self) -> Jobs:
        """``ductape.job``: the jobs of the client's own product (``None``: the shared ones, and all). Made when first
        used: a worker process, which makes and schedules none, does not load them (the scheduler and the workers
        run what is stored)."""
        return self._part("job", self._new_jobs)

    def _new_jobs(self) -> Jobs:
        from ductape_jobs.jobs import Jobs

        return Jobs(
            self.store,
            self.clock,
            products=self.products,
            sessions=self.session,
            webhooks=self.webhooks,
            wake=self.wake,
            tracing=self.tracing,
            product=self._product,
        )

    @property
    def product(self) -> ProductJobs:
        """The seeds' ``ductape.product.jobs``; ``ductape.product("shop").jobs``."""
        return self._part("product", self._new_product_jobs)

    def _new_product_jobs(self) -> ProductJobs:
        from ductape_jobs.jobs import ProductJobs

        return ProductJobs(self.job)

    def function(self, tag: str, *, timeout: float | None = None) -> Callable[[F], F]:
        """Register a FUNCTION event: ``@ductape.function("tag")`` on ``def fn(input, ctx)`` (sync or async).
        ``timeout`` (seconds) fails a call that takes longer (it is retried as the job says)."""

        def register(fn: F) -> F:
            self.functions.register(tag, fn, timeout)
            return fn

        return register

    def _network(self) -> TargetPolicy:
        """Where a request whose host a caller chose may go (an ACTION's, a callback's: ``lookup.Target``): the
        webhooks' network guard, its allowlist as it is now."""
        return self.webhooks.policy

    def on_store(self, store: str | Store, *, create_store: bool = True) -> Ductape:
        """A client on another store with this one's functions, clock and settings (the CLI's ``--store``)."""
        return Ductape(
            store,
            create_store=create_store,
            clock=self._given_clock,
            server_clock=self._server_clock,
            functions=self.functions,
            products=self.products,
            webhook_allow=self.webhooks.allow,
            product=self._product,
            migrate=self._migrate,
            **self._settings,
        )

    def new_worker(self, **overrides: Any) -> Worker:
        """A worker on this client's store, clock and functions (``overrides`` change ``WorkerOptions``)."""
        options = self.options if not overrides else _with(self.options, overrides)
        if options.concurrency > self._pool_size:  # sync functions get a thread per concurrent run
            old, self._pool_size = self._pool, options.concurrency
            self._pool = ThreadPoolExecutor(max_workers=self._pool_size, thread_name_prefix="ductape-fn")
            self._function_executor.pool = self._pool
            old.shutdown(wait=False)
        self._store_resources()
        return Worker(
            self.store,
            self.scheduler,
            self.executors,
            self.clock,
            options,
            prepare=self.prepare,
            observers=self.observers,
            secrets=self.products.secrets,
            tracing=self.tracing,
        )

    def prune(
        self,
        *,
        dry_run: bool = False,
        keep_completed: timedelta | None = None,
        keep_failed: timedelta | None = None,
    ) -> PruneCounts:
        """Delete now, batch after batch, the finished history past its keep (this client's ``retention``, or
        ``keep_completed``/``keep_failed`` instead); how many rows of each kind went. ``dry_run``: count them
        and delete nothing. Workers do this by themselves every ``retention.every``."""
        retention = replace(
            self.retention,
            keep_completed=self.retention.keep_completed if keep_completed is None else keep_completed,
            keep_failed=self.retention.keep_failed if keep_failed is None else keep_failed,
        )
        now = self.clock.now()
        if check_flag(dry_run, "dry_run"):  # "" would be taken as False, and delete
            return self.store.count_prunable(now, retention)
        total = PruneCounts()
        while True:
            counts = self.store.prune(now, retention, retention.batch)
            total += counts
            if max(counts.as_dict().values()) < retention.batch:
                break
        after = ""  # and every ended schedule that no run took with it: a sweep of them all, batch after batch
        while True:
            swept, after = self.store.sweep_schedules(now, retention, retention.batch, after)
            total += PruneCounts(schedules=swept)
            if not after:
                return total

    def copy_to(self, store: str) -> dict[str, int]:
        """Copy everything this client's store holds into a new, empty store at the URL ``store`` (SQLite to
        PostgreSQL when one machine is outgrown, or back): jobs, schedules with their counts and next due times,
        runs and their history, API keys, webhooks and their pending deliveries, feature runs, limits' state. As one
        transaction of this store sees it, in one transaction of the new one: all or nothing. A SQLite target must
        be a new file (it appears only whole); a PostgreSQL one is made and migrated as any process does, and must
        hold nothing yet. Stop every worker first: a run one holds refuses the copy (``ValidationError`` naming
        ``store``). The rows copied, by table (``store/transfer.py``)."""
        from ductape_jobs.store.copying import copy_store  # a copy's only: not loaded by every process

        return copy_store(self.store, store, self.clock.now())

    def drain(self) -> DrainSummary:
        """Run everything due now, in this process, until nothing more is due; returns what happened."""
        return self._blocking.run(lambda: self.new_worker().run_until_idle(), "ductape.drain()")

    def worker(self, **overrides: Any) -> None:
        """Run the engine (scheduler and workers) until SIGTERM/SIGINT, then stop claiming, let in-flight runs
        finish within ``shutdown_grace`` and give the rest back to the queue. If code of a run given back is
        still running in a thread, the process then exits at once (a thread cannot be stopped)."""
        worker = self._blocking.run(lambda: self.run_worker(**overrides), "ductape.worker()")
        if worker.abandoned:
            logger("ductape_jobs.worker").warning(
                "exiting with %d run(s) still executing in threads (released to other workers)", worker.abandoned
            )
            logging.shutdown()
            os._exit(0)

    async def run_worker(
        self, stop: asyncio.Event | None = None, *, hurry: asyncio.Event | None = None, **overrides: Any
    ) -> Worker:
        """Run a worker in the current event loop until ``stop`` is set (or SIGTERM/SIGINT without ``stop``); then
        its runs in flight finish within ``shutdown_grace``, or go back to the queue at once once ``hurry`` is set (a
        second signal, without ``stop``)."""
        worker = self.new_worker(**overrides)
        self.wake.join(worker)
        sent = asyncio.Event()  # the webhook deliveries and the resource watch go alongside, until it stops
        services = asyncio.create_task(self.run_services(sent), name="ductape-services")
        # direct feature runs whose driver died are resumed here, as the worker rescues job runs
        orphans = asyncio.create_task(self._adopt_orphans(sent, worker))
        try:
            await worker.run(stop, handle_signals=stop is None, hurry=hurry)
        finally:
            self.wake.leave(worker)
            sent.set()
            await asyncio.wait({services, orphans}, timeout=5)  # a delivery cut short is sent again later
            services.cancel()
            orphans.cancel()
        return worker

    async def _adopt_orphans(self, stop: asyncio.Event, worker: Worker) -> None:
        """Until ``stop`` is set, resume the direct feature runs whose driver died (``FeatureEngine.adopt_orphans``),
        from when this process knows a product: features are a product's, and a process that knows none resumes
        none (nor loads the feature engine). Products may be added while the worker runs: looked at every
        ``rescue_every``."""
        every = worker.options.rescue_every
        while not self.products.configured:
            if await _stopped_within(stop, every):
                return
        await self.feature.engine.adopt_orphans(stop, every, worker.may_rescue)

    async def run_services(self, stop: asyncio.Event) -> None:
        """What every engine process runs beside a worker, or instead of one (``ductape serve --no-worker``):
        the declared resources stored, then the webhook deliveries, the product file's resource watch and the
        deletion of lapsed live streams, until ``stop`` is set."""
        try:
            await asyncio.to_thread(self._store_resources)  # a worker's start stored them too: a no-op then
        except DuctapeError as exc:  # the store away: the limits stored before stay (a worker stores them too)
            log.warning("the product file's resources were not stored (%s)", exc)
        await asyncio.gather(self.webhooks.run(stop), self._watch_resources(stop), self._expire_streams(stop))

    async def _expire_streams(self, stop: asyncio.Event) -> None:
        """Every ``STREAMS_EXPIRE_EVERY``, delete the lapsed live streams (one read when none lapsed); the store
        away: the next look, or a prune, does it."""

        def expire() -> None:
            self.store.expire_streams(self.clock.now())

        await _every(stop, lambda: STREAMS_EXPIRE_EVERY, expire, "lapsed live streams were not deleted")

    def _store_resources(self) -> None:
        """Store the limits the products declare now (the product file's, as this process read it)."""
        limits = [limit for tag in self.products.tags() for limit in self.products.get(tag).limits()]
        self.store.define_resources(limits, self.clock.now())

    async def _watch_resources(self, stop: asyncio.Event) -> None:
        """Every ``RESOURCE_WATCH_EVERY``, store the product file's resources if the file changed
        (``products/watch.py``), so an edited limit holds across the store without a restart. An invalid file or
        the store away: the stored limits stay as they were."""
        if self._product_file is None:
            return
        watch = ResourceWatch(self.products, self._product_file)

        def look() -> None:
            limits = watch.poll()
            if limits:
                self.store.define_resources(limits, self.clock.now())
                log.info("product file %s changed: stored %d resource limit(s)", watch.path, len(limits))

        failed = f"product file {watch.path}: its resources were not updated"
        await _every(stop, lambda: RESOURCE_WATCH_EVERY, look, failed)

    def close(self) -> None:
        """Close what this client opened: the executors' HTTP clients, broker connections and database pools,
        the function threads, the store's connections (a store passed in is closed too). Inside a running
        event loop the executors can only be closed there: ``RunningLoopError`` then (use ``await aclose()``,
        or ``AsyncDuctape``), and nothing is closed."""
        if self._closed:
            return
        if self.executors.open:
            run_blocking(self.executors.aclose, "ductape.close()")
        self._close_rest()

    async def aclose(self) -> None:
        """``close()`` from async code: the executors in this event loop, the rest in a thread."""
        if self._closed:
            return
        await self.executors.aclose()
        await asyncio.to_thread(self._close_rest)

    def _close_rest(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.webhooks.close()
        self.store.close()

    def __enter__(self) -> Ductape:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _migrate_wanted(setting: bool | None) -> bool:
    """``setting``, else ``$DUCTAPE_MIGRATE`` (``0``, ``false``, ``no`` or ``off``: no; unset or empty: yes). Another
    value is a ``ValidationError``: a misspelt "no" must not migrate a store its team upgrades by hand."""
    if setting is not None:
        return setting
    raw = os.environ.get("DUCTAPE_MIGRATE", "").strip().lower()
    if raw in {"", "1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValidationError(
        "migrate", f"$DUCTAPE_MIGRATE must be 1, true, yes or on, or 0, false, no or off, not {raw[:40]!r}"
    )


def _tracing_wanted(setting: bool | None) -> bool:
    """``setting``, else ``$DUCTAPE_TRACING`` (1, true, yes or on): read here so that off imports nothing more."""
    if setting is not None:
        return setting
    return os.environ.get("DUCTAPE_TRACING", "").strip().lower() in {"1", "true", "yes", "on"}


#: The most a worker may claim a delayed run before it is due (``WorkerOptions.ahead``): the run holds a slot of its
#: concurrency and its lease meanwhile (the heartbeat extends it; a run given back keeps its due time).
_MAX_AHEAD = timedelta(seconds=1)


#: The settings of time that ``Ductape()`` and ``worker(**overrides)`` take (a timedelta, or seconds), each with the
#: least it may be and the most. A lease of less than 0.1 s (``ductape worker --lease``'s least too) lapses before
#: its first heartbeat's round trip, and its run is rescued and run again while it runs.
_TIMES: dict[str, tuple[timedelta, timedelta]] = {
    "lease": (timedelta(milliseconds=100), timedelta(days=1)),
    "heartbeat": (timedelta(milliseconds=10), timedelta(days=1)),
    "poll": (timedelta(milliseconds=1), timedelta(hours=1)),
    "rescue_every": (timedelta(milliseconds=10), timedelta(hours=1)),
    "listen": (timedelta(milliseconds=10), timedelta(hours=1)),
    "shutdown_grace": (timedelta(0), timedelta(days=1)),
    "misfire_grace": (timedelta(0), timedelta(days=7)),
    "ahead": (timedelta(0), _MAX_AHEAD),
}
#: The counts they take, each with the least it may be.
_COUNTS = {"concurrency": 1, "batch": 1, "max_rescues": 0}
#: The records they take (``None``: the default, at ``Ductape()`` only).
_RECORDS: dict[str, type] = {"backoff": Backoff, "retention": Retention}
#: The flags they take.
_FLAGS = ("run_scheduler",)


def _checked(settings: dict[str, Any], *, at_start: bool = False) -> dict[str, Any]:
    """``settings`` of ``Ductape()`` (``at_start``) or of a worker, each checked (seconds made timedeltas): a value of
    another type, NaN or out of its bounds is a ``ValidationError`` naming it, before anything is opened or runs.
    Unchecked, a ``lease=30`` or a ``poll=0.2`` failed the worker at its first run, a ``shutdown_grace=3`` at its stop
    (its runs left running until their leases lapsed), and a ``concurrency=0`` ran nothing, saying nothing."""
    out = dict(settings)
    for key, value in settings.items():
        if key in _TIMES and not (key == "heartbeat" and value is None):
            least, most = _TIMES[key]
            seconds = value.total_seconds() if isinstance(value, timedelta) else value
            number = not isinstance(seconds, bool) and isinstance(seconds, int | float) and -1 <= seconds <= 1e9  # NaN
            made = timedelta(seconds=seconds) if number else None  # to the microsecond: 1e-7 s is none
            if made is None or not least <= made <= most:
                rule = f"must be seconds (or a timedelta) from {least.total_seconds():g} to {most.total_seconds():g}"
                raise ValidationError(key, rule)
            out[key] = made
        elif key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < _COUNTS[key]:
                raise ValidationError(key, f"must be a whole number >= {_COUNTS[key]}")
            out[key] = int(value)
        elif key in _RECORDS and not isinstance(value, _RECORDS[key]) and not (value is None and at_start):
            kind = _RECORDS[key].__name__ + (" or None" if at_start else "")
            raise ValidationError(key, f"must be a {kind}, not {type(value).__name__}")
        elif key in _FLAGS and not isinstance(value, bool):
            raise ValidationError(key, f"must be True or False, not {type(value).__name__}")
    return out


def worker_options(**overrides: Any) -> WorkerOptions:
    """The default worker options with ``overrides``, checked as ``Ductape.worker(**overrides)`` checks them
    (``ValidationError`` naming the setting): the CLI checks its options before it opens a store."""
    return _with(WorkerOptions(), overrides)


def _with(options: WorkerOptions, overrides: dict[str, Any]) -> WorkerOptions:
    from msgspec.structs import fields, replace

    known = {f.name for f in fields(WorkerOptions)}
    unknown = set(overrides) - known
    if unknown:
        raise ValidationError(sorted(unknown)[0], f"is not a worker option (use one of {', '.join(sorted(known))})")
    made = replace(options, **_checked(overrides))
    if made.heartbeat is not None and made.heartbeat >= made.lease:  # the lease would lapse between two beats
        raise ValidationError("heartbeat", f"must be shorter than the lease ({made.lease.total_seconds():g} s)")
    return made


async def _stopped_within(stop: asyncio.Event, wait: timedelta) -> bool:
    """Wait until ``stop`` is set, or ``wait`` has passed; whether ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), wait.total_seconds())
    return stop.is_set()


async def _every(stop: asyncio.Event, interval: Callable[[], timedelta], step: Callable[[], None], failed: str) -> None:
    """``step`` in a thread after every ``interval()`` (read at each wait: tests shorten it) until ``stop`` is set;
    a ``DuctapeError`` is logged (``failed``) and the next look tries again, as is any other error, with its
    traceback (a bug: the loop goes on, where its task would have ended unseen, the service with it)."""
    while not await _stopped_within(stop, interval()):
        try:
            await asyncio.to_thread(step)
        except DuctapeError as exc:
            log.warning("%s (%s)", failed, exc)
        except Exception:
            log.exception(failed)
