"""The broker's metrics registry, read the way Prometheus reads it (text exposition), after
real clients worked against a real broker."""

from __future__ import annotations

import re

from prometheus_client import generate_latest

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.metrics import BrokerMetrics


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_requests_bytes_errors_and_partitions_are_reported(tmp_path) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    config = BrokerConfig.from_properties(
        {
            "log.dirs": str(tmp_path),
            "listeners": "PLAINTEXT://127.0.0.1:0",
            "group.initial.rebalance.delay.ms": "0",
        }
    )
    with BackgroundBroker(config) as background:
        assert background.broker is not None
        boot = background.bootstrap
        admin = AdminClient({"bootstrap.servers": boot})
        admin.create_topics([NewTopic("m", 2, 1)])["m"].result(30)
        producer = Producer({"bootstrap.servers": boot, "linger.ms": 1})
        for i in range(200):
            producer.produce("m", b"x" * 100, partition=i % 2)
        assert producer.flush(30) == 0
        consumer = Consumer(
            {"bootstrap.servers": boot, "group.id": "g", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe(["m"])
        got = 0
        for _ in range(300):
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got += 1
            if got == 200:
                break
        consumer.close()
        text = generate_latest(background.broker.metrics.registry).decode()
    assert got == 200
    produce = [
        float(v)
        for v in re.findall(
            r'^edplog_requests_total\{api="Produce",version="\d+"\} (\S+)$', text, re.M
        )
    ]
    assert sum(produce) >= 1
    assert re.search(r'^edplog_request_seconds_bucket\{api="Fetch",.*\} [1-9]', text, re.M)
    assert (_sample(text, "edplog_bytes_in_total", topic="m") or 0) > 200 * 100
    assert (_sample(text, "edplog_bytes_out_total", topic="m") or 0) > 200 * 100
    assert _sample(text, "edplog_log_end_offset", topic="m", partition="0") == 100
    assert _sample(text, "edplog_log_end_offset", topic="m", partition="1") == 100
    assert _sample(text, "edplog_partitions_offline") == 0
    assert (_sample(text, "edplog_flush_seconds_count") or 0) >= 1  # offset commits
    assert _sample(text, "edplog_connections") is not None


def test_a_disabled_registry_records_nothing() -> None:
    metrics = BrokerMetrics(enabled=False)
    metrics.request(0, 9, 0.001)
    metrics.bytes_in("t", 100)
    metrics.produce_error(2)
    text = generate_latest(metrics.registry).decode()
    assert "edplog_requests_total{" not in text and "edplog_bytes_in_total{" not in text
