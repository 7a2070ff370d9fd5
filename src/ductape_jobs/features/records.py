"""The feature-run records, kept for compatibility: they live in ``ductape_jobs.store.records`` (below the
store, which speaks in them) and are re-exported here."""

from __future__ import annotations

from ductape_jobs.store.records import EventResult, EventStatus, FeatureRun, FeatureRunStatus

__all__ = ["EventResult", "EventStatus", "FeatureRun", "FeatureRunStatus"]
