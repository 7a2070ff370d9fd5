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
                            "actions": {"get": {"method": "GET", "path": "/meta"}}},
                  "domain": {"envs": {"dev": {"base_url": f"http://api.$Input{{d}}:{port}"}},
                             "actions": {"get": {"method": "GET", "path": "/meta"}}},
                  "ported": {"envs": {"dev": {"base_url": "http://127.0.0.1:$Input{port}/v3"}},
                             "actions": {"get": {"method": "GET", "path": "/meta"}}},
                  "pathed": {"envs": {"dev": {"base_url": ""}},
                             "actions": {"get": {"method": "GET", "path": f"http://$Input{{h}}:{port}/p"}}},
                  "whole": {"envs": {"dev": {"base_url": ""}},
                            "actions": {"get": {"method": "GET", "path": f"{http.url}/items/$Input{{id}}"}}}},
         "notifications": {"hook": {"callback": {"url": "$Input{callback_url}", "body": {"x": 1}}}}}
    )  # fmt: skip
    for tag, kind, event in (("given", "ACTION", "given:get"), ("host", "ACTION", "host:get"),
                             ("owned", "ACTION", "owned:get"), ("domain", "ACTION", "domain:get"),
                             ("ported", "ACTION", "ported:get"), ("pathed", "ACTION", "pathed:get"),
                             ("whole", "ACTION", "whole:get"),
                             ("hook", "NOTIFICATION", "hook")):  # fmt: skip
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
        ("domain", {"d": "localhost"}),  # the owner's label before the caller's: the caller's name still
        ("pathed", {"h": "127.0.0.1"}),  # no host in base_url: the path, the caller's there, is the whole URL
    ]
    for job, input in refused:
        failed = run(dt, job, input)
        assert failed.phase is RunPhase.FAILED and failed.retry_count == 0, (job, input, failed.error)
        assert "not sent" in failed.error and "a host the caller chooses must be a public address" in failed.error
        assert "resolves to" not in failed.error  # what a name resolves to is not the caller's to learn
    assert http.seen == []  # nothing reached the server: not the request, not the callback's signature
    # the owner's own host (a base_url written whole, loopback or not) is the owner's, whatever port the caller gives
    assert run(dt, "owned", {}).phase is RunPhase.COMPLETED
    assert run(dt, "ported", {"port": http.url.rsplit(":", 1)[1]}).phase is RunPhase.COMPLETED
    assert run(dt, "whole", {"id": "a/b"}).phase is RunPhase.COMPLETED  # the caller's value is a path segment there
    assert [s.target for s in http.seen] == ["/v2/meta", "/v3/meta", "/items/a%2Fb"]


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


def test_a_pinned_request_goes_on_a_connection_of_its_own_through_no_proxy(
    dt: Ductape, http: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request pinned to the address checked is sent by a client of its own that reads no proxy from the
    environment: a proxy would be told the address (and its certificate checked against it), and a shared client's
    pool keys connections by the address, so another host name there took a TLS connection verified for the first
    (a review)."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: a request sent through it fails
    monkeypatch.setenv("NO_PROXY", "")
    dt.webhooks.allow = "127.0.0.0/8"
    done = run(dt, "given", {"base": f"http://localhost:{http.url.rsplit(':', 1)[1]}/y"})
    assert done.phase is RunPhase.COMPLETED, done.error
    assert http.last.target == "/y/meta"
    failed = run(dt, "owned", {})  # the owner's URL goes as the process's settings say: through that proxy
    assert failed.phase is RunPhase.FAILED and "/v2/meta" not in [s.target for s in http.seen]


def test_an_smtp_host_the_caller_chooses_fails_the_email_before_any_login(dt: Ductape) -> None:
    """The SMTP login goes to the host: one the caller names (a review: ``host: $Input{smtp_host}`` given 127.0.0.1
    sent the owner's username and password to the server there) fails the run, not retried, before it connects."""
    dt.products.add(
        {"tag": "mail", "envs": {"dev": {"smtp": {"host": "$Input{smtp_host}", "port": 9, "username": "owner",
                                                 "password": "owner-smtp-password", "sender": "a@example.com"}}},
         "notifications": {"hi": {"email": {"to": "b@example.com", "subject": "hi", "text": "hi"}}}}
    )  # fmt: skip
    dt.job.create({"name": "hi", "tag": "hi", "event_type": "NOTIFICATION", "event_tag": "hi", "product_tag": "mail"})
    job_id = dt.job.schedule({"env": "dev", "product_tag": "mail", "event": "hi", "input": {"smtp_host": "127.0.0.1"}})
    dt.drain()
    (found,) = dt.job.runs(job_id=job_id.job_id)
    failed = dt.job.run(found.id)
    assert failed.phase is RunPhase.FAILED and failed.retry_count == 0, failed.error
    assert "smtp.host reads the caller's data" in failed.error and "owner-smtp-password" not in failed.error
