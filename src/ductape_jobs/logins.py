"""The dashboard's logins: an API key exchanged for an opaque, expiring, server-side session.

Logging in with a valid key draws a random token (``dts_<43 characters>``, 256 bits) that the browser keeps in
its cookie; the store keeps only the token's SHA-256 (a random token needs no salt), the key it acts for and
when it expires (``DEFAULT_LIFETIME``, 12 hours after the login; it is not extended by use). A session acts
with its key's scope and product/env limits, and ends at its expiry, at its logout (the row is deleted), or
when its key is revoked (every lookup checks the key, and revoking deletes the key's sessions).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta

from msgspec import Struct

from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.clock import Clock
from ductape_jobs.errors import ValidationError
from ductape_jobs.models import ApiKey, LoginSession
from ductape_jobs.store.base import Store

TOKEN_START = "dts_"
DEFAULT_LIFETIME = timedelta(hours=12)
MAX_LIFETIME = timedelta(days=30)


def token_hash(token: str) -> str:
    """What the store keeps of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class Login(Struct, frozen=True):
    """A new session and its token (the cookie's value; only its hash is stored)."""

    session: LoginSession
    token: str
    key: ApiKey


class Logins:
    """Start, look up and end dashboard sessions on a store, checking keys with ``keys``."""

    def __init__(self, store: Store, clock: Clock, keys: ApiKeys, lifetime: timedelta = DEFAULT_LIFETIME) -> None:
        if not timedelta(minutes=1) <= lifetime <= MAX_LIFETIME:
            raise ValidationError("session_lifetime", "must be between 1 minute and 30 days")
        self._store = store
        self._clock = clock
        self._keys = keys
        self.lifetime = lifetime

    def start(self, key: str, admit: Callable[[ApiKey], None] | None = None) -> Login | None:
        """A session for a valid, unrevoked API ``key``; ``None`` for anything else. ``admit(record)``, once the key
        is known valid and before the session is written, may refuse it by raising (a server's rate limit)."""
        record = self._keys.verify(key)
        if record is None:
            return None
        if admit is not None:
            admit(record)
        token = TOKEN_START + secrets.token_urlsafe(32)
        now = self._clock.now()
        session = LoginSession(token_hash(token), record.id, now, now + self.lifetime)
        self._store.add_login_session(session)
        return Login(session, token, record)

    def find(self, token: str | None) -> tuple[LoginSession, ApiKey] | None:
        """The live session of ``token`` and its key; ``None`` when it is unknown, ended, expired, or its key
        was revoked."""
        token = (token or "").strip()
        if not token.startswith(TOKEN_START) or len(token) > 200:
            return None
        found = self._store.find_login_session(token_hash(token))
        if found is None:
            return None
        session, key = found
        if key.revoked_at is not None or session.expires_at <= self._clock.now():
            return None
        self._keys.touch(key)  # the key's last use, as for a header
        return session, key

    def still_live(self, session: LoginSession) -> bool:
        """Whether ``session`` (found earlier) has not ended, expired, or lost its key since."""
        found = self._store.find_login_session(session.token_hash)
        if found is None:
            return False
        current, key = found
        return key.revoked_at is None and current.expires_at > self._clock.now()

    def end(self, token: str | None) -> None:
        """Log out: the session is deleted (nothing happens for an unknown token)."""
        token = (token or "").strip()
        if token.startswith(TOKEN_START) and len(token) <= 200:
            self._store.delete_login_session(token_hash(token))
