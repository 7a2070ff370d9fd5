"""FUNCTION events that product files map to by ``module:function`` (``feature_steps:first``): the CLI test and
the crash test's child process import them. Each call appends ``<name> <pid>`` to ``$FEATURE_STEPS_LOG``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def _log(name: str) -> None:
    path = os.environ.get("FEATURE_STEPS_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{name} {os.getpid()}\n")


def first(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _log("first")
    return {"token": f"tok-{input['name']}"}


def second(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """With ``$FEATURE_STEPS_HANG`` set: write that file and hang (the test kills the process here)."""
    _log("second")
    hang = os.environ.get("FEATURE_STEPS_HANG")
    if hang:
        Path(hang).write_text("inside second", encoding="utf-8")
        time.sleep(110)
    return {"ok": True}


def third(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _log("third")
    return {"got": input}


def upper(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"text": str(input.get("text", "")).upper()}


def refuse(input: dict[str, Any], ctx: Any) -> None:
    raise RuntimeError("refused on purpose")


def logged(pid: int | None = None) -> list[str]:
    """The names logged so far (by ``pid`` only, if given)."""
    path = os.environ.get("FEATURE_STEPS_LOG")
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as log:
        lines = [line.split() for line in log if line.strip()]
    return [name for name, who in lines if pid is None or int(who) == pid]
