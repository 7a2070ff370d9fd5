"""nats://host:4222 (user:password@ and several comma-separated servers work too): NATS JetStream.

The message is published with ``js.publish`` and the server's ack is awaited, so it is stored in a
stream. Before the first publish to a subject (once per connection) the stream holding that subject
is looked up; if none does, a stream named after the subject's first token is created covering
``<token>`` and ``<token>.>`` (``orders.created`` -> stream ``orders``; characters a stream name
cannot hold become ``_``). With ``key``, the ``Nats-Msg-Id`` header is set so JetStream drops a
retried duplicate within the stream's duplicate window (the receipt then says ``duplicate``).
The receipt is ``{"stream": ..., "seq": ..., "duplicate": bool}``.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import nats.errors
import nats.js.errors
from msgspec import Struct, field
from nats.aio.client import Client
from nats.js import JetStreamContext

from ductape_jobs.errors import ValidationError, describe
from ductape_jobs.executors.brokers.base import LazyPublisher

TIMEOUT = 10.0
_BAD_STREAM_CHARS = re.compile(r"[\s.*>/\\]")


class Link(Struct):
    nc: Client
    js: JetStreamContext
    subjects: set[str] = field(default_factory=set)


def stream_name_for(subject: str) -> str:
    """The name of the stream created for ``subject`` when no stream holds it."""
    return _BAD_STREAM_CHARS.sub("_", subject.split(".", 1)[0])


def check_subject(subject: str) -> None:
    tokens = subject.split(".")
    if any(not t or t in ("*", ">") or any(c.isspace() for c in t) for t in tokens):
        raise ValidationError("topic", f"{subject!r} is not a NATS subject one can publish to")


class NatsPublisher(LazyPublisher[Link]):
    broker = "NATS"

    async def _connect(self) -> Link:
        # allow_reconnect=False only stops reconnects after a connection was made; the attempt caps stop
        # the first connect from cycling through the servers for minutes.
        seen: list[Exception] = []

        async def remember(exc: Exception) -> None:  # instead of nats-py logging every socket error
            seen[:] = [exc]

        nc = Client()
        try:
            await nc.connect(
                self.url.split(","),
                name="ductape-jobs",
                allow_reconnect=False,
                connect_timeout=5,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                error_cb=remember,
            )
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            if isinstance(exc, nats.errors.NoServersError):
                why = describe(seen[0]) if seen else "none tried"
                raise ConnectionError(f"no NATS server answered: {why}") from None
            raise
        return Link(nc, nc.jetstream(timeout=TIMEOUT))

    def _alive(self, conn: Link) -> bool:
        return conn.nc.is_connected

    async def _send(
        self, conn: Link, topic: str, message: bytes, headers: dict[str, str], key: str | None
    ) -> dict[str, Any]:
        check_subject(topic)
        if topic not in conn.subjects:
            await self._ensure_stream(conn.js, topic)
            conn.subjects.add(topic)
        if key is not None:
            headers["Nats-Msg-Id"] = key
        ack = await conn.js.publish(topic, message, timeout=TIMEOUT, headers=headers or None)
        return {"stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)}

    @staticmethod
    async def _ensure_stream(js: JetStreamContext, subject: str) -> None:
        try:
            await js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            token = subject.split(".", 1)[0]
            await js.add_stream(name=stream_name_for(subject), subjects=[token, f"{token}.>"])

    async def _disconnect(self, conn: Link) -> None:
        await conn.nc.close()
