"""Replication in a real cluster: brokers in this process on their own loopback addresses,
a real ZooKeeper, real clients (confluent-kafka) and edplog's own client for raw answers."""

from __future__ import annotations

import pytest
from cluster_helpers import InProcessCluster, wait_for
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from edplog.client import Client, KafkaError
from edplog.cluster import zookeeper_server
from edplog.records import build_batch

pytestmark = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)


@pytest.fixture
def cluster(zookeeper, tmp_path):
    c = InProcessCluster(zookeeper, tmp_path, 3)
    c.start_all()
    try:
        yield c
    finally:
        c.stop_all()


def create(cluster, name, partitions=1, rf=3, **config):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, partitions, rf, config={k.replace("_", "."): v for k, v in config.items()})]
    )
    futures[name].result(30)
    for p in range(partitions):
        cluster.wait_isr(name, p, rf)


def produce(cluster, topic, values, **conf):
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            **conf,
        }
    )
    acked = {}
    errors = []

    def report(err, msg):
        if err is None:
            acked[msg.value()] = (msg.partition(), msg.offset())
        else:
            errors.append(err)

    for v in values:
        producer.produce(topic, v, on_delivery=report)
        producer.poll(0)
    assert producer.flush(60) == 0
    return acked, errors


def read_all(cluster, topic, partition=0):
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        tp = TopicPartition(topic, partition, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([tp])
        out = []
        while len(out) < high:
            msg = consumer.poll(10)
            assert msg is not None, f"read stopped at {len(out)} of {high}"
            if msg.error():
                raise KafkaException(msg.error())
            out.append((msg.offset(), msg.value()))
        return out
    finally:
        consumer.close()


def test_metadata_lists_every_broker_and_a_full_isr(cluster):
    """A topic created with replication factor 3 on 3 brokers: Metadata lists the three
    brokers and the controller, and each partition a leader among its three replicas with
    all three in sync."""
    create(cluster, "md", partitions=3)
    md = cluster.metadata(["md"])
    assert sorted(b.node_id for b in md.brokers) == [1, 2, 3]
    assert md.controller_id in (1, 2, 3)
    leaders = set()
    for p in md.topics["md"].partitions:
        assert sorted(p.replicas) == [1, 2, 3]
        assert sorted(p.isr) == [1, 2, 3]
        assert p.leader_id in p.replicas
        leaders.add(p.leader_id)
    assert len(leaders) == 3, "placement spreads the leaders over the brokers"


def test_acks_all_records_are_on_every_replica_byte_for_byte(cluster):
    """1000 records produced with acks=all: every acknowledged record is on all three
    replicas, and the three logs hold the same bytes (offsets, epochs and all)."""
    create(cluster, "same")
    values = [f"v{i}".encode() for i in range(1000)]
    acked, errors = produce(cluster, "same", values)
    assert not errors and len(acked) == 1000
    end = max(off for _, off in acked.values()) + 1
    wait_for(
        lambda: all(cluster.local_log(b, "same", 0).log_end_offset >= end for b in (1, 2, 3)),
        what="every replica to reach the log end",
    )
    images = {b: cluster.local_log(b, "same", 0).read_batches(0, 1 << 24) for b in (1, 2, 3)}
    assert images[1] == images[2] == images[3]
    assert [v for _, v in read_all(cluster, "same")] == values


def test_a_follower_answers_not_leader(cluster):
    """Produce and consumer Fetch sent to a broker that only follows the partition get
    NOT_LEADER_OR_FOLLOWER (6): clients then find the leader in Metadata."""
    create(cluster, "nl")
    leader = cluster.partition("nl", 0).leader_id
    follower = next(b for b in (1, 2, 3) if b != leader)
    with Client(cluster.brokers[follower].bootstrap) as c:
        with pytest.raises(KafkaError) as info:
            c.produce("nl", 0, build_batch([(None, b"x")]), acks=1)
        assert info.value.error_code == 6
        (res,) = c.fetch([("nl", 0, 0)], max_wait_ms=0)
        assert res.error_code == 6


def test_leader_stop_fails_over_with_no_acknowledged_loss(cluster):
    """The leader stops while an idempotent acks=all producer runs: a new leader is elected
    from the ISR, the producer's retries land there, and a full read finds every
    acknowledged record exactly once."""
    create(cluster, "fo")
    first, errors = produce(cluster, "fo", [f"a{i}".encode() for i in range(300)])
    assert not errors
    leader = cluster.partition("fo", 0).leader_id
    cluster.stop(leader)
    wait_for(
        lambda: cluster.partition("fo", 0).leader_id not in (-1, leader),
        what="a new leader",
    )
    second, errors = produce(cluster, "fo", [f"b{i}".encode() for i in range(300)])
    assert not errors
    read = [v for _, v in read_all(cluster, "fo")]
    assert sorted(read) == sorted([*first, *second])
    assert len(read) == len(set(read)) == 600


def test_acks_all_is_refused_below_min_insync_replicas(zookeeper, tmp_path):
    """Replication factor 2 with min.insync.replicas=2: with one replica's broker stopped,
    the ISR shrinks to the leader and acks=all is refused with NOT_ENOUGH_REPLICAS (19);
    acks=1 is still taken."""
    with InProcessCluster(zookeeper, tmp_path, 2, default_replication_factor="2") as c:
        create(c, "min", rf=2)
        leader = c.partition("min", 0).leader_id
        other = 1 if leader == 2 else 2
        c.stop(other)
        c.wait_isr("min", 0, 1)
        with Client(c.brokers[leader].bootstrap) as client:
            with pytest.raises(KafkaError) as info:
                client.produce("min", 0, build_batch([(None, b"x")]), acks=-1)
            assert info.value.error_code == 19
            assert client.produce("min", 0, build_batch([(None, b"y")]), acks=1) >= 0
