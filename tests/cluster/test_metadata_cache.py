"""A broker's metadata cache (edplog.cluster.metadata_cache) against a real ZooKeeper."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from edplog.cluster.metadata_cache import Change, MetadataCache, Snapshot
from edplog.cluster.zk import PartitionState, TopicAssignment, ZkClient

MOVES = 40


@pytest.fixture
def zk_pair(zookeeper: str) -> Iterator[tuple[ZkClient, ZkClient]]:
    writer, reader = ZkClient(zookeeper, session_timeout_ms=6000), ZkClient(zookeeper)
    writer.start()
    reader.start()
    yield writer, reader
    reader.stop()
    writer.stop()


def test_a_reassignment_written_in_one_multi_op_is_never_seen_half_applied(zk_pair):
    """A controller moves a partition between two replica sets, each move one fenced multi-op
    that writes the assignment and the state (leader, ISR) together, 40 times. Every snapshot
    the cache publishes must show a leader and an ISR among the replicas it shows (the two
    znodes reach the cache by two watches; a snapshot with one and not the other would send
    clients to a leader Metadata does not list as a replica), and the cache ends on the last
    move."""
    writer, reader = zk_pair
    epoch, zk_version = writer.try_become_controller(1)
    sets = ((1, 2, 3), (4, 5, 6))
    ta = writer.create_topic("moving", {0: sets[0]}, {})
    writer.fenced(zk_version).create_state(
        "moving", 0, PartitionState(1, 0, sets[0], epoch)
    ).commit()

    seen: list[Snapshot] = []
    lock = threading.Lock()
    cache: MetadataCache

    def on_change(change: Change) -> None:
        with lock:
            seen.append(cache.snapshot)

    cache = MetadataCache(reader, on_change)
    cache.start()
    deadline = time.monotonic() + 30
    while cache.snapshot.states.get(("moving", 0)) is None:
        assert time.monotonic() < deadline, "the cache never read the partition"
        time.sleep(0.01)

    state_version, leader_epoch = 0, 0
    for move in range(1, MOVES + 1):
        target = sets[move % 2]
        leader_epoch += 1
        moved = TopicAssignment("moving", ta.topic_id, {0: target}, {}, {}, ta.version)
        state = PartitionState(target[0], leader_epoch, target, epoch)
        ops = writer.fenced(zk_version)
        ops.set_assignment(moved, ta.version).set_state("moving", 0, state, state_version)
        ops.commit()
        ta = writer.assignment("moving")
        st = writer.partition_state("moving", 0)
        assert ta is not None and st is not None
        state_version = st.version

    final = sets[MOVES % 2]
    deadline = time.monotonic() + 30
    while cache.snapshot.replicas("moving", 0) != final or (
        cache.snapshot.states[("moving", 0)].leader_epoch != leader_epoch
    ):
        assert time.monotonic() < deadline, "the cache never reached the last move"
        time.sleep(0.01)

    with lock:
        published = list(seen)
    checked = 0
    for snap in published:
        st = snap.states.get(("moving", 0))
        replicas = snap.replicas("moving", 0)
        if st is None or not replicas:
            continue
        checked += 1
        assert st.leader in replicas and set(st.isr) <= set(replicas), (
            f"a snapshot showed replicas {replicas} with leader {st.leader} and ISR {st.isr}"
        )
    # Changes close together may reach the cache as one notification: some, not all, of the
    # moves are published, and every one that is must be whole.
    assert checked >= 2, f"only {checked} snapshots published for {MOVES} moves"
