"""``/api/v1/sessions``: issue a session token (``ductape.session.start``) and verify one (``session.verify``).

A session token is a credential: ``POST /sessions`` answers it once (``Cache-Control: no-store``), as the SDK
writes it (``"tag:jwt"``, what a schedule's or a feature run's ``session`` takes), and nothing keeps or logs it.
Verifying one is a ``POST`` so that the token travels in the body, never in a URL that access logs keep. A key
limited to a product (and env) issues and verifies that product's sessions only (403 otherwise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ductape_jobs.api.auth import READ, WRITE, Me
from ductape_jobs.api.common import body_doc, call, client, json_object, responses
from ductape_jobs.inputs import parse

router = APIRouter(tags=["sessions"])

_OBJECT = WithJsonSchema({"type": "object"})  # any JSON object: Sessions.start checks it against the schema
_TOKEN = WithJsonSchema(  # checked by Sessions.verify, which names session, session.tag or session.token
    {
        "anyOf": [
            {"type": "string"},
            {"type": "object", "properties": {"tag": {"type": "string"}, "token": {"type": "string"}}},
        ]
    }
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    env: str = Field(min_length=1, max_length=256)
    product_tag: str = Field(min_length=1, max_length=256)


class SessionStartRequest(_Body):
    """What ``POST /sessions`` takes (``ductape.session.start``'s arguments)."""

    tag: str = Field(min_length=1, max_length=256, description="a session the product declares")
    data: Annotated[Any, _OBJECT] = Field(description="the session's data (the session's schema applies)")


class SessionVerifyRequest(_Body):
    """What ``POST /sessions/verify`` takes (``ductape.session.verify``'s arguments)."""

    session: Annotated[Any, _TOKEN] = Field(
        description="the token: 'tag:jwt' (as POST /sessions answers it) or {tag, token}"
    )


class SessionOut(BaseModel):
    """A session token, answered once: keep it as a credential."""

    session: str = Field(description="'tag:jwt': pass it as a schedule's or a feature run's session")
    tag: str
    expires_at: datetime
    subject: str | None = Field(description="what the session's selector picks from its data (null: nothing)")


class SessionDataOut(BaseModel):
    """A verified token's session data (what ``$Session{...}`` reads)."""

    data: dict[str, Any]


@router.post(
    "/sessions",
    status_code=201,
    openapi_extra=body_doc(SessionStartRequest),
    responses=responses(403),
    dependencies=[WRITE],
)
async def start_session(request: Request, response: Response, me: Me) -> SessionOut:
    """Issue a signed session token for ``data`` (``session.start``): the product must declare the session
    ``tag`` and give ``env`` a ``session_secret``. The answer holds the token, once."""
    body = await json_object(request)
    me.check_may_schedule(body, action="start sessions")
    req = parse(SessionStartRequest, body)
    token = await call(client(request).session.start, req.tag, req.data, env=req.env, product_tag=req.product_tag)
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(session=str(token), tag=token.tag, expires_at=token.expires_at, subject=token.subject)


@router.post(
    "/sessions/verify",
    openapi_extra=body_doc(SessionVerifyRequest),
    responses=responses(403),
    dependencies=[READ],
)
async def verify_session(request: Request, me: Me) -> SessionDataOut:
    """Verify a session token (``session.verify``) and answer its data; a tampered, expired, foreign-tag or
    other-env token answers 422 (field ``session...``). Stores nothing."""
    body = await json_object(request)
    me.check_may_schedule(body, action="verify sessions")
    req = parse(SessionVerifyRequest, body)
    data = await call(client(request).session.verify, req.session, env=req.env, product_tag=req.product_tag)
    return SessionDataOut(data=data)
