"""The consumer group protocol (KIP-848) with librdkafka (confluent-kafka,
``group.protocol=consumer``) against a real broker: consume, leave, a killed member, scaling
under load with manual commits, and groups that refuse the other protocol."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import Any

import pytest
from broker_helpers import RawClient, create_topic
from docs_examples import example, run_as_pytest

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

pytestmark = pytest.mark.clients

#: Short consumer-protocol timers, so a lost member is noticed in seconds.
SHORT = {
    "group_consumer_session_timeout_ms": 3000,
    "group_consumer_min_session_timeout_ms": 1000,
    "group_consumer_heartbeat_interval_ms": 300,
    "group_consumer_min_heartbeat_interval_ms": 100,
}


def _consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000,
            **extra,
        }
    )


def _produce(bootstrap: str, topic: str, count: int, partitions: int, start: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    for i in range(start, start + count):
        p.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert p.flush(30) == 0


def _assigned(consumer: Consumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


def _poll_until(consumers: list[Consumer], done: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        for c in consumers:
            msg = c.poll(0.05)
            assert msg is None or msg.error() is None, msg.error()
    assert done(), "condition not reached in time"


def _heartbeat(group: str, member_id: str, epoch: int, topics: list[str] | None) -> dict:
    return {
        "group_id": group,
        "member_id": member_id,
        "member_epoch": epoch,
        "instance_id": None,
        "rack_id": None,
        "rebalance_timeout_ms": 5000 if epoch == 0 else -1,
        "subscribed_topic_names": topics,
        "subscribed_topic_regex": None,
        "server_assignor": None,
        "topic_partitions": [] if epoch == 0 else None,
    }


def test_consumer_protocol_member_joins_consumes_and_commits(kafka_broker_factory: Any) -> None:
    """One librdkafka member with group.protocol=consumer gets every partition, reads all 60
    records and commits; the group is listed with type consumer and described (69) as Stable
    with the member at the group epoch."""
    broker = kafka_broker_factory(**SHORT)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-a", 3)
    _produce(broker.bootstrap, "kip848-a", 60, 3)
    c = _consumer(broker.bootstrap, "g-a")
    c.subscribe(["kip848-a"])
    seen: list[tuple[int, int]] = []

    def read_all() -> bool:
        msg = c.poll(0.1)
        if msg is not None:
            assert msg.error() is None, msg.error()
            seen.append((msg.partition(), msg.offset()))
        return len(seen) >= 60

    _poll_until([], read_all)
    assert sorted(Counter(seen).values()) == [1] * 60
    assert _assigned(c) == {0, 1, 2}
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition("kip848-a", p) for p in range(3)], timeout=10)
    assert [tp.offset for tp in committed] == [20, 20, 20]
    with RawClient(broker.bootstrap) as raw:
        desc = raw.call(69, 0, {"group_ids": ["g-a"], "include_authorized_operations": False})
        listed = raw.call(16, 5, {"states_filter": [], "types_filter": ["consumer"]})
    group = desc["groups"][0]
    assert group["error_code"] == 0 and group["group_state"] == "Stable"
    assert [m["member_epoch"] for m in group["members"]] == [group["group_epoch"]]
    assert [(g["group_id"], g["group_type"]) for g in listed["groups"]] == [("g-a", "consumer")]
    c.close()


def test_leaving_member_hands_its_partitions_to_the_other(kafka_broker_factory: Any) -> None:
    """Two members share four partitions; when one closes (leave, epoch -1) the other owns
    all four."""
    broker = kafka_broker_factory(**SHORT)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-b", 4)
    a, b = _consumer(broker.bootstrap, "g-b"), _consumer(broker.bootstrap, "g-b")
    a.subscribe(["kip848-b"])
    b.subscribe(["kip848-b"])
    _poll_until([a, b], lambda: len(_assigned(a)) == 2 and len(_assigned(b)) == 2)
    assert _assigned(a) | _assigned(b) == {0, 1, 2, 3}
    b.close()
    _poll_until([a], lambda: _assigned(a) == {0, 1, 2, 3})
    a.close()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                  "group.protocol": "consumer", "enable.auto.commit": False})
    c.subscribe([sys.argv[3]])
    deadline = time.monotonic() + 60
    told = False
    while time.monotonic() < deadline:
        c.poll(0.1)
        if c.assignment() and not told:
            print("assigned", flush=True)
            told = True
    """
)


