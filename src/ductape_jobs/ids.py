"""Identifiers that sort by creation time (a millisecond prefix and 64 random bits), so indexes stay local."""

from __future__ import annotations

import os
import time


def new_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns() // 1_000_000:011x}{os.urandom(8).hex()}"
