"""A URL whose host the caller chooses (a template that is one ``$Input{...}``, or whose host is only such values) is
sent only where the network guard allows, as a webhook's is (``targets.TargetPolicy``: no loopback, private,
link-local or metadata address unless the allowlist holds it), at the address checked; the owner's own hosts are
the owner's. A security probe: ``$Input{callback_url}`` and ``base_url: $Input{base}`` reached a loopback server, which
got the callback's signature, and its answer was kept as the run's output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import Ductape
from ductape_jobs.clock import FakeClock
from ductape_jobs.models import RunPhase
from support import Recorder


@pytest.fixture
def dt(tmp_path: Path, http: Recorder) -> Iterator[Ductape]:
    client = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=FakeClock())
    port = http.url.rsplit(":", 1)[1]
    client.products.add(
        {"tag": "p", "envs": {"dev": {"callback_secret": "cb-secret-123456"}},
         "apps": {"given": {"envs": {"dev": {"base_url": "$Input{base}"}},
                            "actions": {"get": {"method": "GET", "path": "/meta"}}},
                  "host": {"envs": {"dev": {"base_url": f"http://$Input{{host}}:{port}/v1"}},
                           "actions": {"get": {"method": "GET", "path": "/meta"}}},
                  "owned": {"envs": {"dev": {"base_url": f"{http.url}/v2"}},
                            "actions": {"get": {"method": "GET", "path": "/meta"}}}},
         "notifications": {"hook": {"callback": {"url": "$Input{callback_url}", "body": {"x": 1}}}}}
    )  # fmt: skip
    for tag, kind, event in (("given", "ACTION", "given:get"), ("host", "ACTION", "host:get"),
                             ("owned", "ACTION", "owned:get"), ("hook", "NOTIFICATION", "hook")):  # fmt: skip
        client.job.create({"name": tag, "tag": tag, "event_type": kind, "event_tag": event, "product_tag": "p"})
    yield client
    client.close()


def run(dt: Ductape, job: str, input: dict[str, Any]) -> Any:
    job_id = dt.job.schedule({"env": "dev", "product_tag": "p", "event": job, "input": input}).job_id
    dt.drain()
    (found,) = dt.job.runs(job_id=job_id)
    return dt.job.run(found.id)


def test_a_host_the_caller_chooses_is_refused_where_the_guard_refuses_it(dt: Ductape, http: Recorder) -> None:
    refused = [
        ("given", {"base": http.url}),
        ("host", {"host": "127.0.0.1"}),
        ("host", {"host": "localhost"}),
        ("hook", {"callback_url": f"{http.url}/latest/meta-data/"}),
        ("hook", {"callback_url": "http://169.254.169.254/latest/meta-data/"}),
        ("hook", {"callback_url": "http://[::ffff:127.0.0.1]:9/x"}),
    ]
    for job, input in refused:
        failed = run(dt, job, input)
        assert failed.phase is RunPhase.FAILED and failed.retry_count == 0, (job, input, failed.error)
        assert "not sent" in failed.error and "a host the caller chooses must be a public address" in failed.error
    assert http.seen == []  # nothing reached the server: not the request, not the callback's signature
    # the owner's own host (a base_url written whole, loopback or not) is the owner's
    assert run(dt, "owned", {}).phase is RunPhase.COMPLETED
    assert [s.target for s in http.seen] == ["/v2/meta"]


def test_an_allowed_network_is_reached_at_the_address_checked_with_the_host_s_name(dt: Ductape, http: Recorder) -> None:
    dt.webhooks.allow = "127.0.0.0/8"  # the webhooks' allowlist: one network guard
    port = http.url.rsplit(":", 1)[1]
    assert run(dt, "given", {"base": f"http://localhost:{port}/x"}).phase is RunPhase.COMPLETED
    assert (http.last.target, http.last.headers["host"]) == ("/x/meta", f"localhost:{port}")
    assert run(dt, "host", {"host": "127.0.0.1"}).phase is RunPhase.COMPLETED
    assert http.last.target == "/v1/meta"
    done = run(dt, "hook", {"callback_url": f"{http.url}/cb?a=1"})
    assert done.phase is RunPhase.COMPLETED and http.last.target == "/cb?a=1"
    assert http.last.headers["x-ductape-signature"].startswith("sha256=")
