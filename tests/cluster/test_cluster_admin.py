"""Cluster administration: ElectLeaders (43), AlterPartitionReassignments (45) and
ListPartitionReassignments (46), on a single node and on in-process clusters with a real
ZooKeeper, real clients (confluent-kafka) and edplog's own client for raw requests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from cluster_helpers import InProcessCluster, wait_for
from confluent_kafka import Consumer, ElectionType, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from edplog.client import Client
from edplog.cluster import zookeeper_server

ELECT, ALTER, LIST = 43, 45, 46
PREFERRED, UNCLEAN = 0, 1
NONE, TIMED_OUT, REPLICA_ASSIGNMENT, REPLICATION_FACTOR = 0, 7, 39, 38
POLICY_VIOLATION, PREFERRED_NOT_AVAILABLE, ELIGIBLE_NOT_AVAILABLE = 44, 80, 83
NOT_NEEDED, NO_REASSIGNMENT, UNKNOWN = 84, 85, 3

needs_zookeeper = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)


def _iptables_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return False
    return subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True).returncode == 0


needs_iptables = pytest.mark.skipif(
    not _iptables_usable(), reason="needs root and iptables to hold a replica back"
)


@contextlib.contextmanager
def connections_refused_from(host: str) -> Iterator[None]:
    """New TCP connections from ``host`` (a broker's address: its replica fetchers bind to
    it) are reset, so that broker cannot start copying from a leader. The rule carries a
    unique comment and is removed on the way out."""
    tag = f"edplog-test-cluster-admin-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    spec = ["-s", host, "-p", "tcp", "--syn", "-m", "comment", "--comment", tag]
    spec += ["-j", "REJECT", "--reject-with", "tcp-reset"]
    subprocess.run(["iptables", "-I", "OUTPUT", *spec], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", "OUTPUT", *spec], check=True)


def elect(bootstrap: str, election: int, partitions: dict[str, list[int]] | None, **kw) -> dict:
    body = {
        "election_type": election,
        "topic_partitions": None
        if partitions is None
        else [{"topic": t, "partitions": ps} for t, ps in partitions.items()],
        "timeout_ms": kw.get("timeout_ms", 30_000),
    }
    with Client(bootstrap, timeout_s=60) as c:
        resp = c.call(ELECT, kw.get("version", 2), body)
    assert resp["error_code"] == NONE
    return {
        (r["topic"], p["partition_id"]): (p["error_code"], p["error_message"])
        for r in resp["replica_election_results"]
        for p in r["partition_result"]
    }


def alter(bootstrap: str, moves: dict[tuple[str, int], list[int] | None], **kw) -> dict:
    topics: dict[str, list] = {}
    for (t, p), rs in moves.items():
        topics.setdefault(t, []).append({"partition_index": p, "replicas": rs})
    body = {
        "timeout_ms": 30_000,
        "allow_replication_factor_change": kw.get("allow_rf_change", True),
        "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()],
    }
    with Client(bootstrap, timeout_s=60) as c:
        resp = c.call(ALTER, kw.get("version", 1), body)
    assert resp["error_code"] == NONE
    return {
        (r["name"], p["partition_index"]): (p["error_code"], p["error_message"])
        for r in resp["responses"]
        for p in r["partitions"]
    }


def listed(bootstrap: str, topics: dict[str, list[int]] | None = None) -> dict:
    body = {
        "timeout_ms": 30_000,
        "topics": None
        if topics is None
        else [{"name": t, "partition_indexes": ps} for t, ps in topics.items()],
    }
    with Client(bootstrap) as c:
        resp = c.call(LIST, 0, body)
    assert resp["error_code"] == NONE
    return {
        (t["name"], p["partition_index"]): (
            p["replicas"],
            p["adding_replicas"],
            p["removing_replicas"],
        )
        for t in resp["topics"]
        for p in t["partitions"]
    }


# ---- a single node -------------------------------------------------------------------------


def test_single_node_has_nothing_to_elect_or_move(kafka_broker):
    """Tried on one broker: elections of a topic's partitions (both types), of an unknown
    partition and of everything; reassignments to itself, elsewhere, a cancellation; the
    list. Must hold: ELECTION_NOT_NEEDED for its partitions, UNKNOWN_TOPIC_OR_PARTITION for
    others, an all-partitions election lists nothing; a move to [this broker] is accepted,
    to anything else INVALID_REPLICA_ASSIGNMENT; cancelling finds no reassignment; none is
    listed."""
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    admin.create_topics([NewTopic("solo", 2, 1)])["solo"].result(30)
    with Client(kafka_broker) as c:
        me = c.metadata([]).brokers[0].node_id
    for election in (PREFERRED, UNCLEAN):
        got = elect(kafka_broker, election, {"solo": [0, 1, 2], "nope": [0]})
        assert {k: v[0] for k, v in got.items()} == {
            ("solo", 0): NOT_NEEDED,
            ("solo", 1): NOT_NEEDED,
            ("solo", 2): UNKNOWN,
            ("nope", 0): UNKNOWN,
        }
    assert elect(kafka_broker, PREFERRED, None) == {}
    got = alter(
        kafka_broker,
        {("solo", 0): [me], ("solo", 1): [me, me + 1], ("solo", 5): [me], ("x", 0): None},
    )
    assert got[("solo", 0)] == (NONE, None)
    assert got[("solo", 1)][0] == REPLICA_ASSIGNMENT
    assert got[("solo", 5)][0] == UNKNOWN and got[("x", 0)][0] == UNKNOWN
    assert alter(kafka_broker, {("solo", 1): None})[("solo", 1)][0] == NO_REASSIGNMENT
    assert listed(kafka_broker) == {} and listed(kafka_broker, {"solo": [0, 1]}) == {}


# ---- clusters ------------------------------------------------------------------------------


def create(cluster: InProcessCluster, name: str, assignment: list[list[int]]) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(name, len(assignment), replica_assignment=assignment)])[
        name
    ].result(30)
    for p, replicas in enumerate(assignment):
        cluster.wait_isr(name, p, len(replicas))


@needs_zookeeper
def test_preferred_election_moves_leadership_back(zookeeper, tmp_path):
    """Tried: three partitions whose preferred replicas are brokers 1, 2, 3; broker 1 stops
    and starts again (automatic rebalancing off), so partition 0 is led by another broker.
    ElectLeaders(PREFERRED) through confluent-kafka's AdminClient for all three, then again;
    then a raw request for every partition. Must hold: partition 0 is elected (no error) and
    Metadata shows broker 1 leading it, the others answer ELECTION_NOT_NEEDED; the second
    call answers ELECTION_NOT_NEEDED for all; the all-partitions request lists none."""
    props = {"auto.leader.rebalance.enable": "false"}
    with InProcessCluster(zookeeper, tmp_path, 3, **props) as cluster:
        create(cluster, "pe", [[1, 2, 3], [2, 3, 1], [3, 1, 2]])
        assert [cluster.partition("pe", p).leader_id for p in range(3)] == [1, 2, 3]
        cluster.stop(1)
        wait_for(lambda: cluster.partition("pe", 0).leader_id in (2, 3), what="a new leader")
        cluster.start(1)
        cluster.wait_isr("pe", 0, 3)
        moved = cluster.partition("pe", 0).leader_id
        assert moved in (2, 3), "leadership sits off the preferred replica"

        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        tps = [TopicPartition("pe", p) for p in range(3)]
        result = admin.elect_leaders(ElectionType.PREFERRED, tps).result(60)
        codes = {tp.partition: NONE if err is None else err.code() for tp, err in result.items()}
        assert codes == {0: NONE, 1: NOT_NEEDED, 2: NOT_NEEDED}
        wait_for(lambda: cluster.partition("pe", 0).leader_id == 1, what="broker 1 leading")

        again = admin.elect_leaders(ElectionType.PREFERRED, tps).result(60)
        assert [e is not None and e.code() for e in again.values()] == [NOT_NEEDED] * 3
        assert elect(cluster.any_bootstrap(), PREFERRED, None) == {}


@needs_zookeeper
def test_elections_that_cannot_happen_say_why(zookeeper, tmp_path):
    """Tried on three brokers: topic "off" on [1, 2] loses broker 2 (the ISR shrinks to [1]),
    then broker 1 (offline, ISR [1]), then broker 2 comes back, out of sync; topic "dark" on
    [1] only; topic "ok" healthy. Must hold: PREFERRED on "off" is
    PREFERRED_LEADER_NOT_AVAILABLE (broker 1 is not live); UNCLEAN on "off" is refused with
    POLICY_VIOLATION and a message naming unclean.leader.election.enable (the controller does
    not take unclean-election requests), on "dark" it is ELIGIBLE_LEADERS_NOT_AVAILABLE (no
    live replica), on "ok" ELECTION_NOT_NEEDED; v0 and v1 requests answer too; and the state
    is untouched (still offline)."""
    with InProcessCluster(zookeeper, tmp_path, 3, min_insync_replicas="1") as cluster:
        create(cluster, "off", [[1, 2]])
        create(cluster, "dark", [[1]])
        create(cluster, "ok", [[3, 2]])
        cluster.stop(2)
        cluster.wait_isr("off", 0, 1)
        cluster.stop(1)
        wait_for(lambda: cluster.partition("off", 0).leader_id == -1, what="off to go offline")
        cluster.start(2)
        wait_for(lambda: 2 in {b.node_id for b in cluster.metadata().brokers}, what="broker 2")
        boot = cluster.brokers[3].bootstrap

        got = elect(boot, PREFERRED, {"off": [0]})
        assert got[("off", 0)][0] == PREFERRED_NOT_AVAILABLE
        assert "not live" in got[("off", 0)][1]
        got = elect(boot, UNCLEAN, {"off": [0], "dark": [0], "ok": [0]})
        assert got[("off", 0)][0] == POLICY_VIOLATION
        assert "unclean.leader.election.enable" in got[("off", 0)][1]
        assert got[("dark", 0)][0] == ELIGIBLE_NOT_AVAILABLE
        assert got[("ok", 0)][0] == NOT_NEEDED
        assert elect(boot, PREFERRED, {"off": [0]}, version=0)[("off", 0)][0] == (
            PREFERRED_NOT_AVAILABLE
        )
        assert elect(boot, UNCLEAN, {"ok": [0]}, version=1)[("ok", 0)][0] == NOT_NEEDED
        assert cluster.partition("off", 0).leader_id == -1


class BackgroundProducer:
    """An idempotent acks=all producer sending numbered records from a thread until stopped
    (bounded: at most ``limit`` records and ``max_s`` seconds)."""

    def __init__(self, bootstrap: str, topic: str, limit: int = 200_000, max_s: float = 120):
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
            }
        )
        self.topic, self.limit, self.max_s = topic, limit, max_s
        self.acked: set[bytes] = set()
        self.errors: list = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _report(self, err, msg) -> None:
        if err is None:
            self.acked.add(msg.value())
        else:
            self.errors.append(err)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        while not self._stop.is_set() and self.sent < self.limit and time.monotonic() < deadline:
            value = f"r{self.sent:07d}".encode()
            try:
                self.producer.produce(self.topic, value, on_delivery=self._report)
                self.sent += 1
                self.producer.poll(0.001)
            except KafkaException as exc:  # a fatal producer error ends the run
                self.errors.append(exc.args[0])
                return

    def start(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def wait_acked(self, count: int) -> None:
        wait_for(
            lambda: self.errors or len(self.acked) >= count, 60, f"{count} acknowledged records"
        )
        assert not self.errors, self.errors

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        remaining = self.producer.flush(60)
        assert self.errors or remaining == 0


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        tp = TopicPartition(topic, 0, 0)
        _, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([tp])
        out: list[bytes] = []
        for _ in range(high + 1000):
            if len(out) >= high:
                break
            msg = consumer.poll(10)
            assert msg is not None, f"read stopped at {len(out)} of {high}"
            if msg.error():
                raise KafkaException(msg.error())
            out.append(msg.value())
        return out
    finally:
        consumer.close()


def _held_then_completed(cluster: InProcessCluster, producer: BackgroundProducer) -> None:
    """Move "ra" from [1, 2, 3] to [2, 3, 4], held in progress while broker 4 cannot connect,
    then let through; checks the answers, the list and the completion."""
    assert cluster.partition("ra", 0).leader_id == 1
    boot = cluster.any_bootstrap()
    with connections_refused_from(cluster.host(4)):
        got = alter(boot, {("ra", 0): [2, 3, 4]})
        assert got == {("ra", 0): (NONE, None)}
        assert listed(boot) == {("ra", 0): ([1, 2, 3, 4], [4], [1])}
        assert listed(boot, {"ra": [0], "nope": [0]}) == listed(boot)
        assert listed(boot, {"ra": [1]}) == {}
    wait_for(lambda: listed(boot) == {}, 60, "the reassignment to complete")

    # The broker asked may learn the finished move a moment after the controller lists none.
    def settled() -> bool:
        p = cluster.partition("ra", 0)
        return p.replicas == [2, 3, 4] and p.leader_id in (2, 3, 4)

    wait_for(settled, 30, "Metadata to show the new replicas and leader")
    moved = cluster.partition("ra", 0)
    assert moved.replicas == [2, 3, 4] and moved.leader_id in (2, 3, 4)


def _replicas_agree_and_hold_everything(cluster: InProcessCluster, acked: set[bytes]) -> None:
    wait_for(
        lambda: len({cluster.local_log(b, "ra", 0).log_end_offset for b in (2, 3, 4)}) == 1,
        what="the replicas to reach one log end",
    )
    images = {b: cluster.local_log(b, "ra", 0).read_batches(0, 1 << 28) for b in (2, 3, 4)}
    assert images[4] == images[2] == images[3]
    read = read_all(cluster.bootstrap, "ra")
    assert len(read) == len(set(read)), "no record twice"
    assert acked <= set(read), f"{len(acked - set(read))} acknowledged records lost"


@needs_zookeeper
@needs_iptables
def test_reassignment_copies_the_log_to_the_new_replica(zookeeper, tmp_path):
    """Tried on four brokers: topic "ra" on [1, 2, 3] holding 3000 records acknowledged with
    acks=all; AlterPartitionReassignments to [2, 3, 4] while broker 4 cannot open
    connections (so it cannot start copying); ListPartitionReassignments; then broker 4 is
    let through. Must hold: the move is accepted and listed in progress (replicas
    [1, 2, 3, 4], adding [4], removing [1]) while held; it then completes (Metadata shows
    [2, 3, 4] led by one of them, the list is empty); every acknowledged record is read back
    exactly once; broker 4's log is byte-identical to brokers 2's and 3's."""
    with InProcessCluster(zookeeper, tmp_path, 4) as cluster:
        create(cluster, "ra", [[1, 2, 3]])
        producer = BackgroundProducer(cluster.bootstrap, "ra", limit=3000).start()
        wait_for(lambda: producer.sent == 3000 or producer.errors, 60, "3000 records sent")
        producer.stop()
        assert len(producer.acked) == 3000
        _held_then_completed(cluster, producer)
        assert not producer.errors
        _replicas_agree_and_hold_everything(cluster, producer.acked)


