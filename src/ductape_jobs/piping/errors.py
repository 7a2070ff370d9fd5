"""The ways piping fails: the text is malformed, a referenced value is not there, or what it fills in is past the
bound on an input."""

from __future__ import annotations

from ductape_jobs.errors import (
    Location,
    PipingError,
    PipingMissingError,
    PipingSyntaxError,
    PipingTooLarge,
    field_path,
)


def located(root: str, at: Location) -> str:
    """A field path in the one format errors use: ``input.user.email``, ``input.items[0]``."""
    return field_path(root, *at)


__all__ = ["Location", "PipingError", "PipingMissingError", "PipingSyntaxError", "PipingTooLarge", "located"]
