"""aiokafka as a test client: produce one record and read a topic's first records back."""

from __future__ import annotations

import asyncio
from typing import Any

TIMEOUT_S = 30


async def produce_then_read(topic: str, value: bytes, count: int, **conf: Any) -> list[bytes]:
    """Produce ``value`` to ``topic``, then the topic's first ``count`` values from the
    earliest offset, both with the aiokafka settings ``conf``."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    p = AIOKafkaProducer(**conf)
    await p.start()
    try:
        await p.send_and_wait(topic, value)
    finally:
        await p.stop()
    c = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **conf)
    await c.start()
    try:
        got: list[bytes] = []
        async with asyncio.timeout(TIMEOUT_S):
            while len(got) < count:
                got.append((await c.getone()).value)
        return got
    finally:
        await c.stop()
