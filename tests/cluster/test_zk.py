"""ZooKeeper access (edplog.cluster.zk) against a real ZooKeeper: encodings, compare-and-set,
fenced multi-ops, ephemeral registrations, watches across a session expiry, producer ids."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from edplog.cluster.zk import (
    BadVersionError,
    BrokerIdInUseError,
    BrokerRegistration,
    ControllerMovedError,
    NoNodeError,
    PartitionState,
    ZkClient,
    decode_topic_id,
    encode_topic_id,
    state_path,
)
from edplog.errors import TopicExistsError, UnknownTopicError

SESSION_MS = 3000


def wait_for(what: str, predicate: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


@pytest.fixture
def clients(zookeeper: str) -> Iterator[Callable[[], ZkClient]]:
    started: list[ZkClient] = []

    def make() -> ZkClient:
        zk = ZkClient(zookeeper, session_timeout_ms=SESSION_MS)
        zk.start()
        started.append(zk)
        return zk

    yield make
    for zk in reversed(started):
        zk.stop()


def expire_session(zk: ZkClient) -> None:
    """The classic way: a second connection with the same session id and password closes
    the session, which ZooKeeper then treats as expired for the first connection."""
    session_id, password = zk.kazoo.client_id
    twin = KazooClient(hosts=zk.hosts, client_id=(session_id, password))
    twin.start(timeout=10)
    twin.stop()
    twin.close()


def reg(broker_id: int, rack: str | None = None) -> BrokerRegistration:
    return BrokerRegistration(broker_id, "127.0.0.1", 9090 + broker_id, rack)


def test_topic_id_prints_as_kafka_does():
    """A topic id is 22 characters of url-safe base64 without padding and decodes back."""
    for _ in range(50):
        topic_id = uuid.uuid4()
        text = encode_topic_id(topic_id)
        assert len(text) == 22 and "=" not in text
        assert decode_topic_id(text) == topic_id


def test_start_creates_the_chroot_and_base_paths(clients, zookeeper):
    """Started on a chroot that does not exist, the client creates it and the base znodes;
    /controller_epoch starts at 0."""
    zk = clients()
    hosts, _, chroot = zookeeper.partition("/")
    root = KazooClient(hosts=hosts)
    root.start(timeout=10)
    try:
        children = set(root.get_children("/" + chroot))
        assert {"brokers", "config", "admin", "controller_epoch"} <= children
        assert root.get(f"/{chroot}/controller_epoch")[0] == b"0"
    finally:
        root.stop()
        root.close()
    assert zk.controller_epoch() == (0, 0)


def test_registration_is_ephemeral_and_watched(clients):
    """A registered broker is live with its czxid as epoch, the broker watch sees it come and
    go, and its znode is gone as soon as its client stops."""
    observer = clients()
    seen: queue.Queue[dict[int, BrokerRegistration]] = queue.Queue()
    observer.watch_brokers(seen.put)
    assert seen.get(timeout=10) == {}

    broker = clients()
    epoch = broker.register_broker(reg(1, "r1"))
    live = observer.live_brokers()
    assert list(live) == [1]
    assert live[1].epoch == epoch > 0
    assert live[1].rack == "r1" and live[1].endpoints == ("PLAINTEXT://127.0.0.1:9091",)
    assert live[1].host == "127.0.0.1" and live[1].port == 9091
    wait_for("the watch saw broker 1", lambda: 1 in seen.get(timeout=10))

    broker.stop()
    wait_for("the watch saw broker 1 leave", lambda: seen.get(timeout=10) == {})
    assert observer.live_brokers() == {}


def test_broker_id_held_by_another_session_is_refused(clients):
    """A second session may not register a broker id a live session holds; registering again
    from the session that holds it returns the same epoch."""
    first, second = clients(), clients()
    epoch = first.register_broker(reg(7))
    with pytest.raises(BrokerIdInUseError):
        second.register_broker(reg(7))
    assert first.register_broker(reg(7)) == epoch


def test_update_isr_is_a_compare_and_set(clients):
    """The leader's ISR write succeeds with the version it read, returns the new version, and
    fails (None) with a stale version or for a state that does not exist."""
    zk = clients()
    zk.create_topic("t", {0: (1, 2)}, {})
    epoch, version = zk.try_become_controller(1)
    zk.fenced(version).create_state("t", 0, PartitionState(1, 0, (1, 2), epoch)).commit()
    st = zk.partition_state("t", 0)
    assert st == PartitionState(1, 0, (1, 2), epoch, 0)
    shrunk = zk.update_isr("t", 0, PartitionState(1, 0, (1,), epoch, st.version))
    assert shrunk is not None and shrunk.version == 1 and shrunk.isr == (1,)
    assert zk.update_isr("t", 0, PartitionState(1, 0, (1, 2), epoch, st.version)) is None
    assert zk.partition_state("t", 0).isr == (1,)
    assert zk.update_isr("t", 5, PartitionState(1, 0, (1,), epoch, 0)) is None


def test_controller_election_and_epochs(clients):
    """The first to try becomes controller with epoch 1; the next gets None while it holds
    /controller; once its session ends the other wins epoch 2; the watch follows."""
    a, b = clients(), clients()
    seen: queue.Queue[int | None] = queue.Queue()
    b.watch_controller(seen.put)
    assert seen.get(timeout=10) is None
    won = a.try_become_controller(1)
    assert won is not None and won[0] == 1
    assert b.try_become_controller(2) is None
    assert b.controller_id() == 1
    wait_for("watch saw controller 1", lambda: seen.get(timeout=10) == 1)
    assert not b.resign_controller()  # not b's to delete
    a.stop()
    wait_for("watch saw no controller", lambda: seen.get(timeout=10) is None)
    second = b.try_become_controller(2)
    assert second is not None and second[0] == 2 and second[1] > won[1]
    assert b.controller_epoch() == second
    assert b.resign_controller() and b.controller_id() is None


def test_fenced_write_rejected_once_another_controller_took_the_epoch(clients):
    """A controller that lost /controller to another (its session ended) keeps its epoch
    version; its multi-op then fails with ControllerMovedError and writes nothing, even for
    a state whose version did not change. A stale state version gives BadVersionError."""
    old, new, admin = clients(), clients(), clients()
    admin.create_topic("t", {0: (1, 2)}, {})
    old_epoch, old_version = old.try_become_controller(1)
    old.fenced(old_version).create_state("t", 0, PartitionState(1, 0, (1, 2), old_epoch)).commit()
    old_session_gone = old.session_id
    old.stop()
    assert admin.controller_id() is None and old_session_gone

    new_epoch, new_version = new.try_become_controller(2)
    assert new_epoch == old_epoch + 1
    # The zombie: a fresh session of the old controller still holding its epoch version.
    zombie = clients()
    before = admin.partition_state("t", 0)
    ops = zombie.fenced(old_version).set_state(
        "t", 0, PartitionState(1, 1, (1,), old_epoch), before.version
    )
    with pytest.raises(ControllerMovedError):
        ops.commit()
    assert admin.partition_state("t", 0) == before

    with pytest.raises(BadVersionError):
        new.fenced(new_version).set_state(
            "t", 0, PartitionState(2, 1, (2,), new_epoch), before.version + 1
        ).commit()
    new.fenced(new_version).set_state(
        "t", 0, PartitionState(2, 1, (2,), new_epoch), before.version
    ).commit()
    assert admin.partition_state("t", 0) == PartitionState(2, 1, (2,), new_epoch, 1)


def test_fenced_create_needs_the_topic_and_delete_topic_removes_everything(clients):
    """Fenced state creation fails (nothing written) for a topic that does not exist;
    delete_topic removes states, assignment, config and the deletion marker at once."""
    zk = clients()
    _, version = zk.try_become_controller(1)
    with pytest.raises(NoNodeError):
        zk.fenced(version).create_state("missing", 0, PartitionState(1, 0, (1,), 1)).commit()
    assert zk.kazoo.exists("/brokers/topics/missing") is None

    zk.create_topic("t", {0: (1,), 1: (1,)}, {"cleanup.policy": "compact"})
    ops = zk.fenced(version)
    for p in (0, 1):
        ops.create_state("t", p, PartitionState(1, 0, (1,), 1))
    ops.commit()
    assert zk.topic_config("t") == {"cleanup.policy": "compact"}
    zk.request_topic_deletion("t")
    zk.fenced(version).delete_topic("t").commit()
    assert zk.topic_names() == [] and zk.assignment("t") is None
    assert zk.topic_config("t") == {}
    assert zk.kazoo.get_children("/admin/delete_topics") == []
    with pytest.raises(UnknownTopicError):
        zk.request_topic_deletion("t")


def test_topics_assignment_and_config(clients):
    """create_topic writes assignment and config together and refuses a second creation;
    set_assignment is a CAS; the topic and assignment watches follow; the assignment watch
    ends with None once the topic is gone."""
    zk, watcher = clients(), clients()
    topics: queue.Queue[list[str]] = queue.Queue()
    watcher.watch_topics(topics.put)
    assert topics.get(timeout=10) == []
    ta = zk.create_topic("t", {0: (1, 2), 1: (2, 3)}, {"retention.ms": "100"})
    with pytest.raises(TopicExistsError):
        zk.create_topic("t", {0: (1,)}, {})
    wait_for("topic watch saw t", lambda: topics.get(timeout=10) == ["t"])

    read = watcher.assignment("t")
    assert read == ta and read.version == 0 and read.partitions == {0: (1, 2), 1: (2, 3)}
    assigned: queue.Queue[object] = queue.Queue()
    watcher.watch_assignment("t", assigned.put)
    assert assigned.get(timeout=10) == read
    grown = zk.set_assignment(
        type(ta)("t", ta.topic_id, {**ta.partitions, 2: (3, 1)}, {}, {}, ta.version)
    )
    assert grown.version == 1
    with pytest.raises(BadVersionError):
        zk.set_assignment(ta)
    wait_for(
        "assignment watch saw 3 partitions", lambda: len(assigned.get(timeout=10).partitions) == 3
    )

    configs: queue.Queue[dict[str, str]] = queue.Queue()
    watcher.watch_topic_config("t", configs.put)
    assert configs.get(timeout=10) == {"retention.ms": "100"}
    zk.set_topic_config("t", {"retention.ms": "200"})
    wait_for("config watch saw 200", lambda: configs.get(timeout=10) == {"retention.ms": "200"})

    _, version = zk.try_become_controller(1)
    zk.fenced(version).delete_topic("t").commit()
    wait_for("assignment watch ended", lambda: assigned.get(timeout=10) is None)
    zk.create_topic("t", {0: (1,)}, {})
    time.sleep(0.3)
    assert assigned.empty()  # the watch stopped with the deletion


def test_partition_state_watch_waits_for_creation_and_ends_with_deletion(clients):
    """A state watch registered before the state exists gets None, then each version, then
    None once the topic is deleted, and nothing after."""
    zk, watcher = clients(), clients()
    zk.create_topic("t", {0: (1,)}, {})
    seen: queue.Queue[PartitionState | None] = queue.Queue()
    watcher.watch_partition_state("t", 0, seen.put)
    assert seen.get(timeout=10) is None
    epoch, version = zk.try_become_controller(1)
    zk.fenced(version).create_state("t", 0, PartitionState(1, 0, (1,), epoch)).commit()
    assert seen.get(timeout=10) == PartitionState(1, 0, (1,), epoch, 0)
    zk.update_isr("t", 0, PartitionState(1, 0, (1,), epoch, 0))
    assert seen.get(timeout=10).version == 1
    zk.fenced(version).delete_topic("t").commit()
    assert seen.get(timeout=10) is None
    zk.create_topic("t", {0: (1,)}, {})
    zk.fenced(version).create_state("t", 0, PartitionState(1, 0, (1,), epoch)).commit()
    time.sleep(0.3)
    assert seen.empty()


def test_watches_survive_a_session_expiry(clients):
    """After the session of a watching client expires (closed from a twin connection with the
    same session id), the client reports LOST then CONNECTED on a new session, its ephemeral
    registration is gone, and its watches still deliver changes made afterwards."""
    zk, other = clients(), clients()
    zk.create_topic("t", {0: (1,)}, {})
    epoch, version = other.try_become_controller(9)
    other.fenced(version).create_state("t", 0, PartitionState(1, 0, (1,), epoch)).commit()
    states: list[str] = []
    zk.add_state_listener(states.append)
    seen: queue.Queue[PartitionState | None] = queue.Queue()
    zk.watch_partition_state("t", 0, seen.put)
    brokers: queue.Queue[dict[int, BrokerRegistration]] = queue.Queue()
    zk.watch_brokers(brokers.put)
    assert seen.get(timeout=10).version == 0
    assert brokers.get(timeout=10) == {}
    zk.register_broker(reg(1))
    wait_for("registered", lambda: 1 in brokers.get(timeout=10))
    old_session = zk.session_id

    expire_session(zk)
    wait_for("LOST then CONNECTED", lambda: "LOST" in states and states[-1] == "CONNECTED")
    assert zk.session_id not in (0, old_session)
    wait_for("registration gone", lambda: other.live_brokers() == {})

    other.update_isr("t", 0, PartitionState(1, 0, (1,), epoch, 0))
    wait_for("state watch saw version 1", lambda: seen.get(timeout=10).version == 1)
    other.register_broker(reg(2))
    wait_for("broker watch saw broker 2", lambda: list(brokers.get(timeout=10)) == [2])


def test_producer_id_blocks_are_unique_under_concurrent_allocation(clients):
    """Four clients allocating 25 blocks each at once get 100 disjoint blocks of the asked
    size that together cover 0..99999 without a gap."""
    zks = [clients() for _ in range(4)]
    blocks: list[tuple[int, int]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def allocate(zk: ZkClient, broker_id: int) -> None:
        try:
            for _ in range(25):
                block = zk.allocate_producer_ids(broker_id, 1000)
                with lock:
                    blocks.append(block)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=allocate, args=(zk, i)) for i, zk in enumerate(zks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    blocks.sort()
    assert len(blocks) == 100
    assert blocks[0] == (0, 999)
    for (_, end), (start, last) in zip(blocks, blocks[1:], strict=False):
        assert start == end + 1 and last == start + 999


def test_admin_requests_merge(clients):
    """Preferred-election and reassignment requests merge with pending ones; a later move of
    the same partition replaces the earlier one, and None records a cancellation."""
    zk = clients()
    assert zk.preferred_election_requests() == ([], -1)
    zk.request_preferred_election([("t", 0)])
    zk.request_preferred_election([("t", 0), ("u", 1)])
    assert zk.preferred_election_requests()[0] == [("t", 0), ("u", 1)]
    zk.request_reassignment({("t", 0): (1, 2), ("t", 1): (2, 3)})
    zk.request_reassignment({("t", 0): (3, 4), ("t", 1): None})
    moves, version = zk.reassignment_requests()
    assert moves == {("t", 0): (3, 4), ("t", 1): None} and version == 1


def test_controlled_shutdown_marker_and_cluster_id(clients):
    """The shutdown marker is ephemeral; the cluster id is the first one proposed."""
    zk, broker = clients(), clients()
    broker.begin_controlled_shutdown(3)
    broker.begin_controlled_shutdown(3)
    assert zk.shutting_down_brokers() == {3}
    broker.stop()
    assert zk.shutting_down_brokers() == set()
    assert zk.cluster_id("first") == "first"
    assert broker is not zk and zk.cluster_id("second") == "first"


def test_state_path_layout():
    """The state znode lives where Kafka puts it."""
    assert state_path("t", 3) == "/brokers/topics/t/partitions/3/state"
