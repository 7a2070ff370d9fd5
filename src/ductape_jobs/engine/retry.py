"""Exponential backoff between a failed attempt and the next (``ductape_jobs.timing.backoff``, kept here for
the import path ``ductape_jobs.engine.retry.Backoff``)."""

from __future__ import annotations

from ductape_jobs.timing.backoff import Backoff

__all__ = ["Backoff"]
