"""Conversions between feature run records and the column values both SQL backends store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ductape_jobs.store.codec import dumps, from_ms, loads, ms, storable, stored_json
from ductape_jobs.store.records import EventResult, EventStatus, FeatureRun, FeatureRunStatus

_EPOCH = datetime.fromtimestamp(0, UTC)


def feature_run_params(run: FeatureRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "product_tag": run.product_tag,
        "env": run.env,
        "feature_tag": run.feature_tag,
        "input": dumps(run.input),
        "session_claims": None if run.session is None else dumps(run.session),
        "status": run.status.value,
        "error": storable(run.error),
        "lease_owner": run.lease_owner,
        "lease_expires_at": ms(run.lease_expires_at),
        "created_at": ms(run.created_at),
        "updated_at": ms(run.updated_at),
    }


def feature_event_params(run_id: str, event: EventResult) -> dict[str, Any]:
    return {
        "feature_run_id": run_id,
        "sequence_tag": event.sequence_tag,
        "event_tag": event.event_tag,
        "event_type": event.event_type,
        "position": event.position,
        "status": event.status.value,
    }


def event_from_row(r: Any) -> EventResult:
    output = r["output"]
    return EventResult(
        sequence_tag=r["sequence_tag"],
        event_tag=r["event_tag"],
        event_type=r["event_type"],
        position=r["position"],
        status=EventStatus(r["status"]),
        attempts=r["attempts"],
        output=None if output is None else loads(output),
        job_id=r["job_id"],
        error=r["error"],
        started_at=from_ms(r["started_at"]),
        completed_at=from_ms(r["completed_at"]),
    )


def feature_run_from_row(r: Any, events: list[EventResult] | None = None) -> FeatureRun:
    claims = r["session_claims"]
    return FeatureRun(
        id=r["id"],
        product_tag=r["product_tag"],
        env=r["env"],
        feature_tag=r["feature_tag"],
        input=loads(r["input"]),
        status=FeatureRunStatus(r["status"]),
        created_at=from_ms(r["created_at"]) or _EPOCH,
        updated_at=from_ms(r["updated_at"]) or _EPOCH,
        session=None if claims is None else loads(claims),
        error=r["error"],
        completed_at=from_ms(r["completed_at"]),
        lease_owner=r["lease_owner"],
        lease_expires_at=from_ms(r["lease_expires_at"]),
        events=events or [],
    )


def event_finish_params(
    run_id: str,
    owner: str,
    sequence_tag: str,
    event_tag: str,
    status: EventStatus,
    now: datetime,
    output: Any,
    job_id: str | None,
    error: str | None,
) -> dict[str, Any]:
    if status not in (EventStatus.COMPLETED, EventStatus.FAILED, EventStatus.RETRYING):
        raise ValueError(f"an attempt ends completed, failed or retrying, not {status}")
    return {
        "run_id": run_id,
        "owner": owner,
        "sequence_tag": sequence_tag,
        "event_tag": event_tag,
        "status": status.value,
        "output": None if output is None else stored_json(output),
        "job_id": job_id,
        "error": storable(error),
        "completed_at": None if status is EventStatus.RETRYING else ms(now),
        "now": ms(now),
    }
