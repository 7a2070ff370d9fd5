"""The broker publishers against the real local servers (Redis, RabbitMQ, NATS JetStream, Mosquitto).

Each test that needs a server calls ``require_service`` first: it skips on a laptop without the
server and fails under CI=true. Kafka runs only where a server answers on 127.0.0.1:9092.
Every test uses its own topic names and deletes what it created.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from ductape_jobs.errors import ExecutionError, ValidationError
from ductape_jobs.executors.brokers import EXTRA, PublisherPool, open_publisher, redact_url
from ductape_jobs.executors.brokers.kafka import KafkaPublisher
from ductape_jobs.executors.brokers.mqtt import MqttPublisher
from ductape_jobs.executors.brokers.nats_jetstream import NatsPublisher, stream_name_for
from ductape_jobs.executors.brokers.rabbitmq import RabbitMQPublisher
from ductape_jobs.executors.brokers.redis_streams import RedisStreamsPublisher
from support import require_service

T = TypeVar("T")

REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
NATS = "nats://127.0.0.1:4222"
MQTT = "mqtt://127.0.0.1:1883"
KAFKA = "kafka://127.0.0.1:9092"
QUIET = 0.3  # how long to wait for a second (unwanted) delivery


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await asyncio.wait_for(main(), 60)

    return asyncio.run(wrapped())


def uid() -> str:
    return uuid.uuid4().hex[:12]


def message() -> bytes:
    return json.dumps({"order": uid(), "total": 12.5, "items": ["a", "é"]}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# -- choosing a publisher ------------------------------------------------------------------------


def test_open_publisher_picks_the_module_by_scheme() -> None:
    cases: list[tuple[str, type[Any]]] = [
        (REDIS, RedisStreamsPublisher),
        ("rediss://h:6380/1", RedisStreamsPublisher),
        (AMQP, RabbitMQPublisher),
        ("AMQPS://u:p@h/vh", RabbitMQPublisher),
        (NATS, NatsPublisher),
        (MQTT, MqttPublisher),
        ("mqtts://h", MqttPublisher),
        (KAFKA, KafkaPublisher),
    ]
    for url, cls in cases:
        assert isinstance(open_publisher(url), cls), url
    assert KafkaPublisher("kafka://a:1,b").servers == ["a:1", "b:9092"]


@pytest.mark.parametrize("url", ["http://h/x", "zmq://h:5555", "127.0.0.1:6379", "", "redis://", "kafka://u:p@h:9092"])
def test_open_publisher_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        open_publisher(url)
    assert info.value.field == "broker"
    if url.startswith(("http", "zmq")):
        assert EXTRA in str(info.value)


def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiokafka", None)  # makes `import aiokafka` fail
    monkeypatch.delitem(sys.modules, "ductape_jobs.executors.brokers.kafka")
    with pytest.raises(ValidationError) as info:
        open_publisher(KAFKA)
    assert info.value.field == "broker"
    assert "pip install 'ductape-jobs[brokers]'" in str(info.value)
    assert "aiokafka" in str(info.value)


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("amqp://guest:s3cret@h:5672/vh") == "amqp://guest:***@h:5672/vh"
    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("nats://h:4222") == "nats://h:4222"


def test_pool_keeps_one_publisher_per_url() -> None:
    pool = PublisherPool()
    first = pool.get(REDIS)
    assert pool.get(REDIS) is first
    assert pool.get(NATS) is not first
    assert len(pool) == 2
    run(pool.close)
    assert len(pool) == 0
    assert pool.get(REDIS) is not first


def test_bad_topic_or_message_is_a_validation_error_before_connecting() -> None:
    publisher = open_publisher(f"redis://127.0.0.1:{free_port()}/0")

    async def main() -> None:
        with pytest.raises(ValidationError):
            await publisher.publish("", b"x")
        with pytest.raises(ValidationError):
            await publisher.publish("t", "not bytes")  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await publisher.publish("t", b"x", headers={"n": 1})  # type: ignore[dict-item]

    run(main)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@127.0.0.1:{port}/0",
        "amqp://guest:s3cret@127.0.0.1:{port}/",
        "nats://u:s3cret@127.0.0.1:{port}",
        "mqtt://u:s3cret@127.0.0.1:{port}",
        "kafka://127.0.0.1:{port}",
    ],
)
def test_unreachable_broker_is_a_retryable_execution_error(url: str) -> None:
    url = url.format(port=free_port())
    publisher = open_publisher(url)

    async def main() -> None:
        for _ in range(2):  # the second call tries to connect again
            with pytest.raises(ExecutionError) as info:
                await publisher.publish("orders.created", b"{}")
            text = str(info.value)
            assert info.value.retryable
            assert "'orders.created'" in text
            assert redact_url(url) in text
            assert "s3cret" not in text
            assert getattr(publisher, "connection", None) is None
        await publisher.close()

    run(main)


@pytest.mark.parametrize(
    ("service", "port", "url", "topic"),
    [
        ("Redis", 6379, REDIS, "dt-test-{u}"),
        ("RabbitMQ", 5672, AMQP, "dt-test-{u}"),
        ("NATS", 4222, NATS, "dttest{u}.loops"),
        ("Mosquitto", 1883, MQTT, "dt-test/{u}/loops"),
    ],
)
def test_a_publisher_outlives_its_event_loop(service: str, port: int, url: str, topic: str) -> None:
    """``Ductape.drain()`` runs each drain in a new ``asyncio.run``: the connection made in one loop is
    closed when that loop ends (no ResourceWarning, which this suite turns into errors) and the next loop
    connects again."""
    require_service(service, "127.0.0.1", port)
    topic = topic.format(u=uid())
    pool = PublisherPool()

    async def publish() -> Any:
        return await pool.get(url).publish(topic, b"{}")

    try:
        first = asyncio.run(publish())
        assert pool.get(url).connection is None  # type: ignore[attr-defined]
        gc.collect()
        second = asyncio.run(publish())
        gc.collect()
        assert first.keys() == second.keys()
        run(pool.close)
        assert run(lambda: count_and_delete(service, topic)) in (2, None)
    finally:
        run(lambda: count_and_delete(service, topic))


async def count_and_delete(service: str, topic: str) -> int | None:
    """How many messages ``topic`` holds (None for MQTT, which keeps none); deletes the stream or queue."""
    if service == "Redis":
        import redis.asyncio as aioredis

        r = aioredis.from_url(REDIS)
        count: int = await r.xlen(topic)
        await r.delete(topic)
        await r.aclose()
        return count
    if service == "RabbitMQ":
        import aio_pika

        async with await aio_pika.connect(AMQP) as connection:
            channel = await connection.channel()
            result = await channel.queue_delete(topic)
            return int(result.message_count or 0)
    if service == "NATS":
        import nats
        import nats.js.errors

        nc = await nats.connect(NATS)
        js = nc.jetstream()
        try:
            count = (await js.stream_info(stream_name_for(topic))).state.messages
            await js.delete_stream(stream_name_for(topic))
            return count
        except nats.js.errors.NotFoundError:
            return 0
        finally:
            await nc.close()
    return None


# -- Redis Streams -------------------------------------------------------------------------------


def test_redis_xadds_one_entry_with_headers() -> None:
    require_service("Redis", "127.0.0.1", 6379)
    import redis.asyncio as aioredis

    stream, body = f"dt-test-{uid()}", message()

    async def main() -> None:
        r = aioredis.from_url(REDIS)
        publisher = open_publisher(REDIS)
        try:
            receipt = await publisher.publish(stream, body, headers={"content-type": "application/json"}, key="k1")
            entries = await r.xrange(stream)
            assert len(entries) == 1
            entry_id, fields = entries[0]
            assert receipt == {"id": entry_id.decode()}
            assert fields == {b"data": body, b"content-type": b"application/json"}
            with pytest.raises(ValidationError):
                await publisher.publish(stream, body, headers={"data": "clash"})
            assert await r.xlen(stream) == 1
        finally:
            await publisher.close()
            await r.delete(stream)
            await r.aclose()

    run(main)


def test_redis_reconnects_after_the_connection_is_closed_or_killed() -> None:
    require_service("Redis", "127.0.0.1", 6379)
    import redis.asyncio as aioredis

    stream = f"dt-test-{uid()}"
    bodies = [message() for _ in range(4)]

    async def main() -> None:
        r = aioredis.from_url(REDIS)
        publisher = RedisStreamsPublisher(REDIS)
        try:
            await publisher.publish(stream, bodies[0])
            client = publisher.connection
            assert client is not None
            await client.connection_pool.disconnect()  # our side closes the sockets
            await publisher.publish(stream, bodies[1])
            killed = await r.execute_command("CLIENT", "KILL", "ID", await client.client_id())
            assert killed == 1  # the server closes our socket
            await publisher.publish(stream, bodies[2])
            await publisher.close()
            assert publisher.connection is None
            await publisher.publish(stream, bodies[3])
            assert publisher.connection is not None and publisher.connection is not client
            assert [fields[b"data"] for _, fields in await r.xrange(stream)] == bodies
        finally:
            await publisher.close()
            await r.delete(stream)
            await r.aclose()

    run(main)


# -- RabbitMQ ------------------------------------------------------------------------------------


async def next_amqp(queue: asyncio.Queue[Any]) -> Any:
    got = await asyncio.wait_for(queue.get(), 5)
    await asyncio.sleep(QUIET)
    assert queue.empty(), "delivered more than once"
    return got


def test_rabbitmq_default_exchange_delivers_once_persistent_with_headers() -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    import aio_pika

    name, body = f"dt-test-{uid()}", message()

    async def main() -> None:
        connection = await aio_pika.connect(AMQP)
        publisher = open_publisher(AMQP)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, durable=True)
            got: asyncio.Queue[Any] = asyncio.Queue()

            async def on_message(msg: Any) -> None:
                await msg.ack()
                await got.put(msg)

            await queue.consume(on_message)  # subscribe first
            receipt = await publisher.publish(name, body, headers={"x-source": "ductape"}, key="run-1")
            assert receipt == {"exchange": "", "routing_key": name}
            msg = await next_amqp(got)
            assert msg.body == body
            assert msg.headers == {"x-source": "ductape"}
            assert msg.message_id == "run-1"
            assert msg.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        finally:
            await publisher.close()
            async with connection:
                await (await connection.channel()).queue_delete(name)

    run(main)


def test_rabbitmq_declares_a_durable_queue_that_keeps_the_message() -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    import aio_pika

    name, body = f"dt-test-{uid()}", message()

    async def main() -> None:
        publisher = open_publisher(AMQP)
        await publisher.publish(name, body)  # nobody listens, the queue did not exist
        await publisher.close()
        async with await aio_pika.connect(AMQP) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, durable=True)  # would fail if it were not durable
            assert queue.declaration_result.message_count == 1
            msg = await queue.get(timeout=5)
            assert msg is not None and msg.body == body
            await msg.ack()
            await channel.queue_delete(name)

    run(main)


def test_rabbitmq_uses_an_existing_queue_declared_with_other_arguments() -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    import aio_pika

    name = f"dt-test-{uid()}"
    bodies = [message(), message()]

    async def main() -> None:
        async with await aio_pika.connect(AMQP) as connection:
            channel = await connection.channel()
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
            publisher = open_publisher(AMQP)
            try:
                for body in bodies:
                    await publisher.publish(name, body)
            finally:
                await publisher.close()
            queue = await channel.get_queue(name, ensure=False)
            got = []
            while (m := await queue.get(fail=False, timeout=5)) is not None:
                await m.ack()
                got.append(m.body)
            assert got == bodies
            await channel.queue_delete(name)

    run(main)


def test_rabbitmq_exchange_slash_routing_key() -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    import aio_pika

    exchange_name, body = f"dt-test-{uid()}", message()

    async def main() -> None:
        connection = await aio_pika.connect(AMQP)
        publisher = open_publisher(AMQP)
        try:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC)
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(exchange, routing_key="orders.*")
            got: asyncio.Queue[Any] = asyncio.Queue()

            async def on_message(msg: Any) -> None:
                await msg.ack()
                await got.put(msg)

            await queue.consume(on_message)
            receipt = await publisher.publish(f"{exchange_name}/orders.created", body, headers={"h": "v"})
            assert receipt == {"exchange": exchange_name, "routing_key": "orders.created"}
            msg = await next_amqp(got)
            assert (msg.body, msg.routing_key, msg.exchange) == (body, "orders.created", exchange_name)
            assert msg.headers == {"h": "v"}

            with pytest.raises(ExecutionError, match=r"nobody\.listens"):  # unroutable: no queue is bound
                await publisher.publish(f"{exchange_name}/nobody.listens", body)
            with pytest.raises(ExecutionError, match="no-such-exchange"):  # the exchange is not declared for you
                await publisher.publish(f"no-such-exchange-{uid()}/orders.x", body)
            with pytest.raises(ValidationError):
                await publisher.publish(f"{exchange_name}/", body)
            await publisher.publish(f"{exchange_name}/orders.again", body)  # a new connection after the failures
            assert (await next_amqp(got)).routing_key == "orders.again"
        finally:
            await publisher.close()
            async with connection:
                await (await connection.channel()).exchange_delete(exchange_name)

    run(main)


def test_rabbitmq_refused_login_is_an_execution_error_without_the_password() -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    url = "amqp://guest:not-the-password@127.0.0.1:5672/"

    async def main() -> None:
        publisher = open_publisher(url)
        with pytest.raises(ExecutionError, match="ACCESS_REFUSED") as info:
            await publisher.publish("q", b"{}")
        assert "not-the-password" not in str(info.value)
        assert "amqp://guest:***@127.0.0.1:5672/" in str(info.value)
        await publisher.close()

    run(main)


def test_rabbitmq_reconnects_after_the_connection_or_channel_is_closed() -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    import aio_pika

    name = f"dt-test-{uid()}"
    bodies = [message() for _ in range(3)]

    async def main() -> None:
        publisher = RabbitMQPublisher(AMQP)
        try:
            await publisher.publish(name, bodies[0])
            assert publisher.connection is not None
            await publisher.connection.channel.close()
            await publisher.publish(name, bodies[1])
            assert publisher.connection is not None
            await publisher.connection.connection.close()
            await publisher.publish(name, bodies[2])
        finally:
            await publisher.close()
        async with await aio_pika.connect(AMQP) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            got = []
            while (m := await queue.get(fail=False, timeout=5)) is not None:
                await m.ack()
                got.append(m.body)
            assert got == bodies
            await channel.queue_delete(name)

    run(main)


# -- NATS JetStream ------------------------------------------------------------------------------


def test_nats_jetstream_creates_a_stream_and_dedupes_by_key() -> None:
    require_service("NATS", "127.0.0.1", 4222)
    import nats

    token = f"dttest{uid()}"
    subject, body = f"{token}.orders.created", message()

    async def main() -> None:
        nc = await nats.connect(NATS)
        js = nc.jetstream()
        publisher = open_publisher(NATS)
        try:
            sub = await nc.subscribe(subject)  # subscribe first
            receipt = await publisher.publish(subject, body, headers={"x-source": "ductape"}, key="run-1")
            assert receipt == {"stream": token, "seq": 1, "duplicate": False}
            assert stream_name_for(subject) == token
            msg = await sub.next_msg(timeout=5)
            assert msg.data == body
            assert msg.headers == {"x-source": "ductape", "Nats-Msg-Id": "run-1"}

            again = await publisher.publish(subject, body, key="run-1")  # a retry of the same run
            assert again == {"stream": token, "seq": 1, "duplicate": True}
            info = await js.stream_info(token)
            assert info.state.messages == 1
            assert info.config.subjects == [token, f"{token}.>"]
            stored = await js.get_msg(token, 1)
            assert stored.data == body
            assert stored.headers is not None and stored.headers["x-source"] == "ductape"

            other = await publisher.publish(f"{token}.x", b"2")  # no key: no dedupe header
            assert other == {"stream": token, "seq": 2, "duplicate": False}
            with pytest.raises(ValidationError):
                await publisher.publish(f"{token}.*", body)
        finally:
            await publisher.close()
            await js.delete_stream(token)
            await nc.close()

    run(main)


def test_nats_uses_the_stream_that_already_holds_the_subject() -> None:
    require_service("NATS", "127.0.0.1", 4222)
    import nats

    stream, subject = f"dt_custom_{uid()}", f"dttest{uid()}.events"

    async def main() -> None:
        nc = await nats.connect(NATS)
        js = nc.jetstream()
        publisher = open_publisher(NATS)
        try:
            await js.add_stream(name=stream, subjects=[subject])
            assert await publisher.publish(subject, b"{}") == {"stream": stream, "seq": 1, "duplicate": False}
        finally:
            await publisher.close()
            await js.delete_stream(stream)
            await nc.close()

    run(main)


def test_nats_concurrent_first_publishes_share_one_connection_and_stream() -> None:
    require_service("NATS", "127.0.0.1", 4222)
    import nats

    token = f"dttest{uid()}"

    async def main() -> None:
        publisher = NatsPublisher(NATS)
        try:
            receipts = await asyncio.gather(*(publisher.publish(f"{token}.n{i % 3}", b"{}") for i in range(20)))
            assert sorted(r["seq"] for r in receipts) == list(range(1, 21))
            assert {r["stream"] for r in receipts} == {token}
        finally:
            await publisher.close()
            nc = await nats.connect(NATS)
            await nc.jetstream().delete_stream(token)
            await nc.close()

    run(main)


def test_nats_reconnects_after_the_connection_is_closed() -> None:
    require_service("NATS", "127.0.0.1", 4222)
    import nats

    token = f"dttest{uid()}"
    subject = f"{token}.events"

    async def main() -> None:
        publisher = NatsPublisher(NATS)
        try:
            assert (await publisher.publish(subject, b"1"))["seq"] == 1
            link = publisher.connection
            assert link is not None
            await link.nc.close()
            assert (await publisher.publish(subject, b"2"))["seq"] == 2
            assert publisher.connection is not link
        finally:
            await publisher.close()
            nc = await nats.connect(NATS)
            await nc.jetstream().delete_stream(token)
            await nc.close()

    run(main)


# -- MQTT ----------------------------------------------------------------------------------------


async def next_mqtt(client: Any) -> Any:
    messages = aiter(client.messages)
    got = await asyncio.wait_for(anext(messages), 5)
    with pytest.raises(asyncio.TimeoutError):
        extra = await asyncio.wait_for(anext(messages), QUIET)
        pytest.fail(f"delivered more than once: {extra.payload!r}")
    return got


def test_mqtt_publishes_qos1_with_user_properties() -> None:
    require_service("Mosquitto", "127.0.0.1", 1883)
    import aiomqtt

    topic, body = f"dt-test/{uid()}/orders", message()

    async def main() -> None:
        async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as sub:
            await sub.subscribe(topic, qos=1)  # subscribe first
            publisher = open_publisher(MQTT)
            try:
                assert await publisher.publish(topic, body, headers={"x-source": "ductape", "k": "v"}) == {"qos": 1}
                msg = await next_mqtt(sub)
                assert msg.payload == body
                assert msg.qos == 1
                assert msg.properties.UserProperty == [("x-source", "ductape"), ("k", "v")]
                await publisher.publish(topic, body)  # no headers, no properties
                assert (await next_mqtt(sub)).payload == body
                with pytest.raises(ValidationError):
                    await publisher.publish("dt-test/+/orders", body)
            finally:
                await publisher.close()

    run(main)


def test_mqtt_reconnects_after_the_connection_is_closed() -> None:
    require_service("Mosquitto", "127.0.0.1", 1883)
    import aiomqtt

    topic = f"dt-test/{uid()}/events"

    async def main() -> None:
        async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as sub:
            await sub.subscribe(topic, qos=1)
            publisher = MqttPublisher(MQTT)
            try:
                await publisher.publish(topic, b"1")
                assert (await next_mqtt(sub)).payload == b"1"
                client = publisher.connection
                assert client is not None
                await client.__aexit__(None, None, None)  # disconnect under the publisher
                await publisher.publish(topic, b"2")
                assert (await next_mqtt(sub)).payload == b"2"
                assert publisher.connection is not client
            finally:
                await publisher.close()

    run(main)


# -- Kafka ---------------------------------------------------------------------------------------


def test_kafka_publishes_a_record() -> None:
    if not answers("127.0.0.1", 9092):
        pytest.skip("no Kafka server on this machine")
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

    topic, body = f"dt-test-{uid()}", message()

    async def main() -> None:
        publisher = open_publisher(KAFKA)
        try:
            receipt = await publisher.publish(topic, body, headers={"x-source": "ductape"}, key="run-1")
        finally:
            await publisher.close()
        assert receipt["topic"] == topic and receipt["offset"] == 0
        consumer = AIOKafkaConsumer(topic, bootstrap_servers="127.0.0.1:9092", auto_offset_reset="earliest")
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 20)
            assert (record.value, record.key) == (body, b"run-1")
            assert list(record.headers) == [("x-source", b"ductape")]
        finally:
            await consumer.stop()

    run(main)
