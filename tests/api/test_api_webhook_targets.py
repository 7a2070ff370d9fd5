"""Webhook targets: loopback, private, link-local and metadata addresses are refused (on create: 422 / a
ValidationError on ``url``; before each delivery, after resolving the host: not sent, failed for good) unless
an allowlist names them; what a delivery keeps of the answer is short and clean; redirects are not followed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from apikit import Api, problems

from ductape_jobs import Ductape, FakeClock, ValidationError
from ductape_jobs.targets import SNIPPET_CHARS, TargetPolicy, TargetRefused, answer_snippet
from support import Recorder

HOOK = {"product_tag": "shop", "events": ["job.scheduled"]}
SHOP = {"env": "prd", "product_tag": "shop", "event": "report"}


def deliver(dt: Ductape) -> int:
    dt.webhooks.flush()
    return asyncio.run(dt.webhooks.deliver_due())


REFUSED = [
    "http://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",  # a name that resolves to loopback
    # loopback by name (RFC 6761), whether or not a resolver here answers for it (none did for these)
    "https://LOCALHOST./x",
    "http://api.localhost/",
    "http://10.0.0.1/hook",
    "http://192.168.1.20:8080/hook",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://0.0.0.0:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[fe80::1]/",
    "http://224.0.0.1/",
    "https://240.0.0.1/",
    "http://[fec0::1]/",  # site-local (found by probing)
    "http://192.88.99.1/",  # 6to4 relay anycast
    "https://example.com:0/x",  # port 0
    "http://a\u0000b.com/",
    "http://a..b/x",
    "http://xn--/",
    "http://" + "a" * 300 + ".com/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_internal_targets_are_refused_on_create(api: Api, receiver: Recorder, url: str) -> None:
    api.dt.webhooks.allow = []  # the fixture allows 127.0.0.0/8; this test is about the default
    body = {**HOOK, "url": url.format(port=receiver.server.server_address[1])}
    response = api.client().post("/webhooks", json=body)
    with pytest.raises(ValidationError) as raised:
        api.dt.webhooks.create(body)
    assert raised.value.field == "url"
    control = "\u0000" in url  # refused before its host is looked at: a URL holds no control character
    assert ("control characters" if control else "--webhook-allow") in raised.value.rule
    assert problems(response) == [(raised.value.field, raised.value.rule)]
    assert api.dt.webhooks.list() == []


def test_public_targets_and_unresolvable_names_are_accepted(api: Api) -> None:
    api.dt.webhooks.allow = []
    for url in ("https://93.184.215.14/hook", "http://[2606:4700::1111]/", "https://hooks.invalid/x"):
        assert api.client().post("/webhooks", json={**HOOK, "url": url}).status_code == 201, url


def test_an_allowlist_admits_its_networks_only(api: Api, receiver: Recorder, job: object) -> None:
    api.dt.webhooks.allow = "10.0.0.0/8, 127.0.0.1/32"
    assert api.dt.webhooks.allow == ("10.0.0.0/8", "127.0.0.1/32")
    c = api.client()
    made = c.post("/webhooks", json={**HOOK, "url": receiver.url + "/hook"})
    assert made.status_code == 201, made.text
    assert c.post("/webhooks", json={**HOOK, "url": "http://10.1.2.3/"}).status_code == 201
    assert c.post("/webhooks", json={**HOOK, "url": "http://127.0.0.2/"}).status_code == 422
    assert c.post("/webhooks", json={**HOOK, "url": "http://169.254.169.254/"}).status_code == 422
    c.delete(f"/webhooks/{c.get('/webhooks').json()['items'][1]['id']}")  # 10.1.2.3: nothing listens there
    api.dt.job.schedule(SHOP)
    assert deliver(api.dt) == 1
    assert receiver.last.path == "/hook" and receiver.last.json()["event"] == "job.scheduled"
    (sent,) = c.get(f"/webhooks/{made.json()['id']}/deliveries").json()["items"]
    assert sent["status"] == "delivered" and sent["last_error"] is None
    assert sent["last_status"] == 200 and isinstance(sent["last_duration_ms"], int) and sent["last_duration_ms"] >= 0


def test_a_target_refused_at_delivery_is_not_sent_and_waits_for_a_sender_that_may(
    api: Api, receiver: Recorder, job: object, tmp_path: Path, clock: FakeClock
) -> None:
    """Created while 127.0.0.0/8 was allowed; a worker without the allowlist (as when the DNS answer changed to
    a loopback address after the check on create, or a process started without --webhook-allow) refuses to send
    it. The refusal is retried with backoff, so a process that allows the target delivers it later."""
    hook = api.client().post("/webhooks", json={**HOOK, "url": f"{receiver.url}/hook"}).json()
    api.dt.job.schedule(SHOP)
    api.dt.webhooks.flush()
    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock) as worker:
        assert worker.webhooks.allow == ()
        assert deliver(worker) == 1
    assert receiver.seen == []  # nothing was sent
    (refused,) = api.client().get(f"/webhooks/{hook['id']}/deliveries").json()["items"]
    assert (refused["status"], refused["attempts"]) == ("pending", 1) and refused["next_attempt_at"] is not None
    assert refused["last_error"].startswith("not sent: 127.0.0.1 is a loopback address")
    assert (refused["last_status"], refused["last_duration_ms"]) == (None, None)
    clock.advance(hours=2)
    assert deliver(api.dt) == 1  # this process allows 127.0.0.0/8
    assert len(receiver.seen) == 1
    (sent,) = api.client().get(f"/webhooks/{hook['id']}/deliveries").json()["items"]
    assert (sent["status"], sent["attempts"]) == ("delivered", 2)


def test_the_delivery_check_resolves_names() -> None:
    with pytest.raises(TargetRefused, match=r"localhost is a loopback name"):
        asyncio.run(TargetPolicy().resolve("http://localhost:8080/x"))
    with pytest.raises(TargetRefused, match="cloud metadata"):
        asyncio.run(TargetPolicy().resolve("http://metadata.google.internal/"))
    assert str(asyncio.run(TargetPolicy.of("127.0.0.0/8").resolve("http://localhost:8080/x"))) == "127.0.0.1"
    TargetPolicy.of("127.0.0.0/8").check_url("http://localhost.:8080/x")  # an allowed loopback admits its names
    with pytest.raises(ValidationError, match=r"localhost\. is a loopback name"):  # ::1 alone: they resolve to 127/8
        TargetPolicy.of("::1/128").check_url("http://localhost.:8080/x")
    assert str(asyncio.run(TargetPolicy().resolve("https://93.184.215.14/"))) == "93.184.215.14"
    with pytest.raises(TargetRefused, match="cloud metadata"):  # allowing 169.254/16 does not admit it by name
        asyncio.run(TargetPolicy.of("10.0.0.0/8").resolve("http://metadata.google.internal/"))


def test_a_bad_allowlist_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as raised:
        Ductape(f"sqlite:///{tmp_path / 'x.db'}", webhook_allow=["127.0.0.0/8", "localhost"])
    assert raised.value.field == "webhook_allow" and "'localhost'" in raised.value.rule
    assert not (tmp_path / "x.db").exists()  # refused before the store was opened


def test_a_delivery_keeps_a_short_clean_snippet_of_the_answer(
    api: Api, receiver: Recorder, job: object, clock: FakeClock
) -> None:
    api.dt.products.add({"tag": "shop", "envs": {"prd": {"secrets": {"db": "internal-db-password-123"}}}})
    hook = api.client().post("/webhooks", json={**HOOK, "url": receiver.url}).json()
    internal = "\x1b[31mSECRET-ROW\x00 internal-db-password-123 " + "x" * 5000 + "\x07 tail-of-the-page"
    receiver.reply(500, internal, headers={"Content-Type": "text/plain"})
    api.dt.job.schedule(SHOP)
    assert deliver(api.dt) == 1
    (failed,) = api.client().get(f"/webhooks/{hook['id']}/deliveries").json()["items"]
    error = failed["last_error"]
    assert failed["last_status"] == 500 and f"after {failed['last_duration_ms']} ms" in error
    prefix, _, snippet = error.partition(": ")
    assert prefix.startswith("HTTP 500 after ") and prefix.endswith(" ms")
    assert len(snippet) <= SNIPPET_CHARS and snippet.endswith("...")
    assert "tail-of-the-page" not in error and not any(ord(ch) < 32 or ch == "\x7f" for ch in error)
    assert snippet.startswith("[31mSECRET-ROW [secret] xxx")  # a product's secret is masked


def test_answer_snippet() -> None:
    assert answer_snippet(None) == ""
    assert answer_snippet({"error": "down", "n": 1}) == '{"error":"down","n":1}'
    assert answer_snippet("a\r\n\tb\u200b\u202ec") == "a bc"
    assert len(answer_snippet("y" * 1000)) == SNIPPET_CHARS
    assert answer_snippet(b"\xff ok") == "\ufffd ok"


def test_redirects_are_not_followed(api: Api, receiver: Recorder, job: object) -> None:
    other = Recorder()
    other.thread.start()
    try:
        hook = api.client().post("/webhooks", json={**HOOK, "url": receiver.url}).json()
        receiver.reply(307, b"", headers={"Location": other.url + "/stolen"})
        api.dt.job.schedule(SHOP)
        assert deliver(api.dt) == 1
        assert other.seen == [] and len(receiver.seen) == 1
        (first,) = api.client().get(f"/webhooks/{hook['id']}/deliveries").json()["items"]
        assert first["status"] == "pending" and first["last_error"].endswith("(redirects are not followed)")
        assert first["last_status"] == 307
    finally:
        other.server.shutdown()
        other.server.server_close()
