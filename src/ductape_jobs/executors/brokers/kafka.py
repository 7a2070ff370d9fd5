"""kafka://host:9092 (several brokers: kafka://host1:9092,host2:9092): Kafka through aiokafka.

The producer waits for all in-sync replicas (``acks="all"``) before ``publish`` returns. ``key``
becomes the record key (so retries of one run land in the same partition) and headers become record
headers (UTF-8 values). The receipt is ``{"topic": ..., "partition": ..., "offset": ...}``.
Credentials in the URL are not supported (plaintext listeners only).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from ductape_jobs.errors import ValidationError
from ductape_jobs.executors.brokers.base import LazyPublisher

TIMEOUT_MS = 10_000


def bootstrap_servers(url: str) -> list[str]:
    netloc = urlsplit(url).netloc
    if "@" in netloc:
        raise ValidationError("broker", "kafka:// URLs take no credentials (plaintext listeners only)")
    return [h if ":" in h else f"{h}:9092" for h in netloc.split(",") if h]


class KafkaPublisher(LazyPublisher[Any]):
    broker = "Kafka"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.servers = bootstrap_servers(url)

    async def _connect(self) -> Any:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.servers,
            client_id="ductape-jobs",
            acks="all",
            request_timeout_ms=TIMEOUT_MS,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    def _alive(self, conn: Any) -> bool:
        return not getattr(conn, "_closed", False)

    async def _send(
        self, conn: Any, topic: str, message: bytes, headers: dict[str, str], key: str | None
    ) -> dict[str, Any]:
        record = await conn.send_and_wait(
            topic,
            message,
            key=key.encode() if key is not None else None,
            headers=[(name, value.encode()) for name, value in headers.items()] or None,
        )
        return {"topic": record.topic, "partition": record.partition, "offset": record.offset}

    async def _disconnect(self, conn: Any) -> None:
        await conn.stop()