def test_killed_member_loses_its_partitions_after_the_session_timeout(
    kafka_broker_factory: Any,
) -> None:
    """A member in a child process is killed with SIGKILL (no leave is sent); after the
    broker's 3 s session timeout the surviving member owns every partition."""
    broker = kafka_broker_factory(**SHORT)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-c", 4)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, broker.bootstrap, "g-c", "kip848-c"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "assigned"
        a = _consumer(broker.bootstrap, "g-c")
        a.subscribe(["kip848-c"])
        _poll_until([a], lambda: len(_assigned(a)) == 2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        _poll_until([a], lambda: _assigned(a) == {0, 1, 2, 3}, timeout_s=20)
        a.close()
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)


class Worker:
    """A member that records every record it processes and commits what it processed,
    synchronously, before it gives a partition up."""

    def __init__(self, bootstrap: str, group: str, topic: str, seen: Counter) -> None:
        self.seen = seen
        self.stale = 0
        self.next: dict[int, int] = {}
        self.c = _consumer(bootstrap, group)
        self.c.subscribe([topic], on_revoke=self._on_revoke)
        self.topic = topic

    def _send(self, offsets: list[TopicPartition]) -> None:
        """Commit synchronously. A commit racing an epoch bump (the heartbeat that moved the
        member on is answered but not yet seen by the client) gets STALE_MEMBER_EPOCH, as
        from Kafka; like real applications, retry once the client has the new epoch."""
        for _ in range(50):
            try:
                self.c.commit(offsets=offsets, asynchronous=False)
                return
            except ck.KafkaException as exc:
                if exc.args[0].code() != KafkaError.STALE_MEMBER_EPOCH:
                    raise
                self.stale += 1
                time.sleep(0.02)
        raise AssertionError("commit stayed stale")

    def _commit(self, partitions: list[int]) -> None:
        offsets = [
            TopicPartition(self.topic, p, self.next[p]) for p in partitions if p in self.next
        ]
        if offsets:
            self._send(offsets)
        for p in partitions:
            self.next.pop(p, None)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit([tp.partition for tp in partitions])

    def poll(self) -> None:
        msg = self.c.poll(0.02)
        if msg is None:
            return
        assert msg.error() is None, msg.error()
        self.seen[(msg.partition(), msg.offset())] += 1
        self.next[msg.partition()] = msg.offset() + 1
        if msg.offset() % 10 == 0:
            self._commit_current()

    def _commit_current(self) -> None:
        offsets = [TopicPartition(self.topic, p, o) for p, o in self.next.items()]
        if offsets:
            self._send(offsets)

    def close(self) -> None:
        self._commit_current()
        self.c.close()


def test_scaling_one_three_one_under_load_processes_every_record_once(
    kafka_broker_factory: Any,
) -> None:
    """Records are produced in rounds while the group grows from 1 to 3 members and shrinks
    back to 1; every member commits what it processed before it gives a partition up. At the
    end each produced (partition, offset) was processed exactly once."""
    broker = kafka_broker_factory(**SHORT)
    topic, parts = "kip848-d", 6
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, topic, parts)
    seen: Counter = Counter()
    produced = 0
    workers = [Worker(broker.bootstrap, "g-d", topic, seen)]

    def pump(rounds: int) -> None:
        nonlocal produced
        for _ in range(rounds):
            _produce(broker.bootstrap, topic, 100, parts, produced)
            produced += 100
            for _ in range(15):
                for w in workers:
                    w.poll()

    pump(3)
    workers.append(Worker(broker.bootstrap, "g-d", topic, seen))
    pump(2)
    workers.append(Worker(broker.bootstrap, "g-d", topic, seen))
    pump(3)
    deadline = time.monotonic() + 20
    while not all(len(_assigned(w.c)) == 2 for w in workers) and time.monotonic() < deadline:
        for w in workers:
            w.poll()
    assert sorted(len(_assigned(w.c)) for w in workers) == [2, 2, 2]  # uniform: 6 over 3
    pump(2)
    assert all(w.next for w in workers)  # each of the three processed records of its own
    for w in workers[1:]:
        w.close()
    workers = workers[:1]
    pump(3)
    deadline = time.monotonic() + 25
    while sum(seen.values()) < produced and time.monotonic() < deadline:
        workers[0].poll()
    workers[0].close()
    assert len(seen) == produced
    duplicates = {k: n for k, n in seen.items() if n != 1}
    assert duplicates == {}


def test_classic_member_is_refused_by_a_consumer_group(kafka_broker_factory: Any) -> None:
    """A classic (JoinGroup) consumer of a group that has a consumer-protocol member is
    refused with INCONSISTENT_GROUP_PROTOCOL and never gets partitions; the member keeps all."""
    broker = kafka_broker_factory(**SHORT)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-e", 2)
    modern = _consumer(broker.bootstrap, "g-e")
    modern.subscribe(["kip848-e"])
    _poll_until([modern], lambda: _assigned(modern) == {0, 1})
    classic = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "g-e",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    classic.subscribe(["kip848-e"])
    errors: list[int] = []
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        msg = classic.poll(0.1)
        modern.poll(0.01)
        if msg is not None and msg.error() is not None:
            errors.append(msg.error().code())
    assert errors == [KafkaError.INCONSISTENT_GROUP_PROTOCOL]
    assert _assigned(classic) == set() and _assigned(modern) == {0, 1}
    classic.close()
    modern.close()


