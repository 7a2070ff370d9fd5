"""mqtt://user:password@host:1883 (or mqtts://, TLS, port 8883 by default): MQTT 5 through aiomqtt.

The message is published with QoS 1 (at least once: the call returns when the broker's PUBACK
arrives) and without the retain flag. Headers travel as MQTT 5 user properties; ``key`` is not used
(MQTT has no message key). The topic must not contain the wildcards ``+`` or ``#``. The receipt is
``{"qos": 1}``.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ductape_jobs.errors import ValidationError
from ductape_jobs.executors.brokers.base import LazyPublisher

TIMEOUT = 10.0


def make_client(url: str) -> aiomqtt.Client:
    """A not yet connected aiomqtt client for ``url`` (call inside the running loop)."""
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "mqtts"
    return aiomqtt.Client(
        parts.hostname or "localhost",
        parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=ssl.create_default_context() if tls else None,
        timeout=TIMEOUT,
    )


class MqttPublisher(LazyPublisher[aiomqtt.Client]):
    broker = "MQTT"

    async def _connect(self) -> aiomqtt.Client:
        client = make_client(self.url)
        await client.__aenter__()
        return client

    def _alive(self, conn: aiomqtt.Client) -> bool:
        return not conn._disconnected.done()  # aiomqtt has no public "is connected"

    async def _send(
        self, conn: aiomqtt.Client, topic: str, message: bytes, headers: dict[str, str], key: str | None
    ) -> dict[str, Any]:
        if "+" in topic or "#" in topic:
            raise ValidationError("topic", f"{topic!r}: MQTT wildcards '+' and '#' cannot be published to")
        properties = None
        if headers:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            for name, value in headers.items():
                properties.UserProperty = (name, value)  # each assignment appends one pair
        await conn.publish(topic, message, qos=1, properties=properties, timeout=TIMEOUT)
        return {"qos": 1}

    async def _disconnect(self, conn: aiomqtt.Client) -> None:
        await conn.__aexit__(None, None, None)
