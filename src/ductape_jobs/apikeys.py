"""API keys of the HTTP API (``ductape apikey create|list|revoke``).

A key reads ``dtk_<12 hex>_<43 random characters>``. Its first 16 characters, the *prefix*, are stored in clear
to find it and to name it in listings; the whole key is stored only as ``sha256$<salt>$<HMAC-SHA256(salt, key)>``
with a random salt per key, and compared in constant time. The key itself is shown once, when created.
A key may be limited to one product (and env): it then sees and changes only that product's schedules and runs.
Its *scope* says what it may do (``KeyScope``: read < write < admin, each including the ones below); a key made
without one is ``admin``, as every key was before scopes existed. Revoking a key also ends its dashboard logins.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from msgspec import Struct

from ductape_jobs.clock import Clock, to_ms
from ductape_jobs.errors import ConflictError, ValidationError
from ductape_jobs.ids import new_id
from ductape_jobs.limits import check_printable
from ductape_jobs.models import ApiKey, KeyScope, check_key
from ductape_jobs.store.base import Store

KEY_START = "dtk_"
PREFIX_LENGTH = len(KEY_START) + 12
_TOUCH_EVERY = 60.0  # seconds between two writes of a key's last_used_at (not one per request)


def new_key() -> tuple[str, str]:
    """A fresh key and its prefix."""
    prefix = KEY_START + secrets.token_hex(6)
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def hash_key(key: str, salt: str | None = None) -> str:
    """``sha256$<salt>$<hex digest>`` of ``key``, with a new random salt unless one is given."""
    salt = salt or secrets.token_hex(16)
    digest = hmac.new(salt.encode(), key.encode(), hashlib.sha256).hexdigest()
    return f"sha256${salt}${digest}"


def key_matches(key: str, stored: str) -> bool:
    """Whether ``key`` hashes to ``stored`` (constant-time comparison)."""
    scheme, _, rest = stored.partition("$")
    salt, _, _digest = rest.partition("$")
    if scheme != "sha256" or not salt:
        return False
    return hmac.compare_digest(hash_key(key, salt).encode(), stored.encode())


class CreatedKey(Struct, frozen=True):
    """A new key's record and the key itself (shown once: only its hash is kept)."""

    record: ApiKey
    key: str


class ApiKeys:
    """Create, list, revoke and check API keys on a store."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(
        self,
        name: str,
        *,
        product_tag: str | None = None,
        env: str | None = None,
        scope: KeyScope | str = KeyScope.ADMIN,
    ) -> CreatedKey:
        for field, value in (("name", name), ("product_tag", product_tag), ("env", env)):
            if value is not None and not isinstance(value, str):
                raise ValidationError(field, f"must be text, not {type(value).__name__}")
        name = (name or "").strip()
        try:
            granted = KeyScope(scope)
        except ValueError:
            raise ValidationError("scope", f"must be one of {', '.join(KeyScope)}, not {scope!r}") from None
        if not 1 <= len(name) <= 100:
            raise ValidationError("name", "must be 1 to 100 characters")
        check_printable(name, "name")
        for field, value in (("product_tag", product_tag), ("env", env)):
            if value is not None and not value.strip():
                raise ValidationError(field, "must not be empty (leave it out for every one)")
            if value is not None:
                check_printable(value.strip(), field)
        for _ in range(5):  # a prefix collision (48 random bits) is all but impossible; try again if it happens
            key, prefix = new_key()
            record = ApiKey(
                id=new_id("key"),
                name=name,
                prefix=prefix,
                hash=hash_key(key),
                created_at=to_ms(self._clock.now()),
                product_tag=product_tag.strip() if product_tag else None,
                env=env.strip() if env else None,
                scope=granted,
            )
            try:
                self._store.add_api_key(record)
            except ConflictError:
                continue
            return CreatedKey(record, key)
        raise ConflictError("could not draw an unused key prefix")

    def find(self, prefix: str) -> ApiKey | None:
        """The key record with this visible prefix (revoked ones too)."""
        return self._store.find_api_key(prefix)

    def list(self) -> list[ApiKey]:
        return self._store.list_api_keys()

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key: it answers 401 from now on, and its dashboard logins end."""
        record = self._store.revoke_api_key(check_key(key_id, "key_id"), self._clock.now())
        self._store.delete_login_sessions(key_id)
        return record

    def verify(self, key: str) -> ApiKey | None:
        """The record of a valid, unrevoked ``key``; ``None`` for anything else."""
        key = key.strip()
        if not key.startswith(KEY_START) or len(key) <= PREFIX_LENGTH + 1 or key[PREFIX_LENGTH] != "_":
            return None
        record = self._store.find_api_key(key[:PREFIX_LENGTH])
        if record is None or record.revoked_at is not None or not key_matches(key, record.hash):
            return None
        self.touch(record)
        return record

    def touch(self, record: ApiKey) -> None:
        """Record that the key was used now (at most one write a minute per key)."""
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(record.id)
            if last is not None and now - last < _TOUCH_EVERY:
                return
            self._touched[record.id] = now
        self._store.touch_api_key(record.id, self._clock.now())
