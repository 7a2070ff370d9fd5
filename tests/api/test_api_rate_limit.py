"""A server's requests per API key (``create_app(rate_limit=...)``, ``ductape serve --rate-limit``): past the rate a
request is answered 429 with Retry-After and does nothing; another key, and the public probes, are not held back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from apikit import SHOP, Api, served
from typer.testing import CliRunner

from ductape_jobs import Ductape, ValidationError
from ductape_jobs.api import create_app
from ductape_jobs.cli.main import app as cli_app
from ductape_jobs.resources import Rate


@pytest.fixture
def limited(dt: Ductape) -> Iterator[Api]:
    """The API with at most 3 requests of a key in any 10 s (the test's requests take far less)."""
    dt.function("report")(lambda input, ctx: None)
    with served(dt, rate_limit="3/10s") as made:
        yield made


def test_a_key_past_the_rate_is_answered_429_with_retry_after_and_nothing_is_done(limited: Api) -> None:
    c = limited.client()
    job = {"name": "R", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}
    assert c.post("/jobs", json=job).status_code == 201
    assert [c.get("/jobs").status_code for _ in range(2)] == [200, 200]  # 3 of 3
    refused = c.post("/schedule", json=SHOP)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert "this API key made more than 3/10s requests" in refused.json()["detail"]
    assert limited.dt.job.list() == []  # the refused schedule was not made

    other = limited.client(limited.key("other", scope="write"))  # another key counts its own
    assert other.post("/schedule", json=SHOP).status_code == 201
    raw = limited.raw()
    assert [raw.get("/healthz").status_code for _ in range(5)] == [200] * 5  # no key: not counted
    bad = httpx.get(limited.url + "/api/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401  # refused before it is counted


def test_a_dashboard_login_and_its_session_count_as_its_key(limited: Api) -> None:
    """A login checks the key and makes a session (a write): past the key's rate it makes none."""
    key = limited.key("ops", scope="read")
    raw = limited.raw()
    made = raw.post("/login", data={"key": key}, follow_redirects=False)
    assert made.status_code == 303  # 1 of 3
    session = httpx.Client(base_url=limited.url + "/api/v1", cookies=made.cookies, timeout=10)
    limited.clients.append(session)
    assert session.get("/jobs").status_code == 200  # 2 of 3: the session's request counts as its key's
    assert limited.client(key).get("/jobs").status_code == 200  # 3 of 3
    refused = raw.post("/login", data={"key": key}, follow_redirects=False)
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert session.get("/jobs").status_code == 429
    with sqlite3.connect(limited.dt.store.path) as db:  # type: ignore[attr-defined]
        assert db.execute("SELECT count(*) FROM login_sessions").fetchone() == (1,)  # none made past the rate


@pytest.mark.parametrize(
    ("rate", "rule"),
    [
        ("5/100ms", "its window must be whole seconds"),
        ("lots", "is not a rate"),
        ("0/s", "must allow between 1 and"),
    ],
)
def test_a_bad_rate_is_refused_naming_rate_limit(dt: Ductape, rate: str, rule: str) -> None:
    with pytest.raises(ValidationError, match="must allow between 1 and"):
        create_app(dt, rate_limit=Rate(0, timedelta(seconds=1)))  # a Rate given whole is checked as a text is
    with pytest.raises(ValidationError) as refused:
        create_app(dt, rate_limit=rate)
    assert refused.value.field == "rate_limit" and rule in refused.value.rule
    served = CliRunner().invoke(
        cli_app, ["serve", "--rate-limit", rate, "--store", "sqlite:///:memory:"], env={"DUCTAPE_APP": None}
    )
    assert served.exit_code == 2 and served.stderr.startswith("error: rate_limit: "), served.stderr
