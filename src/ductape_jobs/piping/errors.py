"""The two ways piping fails: the text is malformed, or a referenced value is not there."""

from __future__ import annotations

from ductape_jobs.errors import Location, PipingError, PipingMissingError, PipingSyntaxError, field_path


def located(root: str, at: Location) -> str:
    """A field path in the one format errors use: ``input.user.email``, ``input.items[0]``."""
    return field_path(root, *at)


__all__ = ["Location", "PipingError", "PipingMissingError", "PipingSyntaxError", "located"]
