"""Consumer groups in a real cluster: three brokers in this process, a real ZooKeeper, real
clients (confluent-kafka, both group protocols) and edplog's own client for raw answers.

The coordinator of a group is the leader of its partition of ``__consumer_offsets``; these
tests move that leadership (a stopped broker, an expired ZooKeeper session) under consumers
that commit, and check what Kafka promises: the group re-forms on the new coordinator and
resumes from its committed offsets, so no record is skipped and none is read twice except
after the last commit that succeeded."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cluster_helpers import InProcessCluster, wait_for
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient

from edplog.client import Client
from edplog.cluster import zookeeper_server
from edplog.errors import ErrorCode
from edplog.group import OFFSETS_TOPIC
from edplog.group.offsets import decode_key, decode_value, partition_for

pytestmark = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)

FIND_COORDINATOR, OFFSET_COMMIT, OFFSET_FETCH = 10, 8, 9
OFFSETS_PARTITIONS = 6
#: Short consumer-protocol timers, so a member that moved is noticed in seconds.
CONSUMER_TIMERS = {
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "100",
}


@pytest.fixture
def cluster(zookeeper, tmp_path):
    c = InProcessCluster(
        zookeeper,
        tmp_path,
        3,
        offsets_topic_num_partitions=str(OFFSETS_PARTITIONS),
        **{k.replace(".", "_"): v for k, v in CONSUMER_TIMERS.items()},
    )
    c.start_all()
    try:
        yield c
    finally:
        c.stop_all()


def create(cluster: InProcessCluster, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 3)])[name].result(30)
    for p in range(partitions):
        cluster.wait_isr(name, p, 3)


def produce(cluster: InProcessCluster, topic: str, count: int, partitions: int) -> None:
    producer = Producer(
        {"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for i in range(count):
        producer.produce(topic, b"v%d" % i, partition=i % partitions)
    assert producer.flush(60) == 0


def find_coordinator(cluster: InProcessCluster, group: str, via: int | None = None) -> dict:
    broker = cluster.brokers[via] if via is not None else next(iter(cluster.brokers.values()))
    with Client(broker.bootstrap) as c:
        return c.call(FIND_COORDINATOR, 3, {"key": group, "key_type": 0})


def coordinator_of(cluster: InProcessCluster, group: str, other_than: int | None = None) -> int:
    """The group's coordinator once there is one (other than ``other_than``) and it serves
    the group: the broker named may not have applied its leadership yet (NOT_COORDINATOR)
    or be replaying the partition (COORDINATOR_LOAD_IN_PROGRESS); clients retry those."""

    def found() -> int | None:
        answer = find_coordinator(cluster, group)
        node = answer["node_id"]
        if answer["error_code"] != ErrorCode.NONE or node == other_than:
            return None
        with Client(cluster.brokers[node].bootstrap) as c:
            if fetch_raw(c, group)["error_code"] != ErrorCode.NONE:
                return None
        return int(node)

    return int(wait_for(found, 60, f"a coordinator for {group}"))


def commit_raw(c: Client, group: str, topic: str, offsets: dict[int, int]) -> list[int]:
    body = {
        "group_id": group,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "group_instance_id": None,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {"partition_index": p, "committed_offset": o, "committed_metadata": ""}
                    for p, o in offsets.items()
                ],
            }
        ],
    }
    answer = c.call(OFFSET_COMMIT, 8, body)
    return [p["error_code"] for p in answer["topics"][0]["partitions"]]


def fetch_raw(c: Client, group: str, version: int = 7) -> dict:
    if version >= 8:
        body = {"groups": [{"group_id": group, "topics": None}], "require_stable": False}
    else:
        body = {"group_id": group, "topics": None, "require_stable": False}
    return c.call(OFFSET_FETCH, version, body)


class Tally:
    """What a group's consumers were given and what they committed.

    Every record a consumer gets is committed at once (synchronously). A record handed out
    again is allowed only at or above the partition's last successful commit: below it, the
    group would have resumed from a position older than one it was told was committed.
    """

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], int] = {}
        self.committed: dict[int, int] = {}
        self.below_commit: list[tuple[int, int, int]] = []
        self.failed_commits = 0

    def take(self, consumer: Consumer, msg: Any) -> None:
        p, o = msg.partition(), msg.offset()
        if (p, o) in self.seen and o < self.committed.get(p, 0):
            self.below_commit.append((p, o, self.committed[p]))
        self.seen[(p, o)] = self.seen.get((p, o), 0) + 1
        try:
            consumer.commit(message=msg, asynchronous=False)
        except KafkaException:
            self.failed_commits += 1  # the coordinator moved: this record is uncommitted
        else:
            self.committed[p] = max(self.committed.get(p, 0), o + 1)

    @property
    def read_twice(self) -> int:
        return sum(n - 1 for n in self.seen.values())


def consume(consumers: list[Consumer], tally: Tally, target: int, timeout_s: float = 90) -> None:
    """Poll every consumer in turn until ``target`` distinct records were seen."""
    deadline = time.monotonic() + timeout_s
    polls = 0
    while len(tally.seen) < target and time.monotonic() < deadline and polls < 100_000:
        for consumer in consumers:
            polls += 1
            msg = consumer.poll(0.05)
            if msg is None:
                continue
            if msg.error():
                continue  # retriable group errors (a coordinator moving) surface here
            tally.take(consumer, msg)
    assert len(tally.seen) >= target, f"only {len(tally.seen)} of {target} records read"


def group_consumer(cluster: InProcessCluster, group: str, protocol: str = "classic") -> Consumer:
    conf = {
        "bootstrap.servers": cluster.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        "topic.metadata.refresh.interval.ms": 1000,
    }
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    return Consumer(conf)


def final_commit(consumers: list[Consumer]) -> None:
    """Commit every consumer's positions, retrying while a coordinator settles."""
    for consumer in consumers:
        for _ in range(20):
            try:
                consumer.commit(asynchronous=False)
                break
            except KafkaException as exc:
                if exc.args[0].code() == -168:  # _NO_OFFSET: nothing new to commit
                    break
                time.sleep(0.25)


