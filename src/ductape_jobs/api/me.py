"""``/api/v1/me``: who the caller is (the dashboard asks, to show the key and hide what it may not do)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ductape_jobs.api.auth import READ, Me
from ductape_jobs.api.common import responses

router = APIRouter(tags=["keys"])


class MeOut(BaseModel):
    """The calling API key (never the key or its hash): its name, scope and limits, and the login session."""

    id: str
    name: str
    prefix: str
    scope: str = Field(description="read, write or admin; each includes the ones before it")
    scopes: list[str] = Field(description="every scope the key has, e.g. ['read', 'write'] for a write key")
    product_tag: str | None = Field(description="the only product the key sees (null: every one)")
    env: str | None = Field(description="the only env the key sees (null: every one)")
    via: str = Field(description="'key' (a header) or 'session' (the dashboard's login cookie)")
    session_expires_at: datetime | None = Field(default=None, description="when the login session ends")


@router.get("/me", responses=responses(), dependencies=[READ])
async def me(me: Me) -> MeOut:
    """The API key this request is authenticated as: name, scope and product/env limits."""
    k = me.key
    return MeOut(
        id=k.id,
        name=k.name,
        prefix=k.prefix,
        scope=k.scope.value,
        scopes=[s.value for s in k.scope.granted],
        product_tag=k.product_tag,
        env=k.env,
        via="session" if me.session else "key",
        session_expires_at=me.session.expires_at if me.session else None,
    )
