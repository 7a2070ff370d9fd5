"""A feature on the PostgreSQL store: piping, a retried event, an allowed failure, and a resume after another
driver's lease expired (the store suite checks each method; this drives them together)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from feature_kit import fn, seq, shop

from ductape_jobs import Backoff, Ductape, FakeClock
from ductape_jobs.features import EventResult, FeatureRun, FeatureRunStatus
from ductape_jobs.products import Products
from support import postgres_schema


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


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
