"""A feature on the PostgreSQL store: piping, a retried event, an allowed failure, and a resume after another
driver's lease expired (the store suite checks each method; this drives them together)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from feature_kit import fn, seq, shop

from ductape_jobs import Backoff, Ductape, FakeClock
from ductape_jobs.features import EventResult, FeatureRun, FeatureRunStatus
from ductape_jobs.products import Products
from support import require_service

PG_URL = os.environ.get("DUCTAPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_feature_runs_and_resumes_on_postgres(pg_url: str) -> None:
    features = {
        "f": {
            "sequence": [
                seq("a", fn("flaky", {"n": "$Input{n}"}, retries=2), fn("broken", allow_fail=True)),
                seq("b", fn("double", {"v": "$Sequence{a}{flaky}{v}"}), parents=["a"]),
            ]
        }
    }
    clock = FakeClock()
    with Ductape(pg_url, clock=clock, products=Products([shop(features)]), backoff=Backoff(jitter=0.0)) as dt:  # type: ignore[list-item]
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        dt.feature.sleep = sleep
        calls: list[str] = []

        @dt.function("flaky")
        def flaky(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            calls.append("flaky")
            if len(calls) == 1:
                raise ConnectionError("reset")
            return {"v": input["n"]}

        dt.function("broken")(lambda input, ctx: 1 / 0)
        dt.function("double")(lambda input, ctx: input["v"] * 2)
        run = dt.feature.run("f", env="dev", product_tag="shop", input={"n": 21})
        assert run.status is FeatureRunStatus.COMPLETED and waits == [1.0]
        assert run.output == {"a": {"flaky": {"v": 21}}, "b": {"double": 42}}
        assert run.event("a", "broken").status.value == "failed"

        now = clock.now()
        dt.store.create_feature_run(  # left running by a driver that died
            FeatureRun(
                "feat_left", "shop", "dev", "f", {"n": 1}, FeatureRunStatus.RUNNING, now, now,
                lease_owner="dead:1:x", lease_expires_at=now + timedelta(seconds=30),
                events=[EventResult("a", "flaky", "function", 0), EventResult("a", "broken", "function", 1),
                        EventResult("b", "double", "function", 2)],
            )
        )  # fmt: skip
        clock.advance(seconds=31)
        resumed = dt.feature.resume("feat_left")
        assert resumed.status is FeatureRunStatus.COMPLETED and resumed.output["b"] == {"double": 2}
        assert [r.id for r in dt.feature.runs()] == ["feat_left", run.id]
