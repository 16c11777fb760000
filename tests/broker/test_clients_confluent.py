"""confluent-kafka (librdkafka) against the broker: produce, consume, groups, admin."""

from __future__ import annotations

import time

import pytest

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic  # noqa: E402

pytestmark = pytest.mark.clients
FAST = {"socket.timeout.ms": 10000, "topic.metadata.refresh.interval.ms": 1000}


def _consumer(bootstrap: str, group: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "fetch.wait.max.ms": 100,
        **FAST,
        **extra,
    }
    return Consumer(conf)


def _drain(consumer: Consumer, want: int, timeout_s: float = 30.0) -> list:
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < want and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        out.append(msg)
    return out


def _produce(bootstrap: str, topic: str, records: list[tuple], **conf) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **FAST, **conf})
    errors: list = []
    for key, value, headers in records:
        p.produce(
            topic,
            value=value,
            key=key,
            headers=headers,
            on_delivery=lambda err, msg: err and errors.append(err),
        )
    assert p.flush(30) == 0
    assert errors == []


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("idempotent", [False, True])
def test_produce_and_assign_consume(kafka_broker: str, codec: str, idempotent: bool) -> None:
    topic = f"ck-{codec}-{int(idempotent)}"
    records = [(b"k%d" % i, b"v%d" % i, [("h", b"%d" % i)]) for i in range(20)]
    records.append((b"tombstone", None, None))
    _produce(
        kafka_broker,
        topic,
        records,
        **{"compression.type": codec, "enable.idempotence": idempotent, "acks": "all"},
    )
    c = _consumer(kafka_broker, "unused")
    c.assign([TopicPartition(topic, 0, 0)])
    got = _drain(c, len(records))
    c.close()
    assert [(m.key(), m.value()) for m in got] == [(k, v) for k, v, _ in records]
    assert got[3].headers() == [("h", b"3")]
    assert [m.offset() for m in got] == list(range(len(records)))


def test_subscribe_in_group_and_commit(kafka_broker: str) -> None:
    _produce(kafka_broker, "ck-group", [(None, b"%d" % i, None) for i in range(10)])
    c = _consumer(kafka_broker, "g1")
    c.subscribe(["ck-group"])
    got = _drain(c, 10)
    assert [m.value() for m in got] == [b"%d" % i for i in range(10)]
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition("ck-group", 0)], timeout=10)
    assert committed[0].offset == 10
    c.close()


def test_deleted_topic_loses_its_committed_offsets(kafka_broker: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    admin.create_topics([NewTopic("ck-del", 1, 1)])["ck-del"].result(10)
    c = _consumer(kafka_broker, "g-del")
    c.commit(offsets=[TopicPartition("ck-del", 0, 7)], asynchronous=False)
    assert c.committed([TopicPartition("ck-del", 0)], timeout=10)[0].offset == 7
    admin.delete_topics(["ck-del"])["ck-del"].result(10)
    admin.create_topics([NewTopic("ck-del", 1, 1)])["ck-del"].result(10)
    assert c.committed([TopicPartition("ck-del", 0)], timeout=10)[0].offset < 0
    c.close()


def test_admin_create_list_describe_delete(kafka_broker: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    futures = admin.create_topics(
        [NewTopic("adm", 3, 1, config={"retention.ms": "3600000"}), NewTopic("adm-default", -1, -1)]
    )
    for fut in futures.values():
        fut.result(15)
    meta = admin.list_topics(timeout=10)
    assert len(meta.topics["adm"].partitions) == 3
    assert "adm-default" in meta.topics
    again = admin.create_topics([NewTopic("adm", 1, 1)])["adm"]
    with pytest.raises(ck.KafkaException) as err:
        again.result(15)
    assert err.value.args[0].code() == ck.KafkaError.TOPIC_ALREADY_EXISTS
    configs = admin.describe_configs([ConfigResource("topic", "adm")])
    desc = next(iter(configs.values())).result(15)
    assert desc["retention.ms"].value == "3600000"
    for fut in admin.create_partitions([NewPartitions("adm", 5)]).values():
        fut.result(15)
    assert len(admin.list_topics(timeout=10).topics["adm"].partitions) == 5
    for fut in admin.delete_topics(["adm"]).values():
        fut.result(15)
    assert "adm" not in admin.list_topics(timeout=10).topics


def test_two_consumers_split_partitions_and_rebalance_on_leave(kafka_broker: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    admin.create_topics([NewTopic("split", 4, 1)])["split"].result(15)
    assigned: dict[str, set] = {"a": set(), "b": set()}

    def tracker(name: str):
        def on_assign(consumer, partitions):
            assigned[name] = {p.partition for p in partitions}

        def on_revoke(consumer, partitions):
            assigned[name] = set()

        return {"on_assign": on_assign, "on_revoke": on_revoke}

    a = _consumer(kafka_broker, "split-group")
    b = _consumer(kafka_broker, "split-group")
    a.subscribe(["split"], **tracker("a"))
    b.subscribe(["split"], **tracker("b"))
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        a.poll(0.1)
        b.poll(0.1)
        if len(assigned["a"]) == 2 and len(assigned["b"]) == 2:
            break
    assert assigned["a"] | assigned["b"] == {0, 1, 2, 3}
    assert len(assigned["a"]) == 2 and len(assigned["b"]) == 2
    b.close()  # leaves the group: a takes every partition
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and assigned["a"] != {0, 1, 2, 3}:
        a.poll(0.1)
    assert assigned["a"] == {0, 1, 2, 3}
    a.close()
