"""ACTION events: an HTTP request of one of the product's apps (httpx)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ductape_jobs.executors.base import RunContext
from ductape_jobs.executors.http import HttpAuth, HttpRequestSpec, build_request, perform
from ductape_jobs.executors.lookup import definition, locate, owner_env, path_of, url_of
from ductape_jobs.models import JobEventTypes, Run
from ductape_jobs.products import Products
from ductape_jobs.targets import TargetPolicy


class ActionExecutor:
    event_type = JobEventTypes.ACTION

    def __init__(self, products: Products, policy: Callable[[], TargetPolicy] = TargetPolicy) -> None:
        self.products = products
        self.policy = policy  # where a base_url whose host the caller chose may go (``lookup.Target``)
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def execute(self, run: Run, ctx: RunContext) -> Any:
        product, ref = locate(self.products, run, ctx)
        assert ref.owner is not None
        app = product.apps[ref.owner]
        where = f"products.{product.tag}.apps.{ref.owner}"
        settings, at_env = owner_env(app.envs, run, "app", ref.owner), f"{where}.envs.{run.env}"
        env = definition(settings.model_dump(exclude={"base_url"}), ctx, at_env)
        named, at = app.actions[ref.name], f"{where}.actions.{ref.name}"
        action = definition(named.model_dump(exclude={"path"}), ctx, at)  # the path: each value one segment
        base = url_of(settings.base_url, ctx, f"{at_env}.base_url")  # a piped value: one segment or labels
        if "://" in base.url:
            path, chosen = path_of(named.path, ctx, f"{at}.path"), base.chosen
        else:  # no host in base_url: the path is the whole URL, its host the caller's where a placeholder is there
            path, chosen = url_of(named.path, ctx, f"{at}.path")
        spec = HttpRequestSpec(
            method=action["method"],
            base_url=base.url,
            path=path,
            headers={**env["headers"], **action["headers"]},
            query=action["query"],
            body=action["body"],
            auth=HttpAuth(**env["auth"]) if env.get("auth") else None,
            timeout=action["timeout"],
        )
        request = build_request(spec, ctx.input)
        secrets = self.products.secrets.of(product.tag)
        guard = self.policy() if chosen else None  # base_url "" and a path http://$Input{h}/x: the caller's host
        return await perform(self.client(), request, spec.timeout, secrets=secrets, guard=guard)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