@needs_zookeeper
@needs_iptables
def test_reassignment_completes_under_a_running_producer(zookeeper, tmp_path):
    """Tried on four brokers: the move of test_reassignment_copies_the_log_to_the_new_replica
    with an idempotent acks=all producer running throughout (before, while held, during the
    leadership change and after). Must hold: the same answers and completion, the producer
    still acknowledging afterwards without an error, every acknowledged record read back
    exactly once, and the three replicas byte-identical."""
    with InProcessCluster(zookeeper, tmp_path, 4) as cluster:
        create(cluster, "ra", [[1, 2, 3]])
        producer = BackgroundProducer(cluster.bootstrap, "ra").start()
        try:
            producer.wait_acked(2000)
            _held_then_completed(cluster, producer)
            producer.wait_acked(len(producer.acked) + 2000)
        finally:
            producer.stop()
        assert not producer.errors
        _replicas_agree_and_hold_everything(cluster, producer.acked)


@needs_zookeeper
@needs_iptables
def test_reassignment_refusals_and_cancellation(zookeeper, tmp_path):
    """Tried on four brokers, topic "rc" on [1, 2, 3]: moves to a repeated broker, to a
    broker that does not exist, to two brokers with the replication factor fixed, of an
    unknown partition, a cancellation with none in progress; then a move to [2, 3, 4] held in
    progress (broker 4 cannot connect) and cancelled. Must hold: INVALID_REPLICA_ASSIGNMENT,
    INVALID_REPLICA_ASSIGNMENT, INVALID_REPLICATION_FACTOR, UNKNOWN_TOPIC_OR_PARTITION,
    NO_REASSIGNMENT_IN_PROGRESS; the held move is listed, and after the cancellation the
    list is empty and the replicas are [1, 2, 3] again, all in sync."""
    with InProcessCluster(zookeeper, tmp_path, 4) as cluster:
        create(cluster, "rc", [[1, 2, 3]])
        boot = cluster.any_bootstrap()
        got = alter(boot, {("rc", 0): [2, 2, 3], ("nope", 0): [1, 2, 3]})
        assert got[("rc", 0)][0] == REPLICA_ASSIGNMENT and got[("nope", 0)][0] == UNKNOWN
        assert alter(boot, {("rc", 0): [1, 2, 9]})[("rc", 0)][0] == REPLICA_ASSIGNMENT
        got = alter(boot, {("rc", 0): [1, 2]}, allow_rf_change=False)
        assert got[("rc", 0)][0] == REPLICATION_FACTOR
        assert alter(boot, {("rc", 0): None})[("rc", 0)][0] == NO_REASSIGNMENT
        with connections_refused_from(cluster.host(4)):
            assert alter(boot, {("rc", 0): [2, 3, 4]}, version=0) == {("rc", 0): (NONE, None)}
            assert listed(boot) == {("rc", 0): ([1, 2, 3, 4], [4], [1])}
            assert alter(boot, {("rc", 0): None}) == {("rc", 0): (NONE, None)}
            assert listed(boot) == {}
        wait_for(
            lambda: cluster.partition("rc", 0).replicas == [1, 2, 3],
            what="the original replicas in Metadata",
        )
        cluster.wait_isr("rc", 0, 3)
        assert alter(boot, {("rc", 0): None})[("rc", 0)][0] == NO_REASSIGNMENT
