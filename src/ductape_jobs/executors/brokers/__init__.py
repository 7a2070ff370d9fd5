"""Publish a MESSAGEBROKER (PUBLISH) event's message to a broker, picked by the scheme of its URL.

- ``redis[s]://host:6379/0``: XADD to the stream ``topic`` (``redis_streams``); receipt ``id``.
- ``amqp[s]://user:pw@host:5672/vhost``: RabbitMQ with publisher confirms; ``topic`` is a queue on the
  default exchange or ``exchange/routing.key`` (``rabbitmq``); receipt ``exchange``, ``routing_key``.
- ``nats://host:4222``: NATS JetStream, a stream is created if none holds the subject
  (``nats_jetstream``); receipt ``stream``, ``seq``, ``duplicate``.
- ``mqtt[s]://host:1883``: MQTT 5, QoS 1 (``mqtt``); receipt ``qos``.
- ``kafka://host:9092[,host2:9092]``: Kafka, acks=all (``kafka``); receipt ``topic``, ``partition``, ``offset``.

Every publisher connects on its first ``publish`` and reuses the connection; a dead connection is
replaced on the next call. Client-library errors become a retryable ``ExecutionError`` naming the
URL (password hidden) and the topic. The client libraries are the optional extra
``ductape-jobs[brokers]``; a missing one is reported by ``open_publisher`` as a ``ValidationError``.
A connection is closed when the event loop it was made in ends (``asyncio.run`` cancels what is left),
so a pool can serve one ``asyncio.run`` after another: each loop connects again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from ductape_jobs.errors import ValidationError
from ductape_jobs.executors.brokers.base import LazyPublisher
from ductape_jobs.extras import require
from ductape_jobs.redaction import redact_url

EXTRA = "ductape-jobs[brokers]"  # the extra that installs the client libraries


class Publisher(Protocol):
    async def publish(
        self, topic: str, message: bytes, *, headers: dict[str, str] | None = None, key: str | None = None
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def _redis(url: str) -> Publisher:
    from ductape_jobs.executors.brokers.redis_streams import RedisStreamsPublisher

    return RedisStreamsPublisher(url)


def _amqp(url: str) -> Publisher:
    from ductape_jobs.executors.brokers.rabbitmq import RabbitMQPublisher

    return RabbitMQPublisher(url)


def _nats(url: str) -> Publisher:
    from ductape_jobs.executors.brokers.nats_jetstream import NatsPublisher

    return NatsPublisher(url)


def _mqtt(url: str) -> Publisher:
    from ductape_jobs.executors.brokers.mqtt import MqttPublisher

    return MqttPublisher(url)


def _kafka(url: str) -> Publisher:
    from ductape_jobs.executors.brokers.kafka import KafkaPublisher

    return KafkaPublisher(url)


# scheme -> (factory, the import name of the client library it needs)
SCHEMES: dict[str, tuple[Callable[[str], Publisher], str]] = {
    "redis": (_redis, "redis"),
    "rediss": (_redis, "redis"),
    "amqp": (_amqp, "aio_pika"),
    "amqps": (_amqp, "aio_pika"),
    "nats": (_nats, "nats"),
    "mqtt": (_mqtt, "aiomqtt"),
    "mqtts": (_mqtt, "aiomqtt"),
    "kafka": (_kafka, "aiokafka"),
}


def open_publisher(url: str) -> Publisher:
    """A publisher for ``url`` (not yet connected). Raises ``ValidationError("broker", ...)`` for a URL
    with an unknown scheme or no host, or when the scheme's client library is not installed."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.scheme:
        raise ValidationError("broker", "is not a broker URL such as redis://host:6379/0 (it has no scheme://)")
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ValidationError(
            "broker",
            f"unknown broker scheme {scheme + '://'!r} in {redact_url(url)} (known: {known}; pip extra {EXTRA})",
        )
    if not parts.netloc.rpartition("@")[2]:
        raise ValidationError("broker", f"{redact_url(url)} names no host")
    factory, package = SCHEMES[scheme]
    require(package, "brokers", f"{scheme}://", error=lambda message: ValidationError("broker", message))
    return factory(url)


class PublisherPool:
    """One lazily connected publisher per URL, reused by every run that publishes there."""

    def __init__(self) -> None:
        self._publishers: dict[str, Publisher] = {}

    def get(self, url: str) -> Publisher:
        publisher = self._publishers.get(url)
        if publisher is None:
            publisher = self._publishers[url] = open_publisher(url)
        return publisher

    def __len__(self) -> int:
        return len(self._publishers)

    async def close(self) -> None:
        publishers, self._publishers = list(self._publishers.values()), {}
        await asyncio.gather(*(p.close() for p in publishers), return_exceptions=True)


__all__ = ["EXTRA", "SCHEMES", "LazyPublisher", "Publisher", "PublisherPool", "open_publisher", "redact_url"]