def expire_session(cluster: InProcessCluster, broker_id: int) -> None:
    """Close the broker's ZooKeeper session from a twin connection (same id and password):
    ZooKeeper treats it as expired for the broker, which must then act as if it led
    nothing, register again with a new session, and take part again."""
    broker = cluster.brokers[broker_id].broker
    assert broker is not None and broker.node is not None
    zk = broker.node.zk
    session_id, password = zk.kazoo.client_id
    twin = KazooClient(hosts=zk.hosts, client_id=(session_id, password))
    twin.start(timeout=10)
    twin.stop()
    twin.close()


def run_failover(cluster: InProcessCluster, move: str, protocol: str) -> None:
    """Two consumers of one group read a 4-partition topic, committing every record; after
    200 records the coordinator is moved (``move``: "stop" its broker, or "expire" its
    ZooKeeper session); they go on to the end. Checked: every record read, re-reads only
    at or above the last successful commit, and the final commits are the log ends."""
    group, topic, total = f"g-{move}-{protocol}", f"work-{move}-{protocol}", 600
    create(cluster, topic, 4)
    produce(cluster, topic, total, 4)
    first = coordinator_of(cluster, group)
    consumers = [group_consumer(cluster, group, protocol) for _ in range(2)]
    tally = Tally()
    try:
        for c in consumers:
            c.subscribe([topic])
        consume(consumers, tally, 200)
        if move == "stop":
            cluster.stop(first)
        else:
            expire_session(cluster, first)
        second = coordinator_of(cluster, group, other_than=first if move == "stop" else None)
        consume(consumers, tally, total)
        assert sorted(tally.seen) == sorted((i % 4, i // 4) for i in range(total))
        assert tally.below_commit == [], "the group resumed below a successful commit"
        final_commit(consumers)
        coordinator = coordinator_of(cluster, group)
        with Client(cluster.brokers[coordinator].bootstrap) as c:
            answer = fetch_raw(c, group)
        assert answer["error_code"] == ErrorCode.NONE
        committed = {
            p["partition_index"]: p["committed_offset"]
            for t in answer["topics"]
            if t["name"] == topic
            for p in t["partitions"]
        }
        assert committed == {p: total // 4 for p in range(4)}
        if move == "stop":
            assert second != first
    finally:
        for c in consumers:
            c.close()


def test_find_coordinator_creates_the_offsets_topic_and_names_its_partition_leader(cluster):
    """The first FindCoordinator creates __consumer_offsets (offsets.topic.num.partitions
    partitions, replication factor 3, compacted); once its partitions have leaders every
    broker names the leader of partition abs(hashCode(group)) % partitions, host and port
    included, for each of a batch of groups (v4)."""
    first = find_coordinator(cluster, "g0")
    assert first["error_code"] in (ErrorCode.NONE, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    coordinator_of(cluster, "g0")
    broker = cluster.brokers[1].broker
    assert broker is not None and broker.node is not None
    snap = broker.node.cache.snapshot
    assignment = snap.topics[OFFSETS_TOPIC]
    assert sorted(assignment.partitions) == list(range(OFFSETS_PARTITIONS))
    assert all(len(r) == 3 for r in assignment.partitions.values())
    assert snap.configs[OFFSETS_TOPIC]["cleanup.policy"] == "compact"
    groups = [f"group-{i}" for i in range(12)]
    for b, running in cluster.brokers.items():
        with Client(running.bootstrap) as c:
            answer = wait_for(
                lambda c=c: (
                    (a := c.call(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": groups}))
                    and all(x["error_code"] == ErrorCode.NONE for x in a["coordinators"])
                    and a
                ),
                30,
                f"broker {b} to name every coordinator",
            )
        snap = broker.node.cache.snapshot
        for entry in answer["coordinators"]:
            p = partition_for(entry["key"], OFFSETS_PARTITIONS)
            leader = snap.states[(OFFSETS_TOPIC, p)].leader
            assert entry["node_id"] == leader
            assert (entry["host"], entry["port"]) == (
                snap.brokers[leader].host,
                snap.brokers[leader].port,
            )


def test_a_broker_that_is_not_the_coordinator_answers_not_coordinator(cluster):
    """OffsetFetch (v7 and the batched v8) and OffsetCommit sent to a broker that does not
    lead the group's offsets partition answer NOT_COORDINATOR (16); the coordinator takes
    the commit and answers it back."""
    create(cluster, "nc", 2)
    coordinator = coordinator_of(cluster, "nc-group")
    other = next(b for b in cluster.brokers if b != coordinator)
    with Client(cluster.brokers[other].bootstrap) as c:
        assert fetch_raw(c, "nc-group")["error_code"] == ErrorCode.NOT_COORDINATOR
        (g,) = fetch_raw(c, "nc-group", 8)["groups"]
        assert g["error_code"] == ErrorCode.NOT_COORDINATOR
        assert commit_raw(c, "nc-group", "nc", {0: 5}) == [ErrorCode.NOT_COORDINATOR]
    with Client(cluster.brokers[coordinator].bootstrap) as c:
        assert commit_raw(c, "nc-group", "nc", {0: 5, 1: 7}) == [ErrorCode.NONE] * 2
        answer = fetch_raw(c, "nc-group")
        assert answer["error_code"] == ErrorCode.NONE
        rows = {
            p["partition_index"]: p["committed_offset"] for p in answer["topics"][0]["partitions"]
        }
        assert rows == {0: 5, 1: 7}


def test_committed_offsets_are_on_every_replica_of_their_partition(cluster):
    """A commit answered NONE is in the log of every replica of the group's
    __consumer_offsets partition (the answer waited for the ISR): each holds the same
    offset-commit records, which decode to what was committed."""
    create(cluster, "rep", 3)
    group = "rep-group"
    coordinator = coordinator_of(cluster, group)
    with Client(cluster.brokers[coordinator].bootstrap) as c:
        assert commit_raw(c, group, "rep", {0: 11, 1: 22, 2: 33}) == [ErrorCode.NONE] * 3
    p = partition_for(group, OFFSETS_PARTITIONS)
    snap = cluster.brokers[coordinator].broker.node.cache.snapshot
    replicas = snap.topics[OFFSETS_TOPIC].partitions[p]
    assert len(replicas) == 3
    for b in replicas:
        plog = cluster.local_log(b, OFFSETS_TOPIC, p)
        found = {}
        for record in plog.read(plog.log_start_offset):
            key = decode_key(bytes(record.key))
            if key is not None and key[0] == group:
                found[key[2]] = decode_value(bytes(record.value)).offset

        assert found == {0: 11, 1: 22, 2: 33}, f"broker {b}"


def test_classic_group_resumes_on_the_new_coordinator_when_the_coordinator_stops(cluster):
    """Classic protocol; the coordinator's broker is stopped mid-way (see run_failover)."""
    run_failover(cluster, "stop", "classic")


def test_classic_group_resumes_after_the_coordinator_loses_its_zookeeper_session(cluster):
    """Classic protocol; the coordinator's ZooKeeper session expires mid-way: it drops its
    groups (leading nothing while the session is gone), the controller moves its
    partitions, and the group resumes wherever its offsets partition is led next (see
    run_failover)."""
    run_failover(cluster, "expire", "classic")


def test_consumer_protocol_group_resumes_when_the_coordinator_stops(cluster):
    """KIP-848 (group.protocol=consumer); the coordinator's broker is stopped mid-way: the
    group's records replayed by the new coordinator and its committed offsets carry it on
    (see run_failover)."""
    run_failover(cluster, "stop", "consumer")
