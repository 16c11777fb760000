"""Real consumers of many partitions through fetch sessions: confluent-kafka (librdkafka,
Fetch v16 with topic ids) and kafka-python (which opens sessions), reading everything
produced before and while they consume, and the broker's metrics showing the sessions."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from prometheus_client import generate_latest

from edplog.testing import start_broker

pytestmark = pytest.mark.clients
PARTITIONS = 120
PER_PARTITION = 3


def _fetch_versions(broker: Any) -> dict[int, float]:
    text = generate_latest(broker.broker.metrics.registry).decode()
    out = {}
    for m in re.finditer(
        r'^edplog_requests_total\{api="Fetch",version="(\d+)"\} (\S+)$', text, re.M
    ):
        out[int(m.group(1))] = float(m.group(2))
    return out


def _gauge(broker: Any, name: str) -> float:
    text = generate_latest(broker.broker.metrics.registry).decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def _values(round_: int) -> dict[int, list[bytes]]:
    return {
        p: [b"%d-%d-%d" % (round_, p, i) for i in range(PER_PARTITION)] for p in range(PARTITIONS)
    }


@pytest.fixture
def many(tmp_path: Any) -> Any:
    broker = start_broker(tmp_path, num_partitions=PARTITIONS)
    try:
        yield broker
    finally:
        broker.stop()


def test_confluent_consumer_of_120_partitions_by_topic_id_sessionless(many: Any) -> None:
    """librdkafka assigns 120 partitions and reads 3 records from each, then 3 more per
    partition written while it consumes: every record arrives once and in order per
    partition, and it fetched with v13+ (topic ids). librdkafka opens no fetch session (it
    sends epoch -1), so none is cached for it."""
    ck = pytest.importorskip("confluent_kafka")
    boot = many.bootstrap
    producer = ck.Producer({"bootstrap.servers": boot, "linger.ms": 5})

    def produce(round_: int) -> None:
        for p, vals in _values(round_).items():
            for v in vals:
                producer.produce("many", value=v, partition=p)
        assert producer.flush(30) == 0

    produce(0)
    consumer = ck.Consumer(
        {
            "bootstrap.servers": boot,
            "group.id": "sess",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "socket.timeout.ms": 10000,
        }
    )
    try:
        consumer.assign([ck.TopicPartition("many", p, 0) for p in range(PARTITIONS)])
        got: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        want = {p: _values(0)[p] + _values(1)[p] for p in range(PARTITIONS)}
        deadline = time.monotonic() + 60
        produced_more = False
        sessions_seen = 0.0
        while got != want and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got[msg.partition()].append(msg.value())
            if not produced_more and sum(map(len, got.values())) >= PARTITIONS * PER_PARTITION:
                sessions_seen = _gauge(many, "edplog_fetch_sessions")
                produce(1)
                produced_more = True
        assert got == want
        assert sessions_seen == 0
    finally:
        consumer.close()
        producer.flush(5)
    versions = _fetch_versions(many)
    assert versions and max(versions) >= 13, versions


def test_kafka_python_consumer_of_120_partitions_uses_sessions(many: Any) -> None:
    """kafka-python assigns 120 partitions and reads everything written before and while it
    consumes, exactly once and in order per partition; the broker held its session."""
    kafka = pytest.importorskip("kafka")
    boot = many.bootstrap
    producer = kafka.KafkaProducer(bootstrap_servers=boot, linger_ms=5, request_timeout_ms=10000)

    def produce(round_: int) -> None:
        for p, vals in _values(round_).items():
            for v in vals:
                producer.send("many", value=v, partition=p)
        producer.flush(30)

    produce(0)
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=boot,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        request_timeout_ms=10000,
    )
    try:
        consumer.assign([kafka.TopicPartition("many", p) for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        got: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        want = {p: _values(0)[p] + _values(1)[p] for p in range(PARTITIONS)}
        deadline = time.monotonic() + 60
        produced_more = False
        sessions_seen = 0.0
        while got != want and time.monotonic() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=200).items():
                got[tp.partition].extend(m.value for m in msgs)
            if not produced_more and sum(map(len, got.values())) >= PARTITIONS * PER_PARTITION:
                sessions_seen = _gauge(many, "edplog_fetch_sessions")
                produce(1)
                produced_more = True
        assert got == want
        assert sessions_seen >= 1
    finally:
        consumer.close()
        producer.close(5)
