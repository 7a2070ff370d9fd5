"""``/api/v1/me``: who the caller is (the dashboard asks, to show the key and hide what it may not do)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from ductape_jobs.answers import ApiKeyOut
from ductape_jobs.api.auth import READ, Me
from ductape_jobs.api.common import responses

router = APIRouter(tags=["keys"])


class MeOut(ApiKeyOut):
    """The calling API key as listed (never the key or its hash): its name, scope, limits and times, and how it
    came (a header, or the dashboard's login session)."""

    via: str = Field(description="'key' (a header) or 'session' (the dashboard's login cookie)")
    session_expires_at: datetime | None = Field(default=None, description="when the login session ends")


@router.get("/me", responses=responses(), dependencies=[READ])
async def me(me: Me) -> MeOut:
    """The API key this request is authenticated as: name, scope and product/env limits."""
    return MeOut(
        **ApiKeyOut.of(me.key).model_dump(),
        via="session" if me.session else "key",
        session_expires_at=me.session.expires_at if me.session else None,
    )
