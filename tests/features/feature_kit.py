"""Helpers of the feature tests (``from feature_kit import ...``; tests/features is on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ductape_jobs import Ductape, FakeClock

SESSION_SECRET = "session-secret-for-tests-0123456789abcdef"


def shop(features: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Product ``shop`` with env ``dev`` (session secret set), a ``user-session`` and ``features``; ``extra``
    adds or merges other product sections (``functions={...}``, ``envs={...}``)."""
    spec: dict[str, Any] = {
        "tag": "shop",
        "envs": {"dev": {"session_secret": SESSION_SECRET}},
        "sessions": {"user-session": {"name": "User", "schema": {"user": "object"}, "selector": "$Session{user}{id}"}},
        "features": features,
    }
    for key, value in extra.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return spec


@dataclass
class App:
    dt: Ductape
    clock: FakeClock
    waits: list[float] = field(default_factory=list)  # what retries would have slept

    def run(self, tag: str, **input: Any) -> Any:
        return self.dt.feature.run(tag, env="dev", product_tag="shop", input=input)


def seq(tag: str, *events: dict[str, Any], parents: list[str] | None = None) -> dict[str, Any]:
    return {"sequence_tag": tag, "parents": parents or [], "events": list(events)}


def fn(tag: str, input: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "FUNCTION", "event": tag, "input": input or {}, "retries": 0, "allow_fail": False, **extra}
