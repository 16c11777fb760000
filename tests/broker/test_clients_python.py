"""kafka-python 3 and aiokafka against the broker, each with its default settings."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.clients


def test_kafka_python_default_producer_is_idempotent_and_consumer_groups(kafka_broker: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_broker, request_timeout_ms=10000)
    admin.create_topics([NewTopic("kp", 2, 1)])
    assert "kp" in admin.list_topics()
    producer = KafkaProducer(
        bootstrap_servers=kafka_broker, compression_type="gzip", request_timeout_ms=10000
    )
    assert producer.config["enable_idempotence"]
    futures = [
        producer.send(
            "kp", key=b"k%d" % (i % 2), value=b"v%d" % i, headers=[("h", b"x")], partition=i % 2
        )
        for i in range(10)
    ]
    futures.append(producer.send("kp", key=b"null", value=None, partition=0))
    offsets = [f.get(timeout=15).offset for f in futures]
    assert offsets[0:10:2] == list(range(5)) and offsets[10] == 5
    producer.close(timeout=10)

    consumer = KafkaConsumer(
        "kp",
        bootstrap_servers=kafka_broker,
        group_id="kp-group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=100,
    )
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 11 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    consumer.commit()
    consumer.close()
    assert sorted(r.value for r in got if r.value) == sorted(b"v%d" % i for i in range(10))
    assert [r.value for r in got if r.key == b"null"] == [None]
    assert all(r.headers == [("h", b"x")] for r in got if r.value)
    listed = admin.list_groups()
    assert "kp-group" in repr(listed)
    offsets = admin.list_group_offsets("kp-group")
    assert "kp" in repr(offsets)
    admin.delete_topics(["kp"])
    assert "kp" not in admin.list_topics()
    admin.close()


def test_aiokafka_producer_and_group_consumer(kafka_broker: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def main() -> list:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_broker,
            compression_type="lz4",
            acks="all",
            request_timeout_ms=10000,
        )
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(
                    "aio", value=b"a%d" % i, key=b"k", headers=[("n", b"%d" % i)]
                )
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "aio",
            bootstrap_servers=kafka_broker,
            group_id="aio-g",
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        got: list = []
        try:
            async with asyncio.timeout(30):
                async for msg in consumer:
                    got.append(msg)
                    if len(got) == 10:
                        break
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(main())
    assert [m.value for m in got] == [b"a%d" % i for i in range(10)]
    assert got[4].headers == (("n", b"4"),)