def test_consumer_protocol_member_is_refused_by_a_classic_group(
    kafka_broker_factory: Any,
) -> None:
    """While a classic member holds a group, ConsumerGroupHeartbeat for it answers
    GROUP_ID_NOT_FOUND and the librdkafka consumer-protocol member gets no partition."""
    broker = kafka_broker_factory(**SHORT)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-f", 2)
    classic = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "g-f",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    classic.subscribe(["kip848-f"])
    _poll_until([classic], lambda: _assigned(classic) == {0, 1})
    with RawClient(broker.bootstrap) as raw:
        resp = raw.call(68, 1, _heartbeat("g-f", "raw-member", 0, ["kip848-f"]))
    assert resp["error_code"] == KafkaError.GROUP_ID_NOT_FOUND
    modern = _consumer(broker.bootstrap, "g-f")
    modern.subscribe(["kip848-f"])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        modern.poll(0.1)
        classic.poll(0.01)
    assert _assigned(modern) == set() and _assigned(classic) == {0, 1}
    modern.close()
    classic.close()


def test_admin_lists_consumer_groups_by_type(kafka_broker_factory: Any) -> None:
    """AdminClient.list_consumer_groups sees the consumer-protocol group with its type."""
    broker = kafka_broker_factory(**SHORT)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-g", 1)
    c = _consumer(broker.bootstrap, "g-g")
    c.subscribe(["kip848-g"])
    _poll_until([c], lambda: _assigned(c) == {0})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    result = admin.list_consumer_groups(request_timeout=10).result()
    types = {g.group_id: g.type for g in result.valid}
    assert types["g-g"] == ck.ConsumerGroupType.CONSUMER
    c.close()


def test_regex_subscription_picks_up_a_topic_created_later(kafka_broker_factory: Any) -> None:
    """A member subscribed to ``^kip848-r.*`` owns the partitions of a matching topic that is
    created after it joined, and not those of a topic that does not match."""
    broker = kafka_broker_factory(**SHORT)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-r1", 1)
        create_topic(raw, "other-r", 1)
    c = _consumer(broker.bootstrap, "g-r")
    c.subscribe(["^kip848-r.*"])
    _poll_until(
        [c], lambda: {(tp.topic, tp.partition) for tp in c.assignment()} == {("kip848-r1", 0)}
    )
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-r2", 2)
    want = {("kip848-r1", 0), ("kip848-r2", 0), ("kip848-r2", 1)}
    _poll_until([c], lambda: {(tp.topic, tp.partition) for tp in c.assignment()} == want)
    c.close()


def test_static_member_comes_back_to_its_partitions(kafka_broker_factory: Any) -> None:
    """Two static members (group.instance.id) share four partitions; one closes (epoch -2,
    its place is kept) and a new consumer with the same instance id gets the same
    partitions back while the other member's stay where they were."""
    broker = kafka_broker_factory(**SHORT)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "kip848-s", 4)
    a = _consumer(broker.bootstrap, "g-s", **{"group.instance.id": "i-a"})
    b = _consumer(broker.bootstrap, "g-s", **{"group.instance.id": "i-b"})
    a.subscribe(["kip848-s"])
    b.subscribe(["kip848-s"])
    _poll_until([a, b], lambda: len(_assigned(a)) == 2 and len(_assigned(b)) == 2)
    mine, theirs = _assigned(b), _assigned(a)
    b.close()
    with RawClient(broker.bootstrap) as raw:
        desc = raw.call(69, 1, {"group_ids": ["g-s"], "include_authorized_operations": False})
    epochs = {m["instance_id"]: m["member_epoch"] for m in desc["groups"][0]["members"]}
    assert epochs["i-b"] == -2 and epochs["i-a"] > 0  # its place is kept, not given away
    b2 = _consumer(broker.bootstrap, "g-s", **{"group.instance.id": "i-b"})
    b2.subscribe(["kip848-s"])
    _poll_until([a, b2], lambda: _assigned(b2) == mine)
    assert _assigned(a) == theirs
    a.close()
    b2.close()


def test_consumer_protocol_example_in_docs_passes(tmp_path: Any) -> None:
    """The consumer-protocol example in docs/broker.md runs as written with the fixture."""
    run_as_pytest(example("broker.md", "def test_consumer_protocol_roundtrip"), tmp_path)
