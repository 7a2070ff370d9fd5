"""MESSAGEBROKER (PUBLISH) events: ``event_tag`` is ``broker_tag:topic_tag``; the input is the message."""

from __future__ import annotations

import json
from typing import Any

from ductape_jobs.executors.base import RunContext
from ductape_jobs.executors.brokers import PublisherPool
from ductape_jobs.executors.lookup import connection_url, locate
from ductape_jobs.models import JobEventTypes, Run
from ductape_jobs.products import Products


class BrokerExecutor:
    event_type = JobEventTypes.MESSAGEBROKER

    def __init__(self, products: Products) -> None:
        self.products = products
        self.pool = PublisherPool()

    async def execute(self, run: Run, ctx: RunContext) -> Any:
        product, ref = locate(self.products, run, ctx)
        assert ref.owner is not None
        broker = product.brokers[ref.owner]
        url = connection_url(self.products, product, "broker", ref.owner, run)
        message = json.dumps(ctx.input, separators=(",", ":"), default=str).encode()
        # The run id de-duplicates a retried publish where the broker supports it (NATS JetStream).
        publisher = self.pool.get(url)
        receipt = await publisher.publish(broker.topics[ref.name], message, key=run.id)
        return {"topic": broker.topics[ref.name], **receipt}

    async def close(self) -> None:
        await self.pool.close()
