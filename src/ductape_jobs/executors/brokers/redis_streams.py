"""redis://host:6379/0 (or rediss://): a message is one entry XADDed to the stream named by the topic.

The entry's field ``data`` holds the message and every header is one more field (so no header may
be called ``data``). ``key`` is not used: Redis streams have no de-duplication. The receipt is
``{"id": entry_id}``. A command that fails on a dead socket is sent once more on a new one.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ductape_jobs.errors import ValidationError
from ductape_jobs.executors.brokers.base import LazyPublisher

# redis-py has no reader task, so a socket the server closed is only found when a command fails on
# it: try that command once more, on a fresh socket (other brokers notice such a close before the
# next publish). Timeouts are not retried here.
_RETRY = Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))


class RedisStreamsPublisher(LazyPublisher[aioredis.Redis]):
    broker = "Redis"

    async def _connect(self) -> aioredis.Redis:
        client = aioredis.from_url(self.url, socket_connect_timeout=5, socket_timeout=10, retry=_RETRY)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return client

    async def _send(
        self, conn: aioredis.Redis, topic: str, message: bytes, headers: dict[str, str], key: str | None
    ) -> dict[str, Any]:
        if "data" in headers:
            raise ValidationError("headers", "'data' is the Redis stream field that holds the message")
        fields: dict[str | bytes, str | bytes] = {"data": message}
        fields.update(headers)
        entry_id = await conn.xadd(topic, fields)  # type: ignore[arg-type]
        return {"id": entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)}

    async def _disconnect(self, conn: aioredis.Redis) -> None:
        await conn.aclose()
