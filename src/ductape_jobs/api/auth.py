"""API keys on every ``/api/v1`` route, and what a key limited to one product (and env) may see and do.

The key comes as ``Authorization: Bearer <key>``, ``X-API-Key: <key>``, or the dashboard's login cookie. No key
or a bad (unknown, wrong, revoked) one: 401. A limited key sees only its product's schedules, runs, stats,
events and webhooks (another product's record answers 404, as if it did not exist, so nothing leaks), may
schedule only for its product (403 otherwise), and cannot change job definitions, which all products share (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.errors import NotFoundError
from ductape_jobs.models import ApiKey

COOKIE = "ductape_key"  # set by the dashboard's /login (api/dashboard.py)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: the API key's record (never the key itself)."""

    key: ApiKey

    @property
    def product_tag(self) -> str | None:
        return self.key.product_tag

    @property
    def env(self) -> str | None:
        return self.key.env

    @property
    def limited(self) -> bool:
        return self.key.product_tag is not None or self.key.env is not None

    def scope(self) -> dict[str, str | None]:
        """The ``product_tag``/``env`` filters every list and statistic of this key adds."""
        return {"product_tag": self.key.product_tag, "env": self.key.env}

    def sees(self, product_tag: str, env: str) -> bool:
        return (self.key.product_tag is None or self.key.product_tag == product_tag) and (
            self.key.env is None or self.key.env == env
        )

    def check_visible(self, product_tag: str, env: str, kind: str, key: str) -> None:
        """``NotFoundError`` (404) for a record of a product or env this key does not see."""
        if not self.sees(product_tag, env):
            raise NotFoundError(kind, key)

    def check_may_schedule(self, request: dict[str, Any]) -> None:
        """403 when a limited key asks for another product or env (the rest is validated by the client)."""
        for field, allowed in (("product_tag", self.key.product_tag), ("env", self.key.env)):
            given = request.get(field)
            if allowed is not None and isinstance(given, str) and given.strip() != allowed:
                raise HTTPException(403, f"this API key may only schedule for {field} {allowed!r}")

    def check_unlimited(self, what: str) -> None:
        if self.limited:
            raise HTTPException(403, f"{what} needs an API key that is not limited to a product or env")


def presented_key(request: Request) -> str | None:
    """The key the request carries, if any: bearer token, ``X-API-Key`` header or the dashboard's cookie."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    header = (request.headers.get("x-api-key") or "").strip()
    if header:
        return header
    return (request.cookies.get(COOKIE) or "").strip() or None


async def authenticate(request: Request) -> Principal:
    """The dependency of every ``/api/v1`` route."""
    key = presented_key(request)
    if key is None:
        raise HTTPException(401, "an API key is required (Authorization: Bearer <key>, or X-API-Key)", _CHALLENGE)
    keys: ApiKeys = request.app.state.api_keys
    record = await run_in_threadpool(keys.verify, key)
    if record is None:
        raise HTTPException(401, "the API key is not valid (unknown or revoked)", _CHALLENGE)
    return Principal(record)


Me = Annotated[Principal, Depends(authenticate)]
