"""amqp://user:password@host:5672/vhost (or amqps://): RabbitMQ through aio-pika, with publisher confirms.

Which exchange the topic names:

* ``"orders"`` (no ``/``): the default exchange, routing key ``orders``. The queue ``orders`` is
  declared durable first (once per connection) so that the message is kept; if a queue of that
  name already exists with other arguments (a quorum queue, a TTL...), it is used as it is.
* ``"billing/invoice.paid"``: the exchange ``billing`` (which must already exist; it is not
  declared) with routing key ``invoice.paid``. Only the first ``/`` splits.

Messages are persistent and published ``mandatory``: a message that no queue takes is an error, as
is a nack from the broker. Headers become AMQP headers and ``key`` the message-id. The receipt is
``{"exchange": ..., "routing_key": ...}`` (``""`` for the default exchange).
"""

from __future__ import annotations

from typing import Any

import aio_pika
import aio_pika.abc
import aiormq.exceptions
from msgspec import Struct, field

from ductape_jobs.errors import ValidationError
from ductape_jobs.executors.brokers.base import LazyPublisher

TIMEOUT = 10.0


class Link(Struct):
    connection: aio_pika.abc.AbstractConnection
    channel: aio_pika.abc.AbstractChannel
    queues: set[str] = field(default_factory=set)
    exchanges: dict[str, aio_pika.abc.AbstractExchange] = field(default_factory=dict)


def split_topic(topic: str) -> tuple[str, str]:
    """``(exchange, routing_key)`` for a topic; the default exchange is ``""``."""
    exchange, sep, routing_key = topic.partition("/")
    if not sep:
        return "", topic
    if not exchange or not routing_key:
        raise ValidationError("topic", f"{topic!r}: 'exchange/routing.key' needs both parts")
    return exchange, routing_key


class RabbitMQPublisher(LazyPublisher[Link]):
    broker = "RabbitMQ"

    async def _connect(self) -> Link:
        connection = await aio_pika.connect(
            self.url, timeout=TIMEOUT, client_properties={"connection_name": "ductape-jobs"}
        )
        try:
            return Link(connection, await self._channel(connection))
        except BaseException:
            await connection.close()
            raise

    @staticmethod
    async def _channel(connection: aio_pika.abc.AbstractConnection) -> aio_pika.abc.AbstractChannel:
        return await connection.channel(publisher_confirms=True, on_return_raises=True)

    def _alive(self, conn: Link) -> bool:
        return not conn.connection.is_closed and not conn.channel.is_closed

    async def _send(
        self, conn: Link, topic: str, message: bytes, headers: dict[str, str], key: str | None
    ) -> dict[str, Any]:
        exchange_name, routing_key = split_topic(topic)
        if exchange_name:
            exchange = conn.exchanges.get(exchange_name)
            if exchange is None:  # passive: fails if the exchange does not exist
                exchange = await conn.channel.get_exchange(exchange_name, ensure=True)
                conn.exchanges[exchange_name] = exchange
        else:
            if routing_key not in conn.queues:
                await self._declare_queue(conn, routing_key)
                conn.queues.add(routing_key)
            exchange = conn.channel.default_exchange
        body = aio_pika.Message(
            message,
            headers=dict(headers) or None,
            message_id=key,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(body, routing_key=routing_key, mandatory=True, timeout=TIMEOUT)
        return {"exchange": exchange_name, "routing_key": routing_key}

    async def _declare_queue(self, conn: Link, queue: str) -> None:
        try:
            await conn.channel.declare_queue(queue, durable=True, timeout=TIMEOUT)
        except aiormq.exceptions.ChannelPreconditionFailed:
            # The queue exists with other arguments and keeps messages as it is; the broker closed
            # the channel over the mismatch, so open another.
            conn.channel = await self._channel(conn.connection)
            conn.exchanges.clear()

    async def _disconnect(self, conn: Link) -> None:
        await conn.connection.close()
