"""Every event type end to end: ``schedule()`` then a worker, against real local services.

A product ``shop`` with one env ``dev`` points its app at a local HTTP server, its email at a local SMTP
server (aiosmtpd), its push/SMS/callbacks at the HTTP server, its databases at PostgreSQL, MariaDB and SQLite,
and its brokers at Redis, RabbitMQ, NATS and Mosquitto.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import Ductape, FakeClock, RunPhase, ValidationError
from ductape_jobs.executors.notify import verify_signature
from ductape_jobs.products import Products
from support import Recorder, Smtp, require_service, start_smtp

PG = "postgresql://postgres@127.0.0.1:5432/test"
MARIA = "mysql://root@127.0.0.1:3306/test"
INSERT = "INSERT INTO e2e_users (name) VALUES (:name)"


def product(http: str, smtp_port: int, sqlite_url: str, topic: str) -> dict[str, Any]:
    return {
        "tag": "shop",
        "envs": {
            "dev": {
                "secrets": {"signing": "${SHOP_SIGNING}"},
                "session_secret": "session-secret-for-tests-0123456789abcdef",
                "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "Shop <shop@example.com>"},
                "push": {"url": f"{http}/push", "auth": {"kind": "bearer", "token": "push-key"}},
                "sms": {"url": f"{http}/sms", "sender": "SHOP"},
                "callback_secret": "callback-secret",
            },
            "prd": {},
        },
        "apps": {
            "orders": {
                "constants": {"currency": "EUR"},
                "actions": {
                    "create": {
                        "method": "POST",
                        "path": "/orders/:id",
                        "headers": {"X-Currency": "$Constant{orders}{currency}"},
                        "body": {"region": "$Variable{orders}{region}", "sig": "$Secret{signing}"},
                    },
                    "get": {"method": "GET", "path": "/orders/:id"},
                    "whoami": {"method": "POST", "path": "/who", "body": {"user": "$Session{user}{id}"}},
                    "ping": {"method": "GET", "path": "/orders-ping"},
                },
                "envs": {
                    "dev": {
                        "base_url": http,
                        "auth": {"kind": "bearer", "token": "${SHOP_TOKEN}"},
                        "variables": {"region": "eu-west"},
                    }
                },
            },
            "billing": {
                "actions": {"ping": {"method": "GET", "path": "/billing-ping"}},
                "envs": {"dev": {"base_url": http}},
            },
        },
        "notifications": {
            "welcome": {
                "email": {"to": "$Input{email}", "subject": "Welcome $Input{name}", "text": "Hi $Input{name}!"},
                "push": {"tokens": "$Input{tokens}", "title": "Welcome", "body": "Hello $Input{name}"},
                "sms": {"to": "$Input{phone}", "body": "Welcome $Input{name}"},
                "callback": {"url": f"{http}/hook", "body": {"event": "welcomed", "user": "$Input{name}"}},
            },
            "reminder": {"email": {"to": "$Input{email}", "subject": "Reminder", "text": "due $Input{date}"}},
        },
        "databases": {
            "pg": {"envs": {"dev": PG}, "actions": {"add": {"sql": "INSERT INTO e2e_users (name) VALUES (:name)"}}},
            "maria": {
                "envs": {"dev": MARIA},
                "actions": {"add": {"sql": "INSERT INTO e2e_users (name) VALUES (:name)"}},
            },
            "lite": {
                "envs": {"dev": sqlite_url},
                "actions": {"add": {"sql": "INSERT INTO e2e_users (name) VALUES (:name)"}},
            },
        },
        "brokers": {
            "redis": {"envs": {"dev": "redis://127.0.0.1:6379/0"}, "topics": {"created": topic}},
            "rabbit": {"envs": {"dev": "amqp://guest:guest@127.0.0.1:5672/"}, "topics": {"created": topic}},
            "nats": {"envs": {"dev": "nats://127.0.0.1:4222"}, "topics": {"created": topic}},
            "mqtt": {"envs": {"dev": "mqtt://127.0.0.1:1883"}, "topics": {"created": topic.replace(".", "/")}},
        },
        "sessions": {
            "user-session": {
                "name": "User",
                "schema": {"user": "object"},
                "selector": "$Session{user}{id}",
                "expiry": 3600,
            },
        },
        "caches": {"orders-cache": {"expiry": 60_000}},
    }


@dataclass
class Shop:
    dt: Ductape
    http: Recorder
    smtp: Smtp
    topic: str
    clock: FakeClock

    def job(self, tag: str, event_type: str, event_tag: str) -> None:
        self.dt.job.create({"name": tag, "tag": tag, "event_type": event_type, "event_tag": event_tag})

    def schedule(self, event: str, **extra: Any) -> str:
        return self.dt.job.schedule({"env": "dev", "product_tag": "shop", "event": event, **extra}).job_id

    def run_of(self, job_id: str) -> Any:
        (run,) = self.dt.job.runs(job_id=job_id)
        return run


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    monkeypatch.setenv("SHOP_TOKEN", "shop-token")
    monkeypatch.setenv("SHOP_SIGNING", "signing-secret")
    http = Recorder()
    http.thread.start()
    controller, smtp = start_smtp()
    topic = f"e2e.{uuid.uuid4().hex[:8]}"
    spec = product(http.url, smtp.port, f"sqlite:///{tmp_path / 'app.db'}", topic)
    clock = FakeClock()
    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", clock=clock, products=Products([spec]))  # type: ignore[list-item]
    yield Shop(dt, http, smtp, topic, clock)
    dt.close()
    controller.stop()
    http.server.shutdown()
    http.server.server_close()


# ------------------------------------------------------------------------------------------- ACTION


def test_action_sends_the_apps_request_with_piped_values(shop: Shop) -> None:
    shop.job("create-order", "ACTION", "orders:create")
    shop.http.reply(201, {"id": "o-1"})
    job_id = shop.schedule("create-order", input={"params": {"id": "o-1"}, "body": {"total": 12}})
    assert shop.dt.drain().completed == 1
    seen = shop.http.last
    assert (seen.method, seen.path) == ("POST", "/orders/o-1")
    assert seen.headers["authorization"] == "Bearer shop-token"  # ${SHOP_TOKEN} read at run time
    assert seen.headers["x-currency"] == "EUR"
    assert seen.json() == {"region": "eu-west", "sig": "signing-secret", "total": 12}
    run = shop.run_of(job_id)
    assert run.output["status"] == 201 and run.output["body"] == {"id": "o-1"}


def test_action_failure_is_retried_then_failed_with_the_error_kept(shop: Shop) -> None:
    shop.job("get-order", "ACTION", "get")  # the action tag alone, unique among apps
    for _ in range(3):
        shop.http.reply(503, {"error": "busy"})
    job_id = shop.schedule("get-order", input={"params": {"id": "x"}}, retries=2)
    shop.dt.drain()
    for _ in range(2):
        shop.clock.advance(minutes=10)
        shop.dt.drain()
    run = shop.run_of(job_id)
    assert run.phase is RunPhase.FAILED and run.retry_count == 2 and "503" in (run.error or "")
    assert len(shop.http.seen) == 3


def test_an_unset_environment_variable_fails_the_run_naming_it(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_TOKEN")
    shop.job("create-order", "ACTION", "orders:create")
    job_id = shop.schedule("create-order", input={"params": {"id": "1"}}, retries=0)
    shop.dt.drain()
    run = shop.run_of(job_id)
    assert run.phase is RunPhase.FAILED and "SHOP_TOKEN" in (run.error or "")
    assert shop.http.seen == []


def test_cache_answers_the_same_input_within_the_ttl(shop: Shop) -> None:
    shop.job("get-order", "ACTION", "orders:get")
    shop.http.reply(200, {"id": "c-1"})
    first = shop.schedule("get-order", input={"params": {"id": "c-1"}}, cache="orders-cache")
    shop.dt.drain()
    second = shop.schedule("get-order", input={"params": {"id": "c-1"}}, cache="orders-cache")
    shop.dt.drain()
    assert len(shop.http.seen) == 1  # the second run did not call the app
    cached = shop.run_of(second)
    assert cached.phase is RunPhase.COMPLETED and cached.output == shop.run_of(first).output
    assert [a.outcome for a in shop.dt.job.run(cached.id).attempts] == ["cached"]
    shop.clock.advance(seconds=61)
    shop.schedule("get-order", input={"params": {"id": "c-1"}}, cache="orders-cache")
    shop.dt.drain()
    assert len(shop.http.seen) == 2  # expired


def test_a_cached_result_is_not_shared_across_sessions_or_apps(shop: Shop) -> None:
    """The cache key holds what the event is run with beyond its input: the session's data its definition may read
    (Bob was answered with Alice's result) and the app the schedule picks (app billing's run got app orders')."""
    shop.job("who", "ACTION", "orders:whoami")
    shop.job("ping", "ACTION", "ping")  # in both apps: the schedule's app picks
    for user in ("alice", "bob", "alice"):
        token = shop.dt.session.start("user-session", {"user": {"id": user}}, env="dev", product_tag="shop")
        shop.schedule("who", session=str(token), cache="orders-cache")
        shop.dt.drain()
    assert [seen.json() for seen in shop.http.seen] == [{"user": "alice"}, {"user": "bob"}]  # Alice's again: cached
    for app in ("orders", "billing", "billing"):
        shop.schedule("ping", app=app, cache="orders-cache")
        shop.dt.drain()
    assert [seen.path for seen in shop.http.seen[2:]] == ["/orders-ping", "/billing-ping"]


# ------------------------------------------------------------------------------------------- NOTIFICATION


def test_notification_sends_email_push_sms_and_a_signed_callback(shop: Shop) -> None:
    shop.job("welcome", "NOTIFICATION", "welcome")
    job_id = shop.schedule(
        "welcome", input={"name": "Ada", "email": "ada@example.com", "tokens": ["t1", "t2"], "phone": "+15550001"}
    )
    assert shop.dt.drain().completed == 1
    mail = shop.smtp.mailbox.message()
    assert mail["Subject"] == "Welcome Ada" and mail["To"] == "ada@example.com"
    assert "Hi Ada!" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    by_path = {s.path: s for s in shop.http.seen}
    push = by_path["/push"]
    assert push.headers["authorization"] == "Bearer push-key" and "t2" in json.dumps(push.json())
    assert "Hello Ada" in json.dumps(push.json())
    assert "+15550001" in json.dumps(by_path["/sms"].json())
    hook = by_path["/hook"]
    assert hook.json() == {"event": "welcomed", "user": "Ada"}
    assert verify_signature(
        "callback-secret",
        hook.body,
        hook.headers["x-ductape-timestamp"],
        hook.headers["x-ductape-signature"],
        tolerance_s=None,
    )
    assert set(shop.run_of(job_id).output) == {"email", "push", "sms", "callback"}


def test_notification_needing_a_missing_input_key_is_refused_at_schedule_time(shop: Shop) -> None:
    shop.job("reminder", "NOTIFICATION", "reminder")
    with pytest.raises(ValidationError) as err:
        shop.schedule("reminder", input={"email": "a@example.com"})
    assert err.value.field == "input" and "date" in str(err.value)
    assert shop.dt.job.list() == []


# ------------------------------------------------------------------------------------------- DATABASE_ACTION


@pytest.mark.parametrize("db", ["pg", "maria", "lite"])
def test_database_action_binds_input_and_never_splices_it(shop: Shop, db: str) -> None:
    if db == "pg":
        require_service("PostgreSQL", "127.0.0.1", 5432)
    if db == "maria":
        require_service("MariaDB", "127.0.0.1", 3306)
    from ductape_jobs.executors.databases import DatabasePool, Statement, run_statement

    url = shop.dt.products.get("shop").databases[db].envs["dev"]
    pool = DatabasePool()  # the test's own connections, closed at its end (nothing is left to atexit)

    def sql(text: str) -> dict[str, Any]:
        return asyncio.run(run_statement(url, Statement(text), {}, pool=pool))

    sql("DROP TABLE IF EXISTS e2e_users")
    sql("CREATE TABLE e2e_users (name VARCHAR(200))")
    try:
        shop.job(f"add-{db}", "DATABASE_ACTION", f"{db}:add")
        evil = "'; DROP TABLE e2e_users; --"
        for name in ("ada", evil):
            shop.schedule(f"add-{db}", input={"data": {"name": name}})
        assert shop.dt.drain().completed == 2
        rows = sql("SELECT name FROM e2e_users ORDER BY name")["rows"]
        assert sorted(r["name"] for r in rows) == sorted(["ada", evil])  # stored as text; the table survived
    finally:
        sql("DROP TABLE IF EXISTS e2e_users")
        pool.close()


# ------------------------------------------------------------------------------------------- MESSAGEBROKER


def _received(broker: str, shop: Shop, publish: Any) -> list[bytes]:
    """Subscribe with the broker's own client, run ``publish()``, and return what arrived."""

    async def go() -> list[bytes]:
        if broker == "redis":
            import redis.asyncio as redis

            client = redis.Redis(host="127.0.0.1", port=6379)
            await asyncio.to_thread(publish)
            entries = await client.xrange(shop.topic)
            await client.delete(shop.topic)
            await client.aclose()
            return [fields[b"data"] for _, fields in entries]
        if broker == "rabbit":
            import aio_pika

            conn = await aio_pika.connect_robust("amqp://guest:guest@127.0.0.1:5672/")
            channel = await conn.channel()
            queue = await channel.declare_queue(shop.topic, durable=True)
            await asyncio.to_thread(publish)
            got = []
            while (message := await queue.get(fail=False, timeout=2)) is not None:
                await message.ack()
                got.append(message.body)
            await queue.delete(if_unused=False, if_empty=False)
            await conn.close()
            return got
        if broker == "nats":
            import nats

            nc = await nats.connect("nats://127.0.0.1:4222")
            got: list[bytes] = []

            async def on_message(message: Any) -> None:
                got.append(message.data)

            sub = await nc.subscribe(shop.topic, cb=on_message)
            await asyncio.to_thread(publish)
            await asyncio.sleep(0.3)
            await sub.unsubscribe()
            js = nc.jetstream()
            stream = await js.find_stream_name_by_subject(shop.topic)
            await js.delete_stream(stream)
            await nc.close()
            return got
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.subscribe(shop.topic.replace(".", "/"), qos=1)
            await asyncio.to_thread(publish)
            got = []
            try:
                async with asyncio.timeout(1.0):
                    async for message in client.messages:
                        got.append(bytes(message.payload))  # type: ignore[arg-type]
            except TimeoutError:
                pass
            return got

    return asyncio.run(go())


@pytest.mark.parametrize(("broker", "port"), [("redis", 6379), ("rabbit", 5672), ("nats", 4222), ("mqtt", 1883)])
def test_broker_publish_arrives_once(shop: Shop, broker: str, port: int) -> None:
    require_service(broker, "127.0.0.1", port)
    shop.job(f"announce-{broker}", "PUBLISH", f"{broker}:created")
    shop.schedule(f"announce-{broker}", input={"user": "ada", "n": 1})

    def publish() -> None:
        assert shop.dt.drain().completed == 1

    got = _received(broker, shop, publish)
    assert [json.loads(m) for m in got] == [{"user": "ada", "n": 1}]


# ------------------------------------------------------------------------------------------- sessions


def _fn_job(shop: Shop) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    shop.dt.function("greet")(lambda input, ctx: seen.append(input))
    shop.job("greet", "FUNCTION", "greet")
    return seen


def test_session_data_is_piped_into_the_run(shop: Shop) -> None:
    seen = _fn_job(shop)
    token = shop.dt.session.start(
        "user-session", {"user": {"id": "u-7", "email": "u7@example.com"}}, env="dev", product_tag="shop"
    )
    assert token.subject == "u-7" and str(token).startswith("user-session:")
    job_id = shop.schedule(
        "greet", input={"userId": "$Session{user}{id}", "to": "mail: $Session{user}{email}"}, session=str(token)
    )
    shop.dt.drain()
    assert seen == [{"userId": "u-7", "to": "mail: u7@example.com"}]
    schedule = shop.dt.job.get(job_id)
    assert schedule.session == {"user": {"id": "u-7", "email": "u7@example.com"}}  # the claims, not the token
    assert token.token not in repr(schedule) and token.token not in repr(shop.run_of(job_id))


@pytest.mark.parametrize("case", ["tampered", "expired", "foreign", "other-env", "missing-key"])
def test_bad_sessions_are_refused_and_nothing_is_stored(shop: Shop, case: str) -> None:
    _fn_job(shop)
    token = shop.dt.session.start("user-session", {"user": {"id": "u-1"}}, env="dev", product_tag="shop")
    session: Any = {"tag": "user-session", "token": token.token}
    inp: dict[str, Any] = {"id": "$Session{user}{id}"}
    if case == "tampered":
        head, body, sig = token.token.split(".")
        session["token"] = ".".join([head, body, sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")])
    elif case == "expired":
        shop.clock.advance(timedelta(hours=2))
    elif case == "foreign":
        session["tag"] = "admin-session"
    elif case == "other-env":
        shop.dt.products.get("shop").envs["prd"].session_secret = "session-secret-for-tests-0123456789abcdef"
        with pytest.raises(ValidationError):
            shop.dt.job.schedule(
                {"env": "prd", "product_tag": "shop", "event": "greet", "input": inp, "session": session}
            )
        assert shop.dt.job.list() == []
        return
    else:
        inp = {"id": "$Session{user}{email}"}
    with pytest.raises(ValidationError) as err:
        shop.schedule("greet", input=inp, session=session)
    assert err.value.field.startswith(("session", "input"))
    assert shop.dt.job.list() == [] and shop.dt.job.runs() == []


# ------------------------------------------------------------------------------------------- products


@pytest.mark.parametrize(
    ("change", "field"),
    [({"product_tag": "nope"}, "product_tag"), ({"env": "qa"}, "env")],
)
def test_unknown_product_or_env_is_refused(shop: Shop, change: dict[str, str], field: str) -> None:
    _fn_job(shop)
    with pytest.raises(ValidationError) as err:
        shop.dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "greet", **change})
    assert err.value.field == field
    assert shop.dt.job.list() == []


@pytest.mark.parametrize(
    ("event_type", "event_tag"),
    [
        ("ACTION", "orders:nope"),
        ("ACTION", "billing:create"),
        ("NOTIFICATION", "nope"),
        ("DATABASE_ACTION", "pg:nope"),
        ("MESSAGEBROKER", "redis:nope"),
    ],
)
def test_an_event_the_product_does_not_define_is_refused(shop: Shop, event_type: str, event_tag: str) -> None:
    shop.job("j", event_type, event_tag)
    with pytest.raises(ValidationError) as err:
        shop.schedule("j", input={"name": "x", "email": "e", "tokens": [], "phone": "1"})
    assert err.value.field == "event"
    assert shop.dt.job.list() == []


def test_product_file_in_yaml(tmp_path: Path) -> None:
    (tmp_path / "ductape.yaml").write_text(
        "products:\n  - tag: shop\n    envs: [dev, prd]\n    functions:\n      hello: json:dumps\n"
    )
    dt = Ductape(f"sqlite:///{tmp_path / 'j.db'}", product_file=str(tmp_path / "ductape.yaml"), clock=FakeClock())
    dt.job.create({"name": "h", "tag": "h", "event_type": "FUNCTION", "event_tag": "hello"})
    with pytest.raises(ValidationError):
        dt.job.schedule({"env": "staging", "product_tag": "shop", "event": "h"})
    dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "h", "input": {"a": 1}})
    assert dt.drain().failed == 1  # json.dumps(input, ctx) is not a job function: it fails, clearly
    dt.close()
