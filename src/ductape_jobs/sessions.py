"""Sessions: signed tokens that carry a user's data to the jobs scheduled on their behalf.

A product declares session tags (name, schema, selector, expiry) and, per env, a signing secret.
``ductape.session.start(tag, data, env=..., product_tag=...)`` issues a JWT (HS256, via PyJWT), written as the
SDK writes it: ``"<tag>:<jwt>"``. ``schedule(session=...)`` verifies it; the verified claims, never the token,
are kept with the schedule and feed ``$Session{...}`` at each run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from ductape_jobs.clock import Clock
from ductape_jobs.errors import ExecutionError, ValidationError
from ductape_jobs.limits import MAX_SESSION_TOKEN, check_object
from ductape_jobs.logs import redact
from ductape_jobs.products import Products, expand

if TYPE_CHECKING:
    from ductape_jobs.inputs import Session
    from ductape_jobs.products.model import ProductSpec, SessionSpec


def jwt_loaded() -> bool:
    """Whether PyJWT is loaded: it loads with the first session started or verified in the process (about 80 ms
    here), so ``AsyncDuctape`` verifies a first session in a thread, not on its loop."""
    return "jwt" in sys.modules


_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
    "object": dict,
    "array": list,
}


class SessionToken(Struct, frozen=True):
    tag: str
    token: str
    expires_at: datetime
    subject: str | None

    def __str__(self) -> str:
        return f"{self.tag}:{self.token}"


class Sessions:
    """Reached as ``ductape.session``."""

    def __init__(self, products: Products, clock: Clock) -> None:
        self._products = products
        self._clock = clock

    def _spec(self, tag: str, product_tag: str, env: str) -> tuple[ProductSpec, SessionSpec, str]:
        if not self._products.configured:
            raise ValidationError(
                "session",
                f"sessions are declared by a product, and none is: add product {product_tag!r} with "
                f"sessions.{tag} and envs.{env}.session_secret",
            )
        product = self._products.check_env(product_tag, env)
        spec = product.sessions.get(tag)
        if spec is None:
            known = ", ".join(sorted(product.sessions)) or "none"
            shown = redact(tag)  # a token given as the tag (the two swapped) is not printed back whole
            raise ValidationError("session.tag", f"product {product_tag!r} has no session {shown!r} (it has: {known})")
        raw = product.envs[env].session_secret
        if not raw:
            raise ValidationError("session", f"env {env!r} of product {product_tag!r} has no session_secret")
        try:
            secret = str(expand(raw, f"products.{product_tag}.envs.{env}.session_secret"))
        except ExecutionError as exc:
            raise ValidationError("session", str(exc)) from None
        if len(secret.encode()) < 32:
            raise ValidationError("session", f"the session_secret of env {env!r} must be at least 32 bytes (HS256)")
        return product, spec, secret

    def start(self, tag: str, data: dict[str, Any], *, env: str, product_tag: str) -> SessionToken:
        """Issue a token for ``data`` (checked against the session's schema, and small enough that the token is at
        most ``MAX_SESSION_TOKEN`` characters, as ``verify`` and ``schedule()`` take it)."""
        _, spec, secret = self._spec(tag, product_tag, env)
        _check_schema(spec, data)
        now = self._clock.now()
        expires = now + timedelta(seconds=spec.expiry)
        subject = _select(spec.selector, data)
        claims = {
            "tag": tag,
            "product": product_tag,
            "env": env,
            "data": data,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        if subject is not None:
            claims["sub"] = str(subject)
        import jwt  # PyJWT loads with the first session, not with the package

        token = jwt.encode(claims, secret, algorithm="HS256")
        if len(token) > MAX_SESSION_TOKEN:  # every schedule() and verify() would refuse it
            raise ValidationError(
                "session.data",
                f"makes a token of {len(token):,} characters, more than the {MAX_SESSION_TOKEN:,} a session token may "
                "hold (the data as JSON, base64-encoded: about 12 KB of ASCII, less of other characters); keep less "
                "in the session",
            )
        return SessionToken(tag, token, expires, None if subject is None else str(subject))

    def verify(self, session: Session | str | dict[str, Any], *, env: str, product_tag: str) -> dict[str, Any]:
        """The verified session data, or ``ValidationError`` (field ``session``) for a tampered, expired,
        malformed or foreign token. The times ``exp`` (required), ``nbf`` and ``iat`` must be numbers of seconds
        since 1970, up to the end of year 9999 (a malformed one is named), and are judged by this client's clock."""
        from ductape_jobs.inputs import Session, parse  # pydantic: loaded with the first session verified

        parsed = parse(Session, session if not isinstance(session, str) else _from_string(session), prefix="session")
        _, _, secret = self._spec(parsed.tag, product_tag, env)
        import jwt

        try:
            claims = jwt.decode(
                parsed.token,
                secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["exp", "tag"]},
            )
        except jwt.InvalidSignatureError:
            raise ValidationError("session.token", "signature does not verify (tampered or signed elsewhere)") from None
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise ValidationError("session.token", f"is not a valid session token: {exc}") from None
        if claims.get("tag") != parsed.tag:
            raise ValidationError(
                "session.tag", f"the token belongs to session {claims.get('tag')!r}, not {parsed.tag!r}"
            )
        if claims.get("product") != product_tag or claims.get("env") != env:
            raise ValidationError(
                "session.token", f"the token was issued for {claims.get('product')}/{claims.get('env')}"
            )
        expires, not_before, _ = (_claim_time(claims, name) for name in ("exp", "nbf", "iat"))
        now = self._clock.now()
        if expires is None or expires <= now:
            raise ValidationError("session.token", f"expired at {expires.isoformat() if expires else '?'}")
        if not_before is not None and not_before > now:
            raise ValidationError("session.token", f"is not valid before {not_before.isoformat()} (claim 'nbf')")
        data = claims.get("data")
        return data if isinstance(data, dict) else {}


_LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime can hold


def _claim_time(claims: dict[str, Any], name: str) -> datetime | None:
    """The time claim ``name`` (``exp``, ``nbf``, ``iat``), ``None`` when absent; ``ValidationError`` naming it
    when it is not a finite number of seconds between 1970 and the end of year 9999."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _LAST_SECOND:  # NaN too
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValidationError(
            "session.token", f"claim {name!r} must be a time in seconds since 1970 (0 to {_LAST_SECOND}), not {shown}"
        )
    return datetime.fromtimestamp(value, UTC)


def _from_string(text: str) -> dict[str, str]:
    """``"tag:token"`` as ``{"tag", "token"}``; ``ValidationError`` (field ``session``) when it is not that."""
    tag, sep, token = text.partition(":")
    if not sep or not tag.strip() or not token.strip():
        raise ValidationError("session", "a session string must be 'tag:token'")
    return {"tag": tag, "token": token}


def _check_schema(spec: SessionSpec, data: dict[str, Any]) -> None:
    check_object(data, "session.data")  # an object within the input limits (limits.py)
    for key in spec.required:
        if key not in data:
            raise ValidationError(f"session.data.{key}", "is required by the session's schema")
    for key, type_name in spec.schema_.items():
        expected = _TYPES.get(type_name)
        if key in data and expected is not None:
            value = data[key]
            if not isinstance(value, expected) or (type_name in ("number", "integer") and isinstance(value, bool)):
                article = "an" if type_name[:1] in "aeiou" else "a"
                raise ValidationError(f"session.data.{key}", f"must be {article} {type_name}")


def _select(selector: str, data: dict[str, Any]) -> Any:
    """The session's identifier: ``$Session{id}`` or ``$Session{user}{id}`` read from ``data``."""
    from ductape_jobs.piping import Scope, resolve

    try:
        return resolve(selector, Scope(session=data))
    except ValueError:
        return None
