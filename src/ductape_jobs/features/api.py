"""``ductape.feature``: run a product's feature (``run``), carry on an unfinished run (``resume``), run a failed
one again (``retry``), and read runs back (``get``, ``runs``). ``AsyncDuctape`` has the same, awaited."""

from __future__ import annotations

import asyncio
import builtins
import functools
from typing import TYPE_CHECKING, Any

from ductape_jobs.blocking import Blocking
from ductape_jobs.errors import NotFoundError
from ductape_jobs.features.engine import FeatureEngine, Sleep
from ductape_jobs.features.records import FeatureRun, FeatureRunStatus
from ductape_jobs.limits import check_enum, check_page
from ductape_jobs.models import check_filter, check_key, read_past

if TYPE_CHECKING:
    from ductape_jobs.store.base import Store


class Features:
    """Reached as ``ductape.feature``. ``run`` validates first and stores nothing on bad input.

    A run is recorded before its first event starts and after each event ends, so ``resume`` (in this process
    or another) carries on where a crashed run stopped, never running a finished event again.
    """

    def __init__(self, store: Store, engine: FeatureEngine, blocking: Blocking) -> None:
        """``engine`` drives the runs; ``blocking`` runs it from this synchronous API (one event loop a call,
        whose executors' connections are closed before it ends)."""
        self._store = store
        self.engine = engine
        self._blocking = blocking

    @property
    def sleep(self) -> Sleep:
        """How a retried event waits its backoff (``asyncio.sleep``); replace it in tests."""
        return self.engine.sleep

    @sleep.setter
    def sleep(self, value: Sleep) -> None:
        self.engine.sleep = value

    def run(
        self,
        tag: str,
        *,
        env: str,
        product_tag: str,
        input: dict[str, Any] | None = None,
        session: Any = None,
    ) -> FeatureRun:
        """Run feature ``tag`` of ``product_tag`` in ``env`` now, in this process, and return the finished run
        (``status`` completed or failed, with each event's result). ``session`` is a session token
        (``"tag:jwt"`` or ``{"tag", "token"}``) whose verified data feeds ``$Session{...}``."""
        return self._blocking.run(
            lambda: self.engine.start(tag, env=env, product_tag=product_tag, input=input, session=session),
            "ductape.feature.run()",
        )

    def resume(self, feature_run_id: str) -> FeatureRun:
        """Carry on an unfinished run (its driver died) from the first event that had not finished. A finished
        run is returned as it is; ``ConflictError`` while another driver's lease on it has not expired."""
        check_key(feature_run_id, "feature_run_id")
        return self._blocking.run(lambda: self.engine.resume(feature_run_id), "ductape.feature.resume()")

    def retry(self, feature_run_id: str) -> FeatureRun:
        """Run a failed run again: its failed and skipped events run; completed ones are kept."""
        check_key(feature_run_id, "feature_run_id")
        return self._blocking.run(lambda: self.engine.retry(feature_run_id), "ductape.feature.retry()")

    def get(self, feature_run_id: str) -> FeatureRun:
        """One feature run with each event's result."""
        found = self._store.get_feature_run(check_key(feature_run_id, "feature_run_id"))
        if found is None:
            raise NotFoundError("feature run", feature_run_id)
        return found

    def runs(
        self,
        *,
        feature_tag: str | None = None,
        status: FeatureRunStatus | str | None = None,
        product_tag: str | None = None,
        env: str | None = None,
        limit: int = 100,
        offset: int = 0,
        after: str | None = None,
    ) -> builtins.list[FeatureRun]:
        """Feature runs, newest first (without their events; ``get`` has them). ``product_tag``/``env``: only
        that product's, that env's runs (as ``job.list`` and ``job.runs`` take them). ``after``: a feature run's id
        (the last of the page before): those past it in this order, found by the index where a deep ``offset``
        counts every run before it (``ValidationError`` when there is no such run in the list)."""
        state = check_enum(FeatureRunStatus, status, "status")
        check_page(limit, offset)
        product, environment = check_filter(product_tag, "product_tag"), check_filter(env, "env")
        read = functools.partial(
            self._store.list_feature_runs,
            feature_tag=feature_tag,
            status=state,
            product_tag=product,
            env=environment,
            limit=limit,
            offset=offset,
            after=after,
        )
        why = "never made, pruned since, or of another feature, product or env than it keeps"
        return read_past(read, "feature run", after, why)


class AsyncFeatures:
    """``await ductape.feature.<method>(...)``: each method is ``Features``' method of the same name."""

    def __init__(self, features: Features) -> None:
        self._features = features
        self.engine = features.engine

    async def run(
        self,
        tag: str,
        *,
        env: str,
        product_tag: str,
        input: dict[str, Any] | None = None,
        session: Any = None,
    ) -> FeatureRun:
        return await self.engine.start(tag, env=env, product_tag=product_tag, input=input, session=session)

    async def resume(self, feature_run_id: str) -> FeatureRun:
        return await self.engine.resume(check_key(feature_run_id, "feature_run_id"))

    async def retry(self, feature_run_id: str) -> FeatureRun:
        return await self.engine.retry(check_key(feature_run_id, "feature_run_id"))

    async def get(self, feature_run_id: str) -> FeatureRun:
        return await asyncio.to_thread(self._features.get, feature_run_id)

    async def runs(
        self,
        *,
        feature_tag: str | None = None,
        status: FeatureRunStatus | str | None = None,
        product_tag: str | None = None,
        env: str | None = None,
        limit: int = 100,
        offset: int = 0,
        after: str | None = None,
    ) -> builtins.list[FeatureRun]:
        return await asyncio.to_thread(
            self._features.runs,
            feature_tag=feature_tag,
            status=status,
            product_tag=product_tag,
            env=env,
            limit=limit,
            offset=offset,
            after=after,
        )
