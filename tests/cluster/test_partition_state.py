"""The controller's rules (edplog.cluster.partition_state): election, ISR edits on broker
failure, startup and controlled shutdown, preferred election, reassignment steps and
Kafka's replica placement. Pure functions: examples plus hypothesis properties."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edplog.cluster.partition_state import (
    assign_replicas,
    controlled_shutdown,
    elect_leader,
    finish_reassignment,
    initial_state,
    leader_imbalance,
    on_broker_failure,
    on_broker_startup,
    original_replicas,
    preferred_election,
    reassignment_complete,
    reconcile,
    start_reassignment,
    validate_assignment,
)
from edplog.cluster.zk import PartitionState
from edplog.errors import (
    ErrorCode,
    InvalidReplicaAssignmentError,
    InvalidReplicationFactorError,
)

BROKERS = range(1, 6)


def test_clean_election_takes_the_first_live_in_sync_replica_in_assignment_order():
    """Assignment order decides among live ISR members; dead ones leave the ISR; a
    shutting-down broker is never chosen."""
    assert elect_leader((3, 1, 2), (1, 2, 3), {1, 2, 3}) == (3, (1, 2, 3))
    assert elect_leader((3, 1, 2), (1, 2, 3), {1, 2}) == (1, (1, 2))
    assert elect_leader((3, 1, 2), (1, 2, 3), {1, 2, 3}, shutting_down={3}) == (1, (1, 2, 3))


def test_no_live_in_sync_replica_leaves_the_partition_offline_with_its_isr():
    """With clean election only, a partition whose ISR is dead gets leader -1 and keeps its
    ISR, even when an out-of-sync replica is live; unclean election takes that replica."""
    assert elect_leader((1, 2, 3), (1,), {2, 3}) == (-1, (1,))
    assert elect_leader((1, 2, 3), (1,), {2, 3}, unclean=True) == (2, (2,))
    assert elect_leader((1, 2), (1,), {2}, shutting_down={2}, unclean=True) == (-1, (1,))


def test_initial_state():
    """A new partition leads with its first live replica, the live ones in sync, epoch 0;
    with none live it is offline with every replica in sync (none has a record yet)."""
    assert initial_state((2, 1, 3), {1, 3}, 4) == PartitionState(1, 0, (1, 3), 4)
    assert initial_state((2, 1), set(), 4) == PartitionState(-1, 0, (2, 1), 4)
    assert initial_state((2, 1), {1, 2}, 4, {2}) == PartitionState(1, 0, (2, 1), 4)


def test_failure_then_return_of_the_last_isr_member():
    """Leader 1 of ISR [1,2] fails: 2 leads alone, epoch +1. 2 fails: it stays in the ISR,
    offline. 1 returns: still offline (not in sync). 2 returns: it leads again."""
    a = (1, 2, 3)
    s0 = PartitionState(1, 5, (1, 2), 1, 7)
    s1 = on_broker_failure(s0, a, {1}, {2, 3}, 2)
    assert s1 == PartitionState(2, 6, (2,), 2, 7)
    s2 = on_broker_failure(s1, a, {2}, {3}, 2)
    assert s2 == PartitionState(-1, 7, (2,), 2, 7)
    assert on_broker_startup(s2, a, {1}, {1, 3}, 2) is None
    assert on_broker_startup(s2, a, {2}, {1, 3}, 2) == PartitionState(2, 8, (2,), 2, 7)


def test_follower_failure_shrinks_isr_and_unrelated_failure_changes_nothing():
    """A dead follower leaves the ISR (epoch +1); a broker outside the ISR changes nothing."""
    s = PartitionState(1, 0, (1, 2, 3), 1)
    assert on_broker_failure(s, (1, 2, 3), {3}, {1, 2}, 1) == PartitionState(1, 1, (1, 2), 1)
    assert on_broker_failure(s, (1, 2, 3, 4), {4}, {1, 2, 3}, 1) is None


def test_controlled_shutdown_moves_leadership_and_leaves_a_sole_replica_alone():
    """The shutting-down leader hands over to the next in-sync replica and leaves the ISR; a
    follower that shuts down leaves the ISR; a sole in-sync leader stays (moving would lose
    records)."""
    a = (1, 2, 3)
    s = PartitionState(1, 3, (1, 2, 3), 1)
    assert controlled_shutdown(s, a, {1, 2, 3}, 1, {1}) == PartitionState(2, 4, (2, 3), 1)
    assert controlled_shutdown(s, a, {1, 2, 3}, 1, {3}) == PartitionState(1, 4, (1, 2), 1)
    alone = PartitionState(1, 3, (1,), 1)
    assert controlled_shutdown(alone, a, {1, 2, 3}, 1, {1}) is None


def test_preferred_election():
    """The first assigned replica takes over when live, in sync and not shutting down."""
    a = (1, 2, 3)
    s = PartitionState(2, 3, (1, 2), 1)
    assert preferred_election(s, a, {1, 2}, 2) == PartitionState(1, 4, (1, 2), 2)
    assert preferred_election(s, a, {2}, 2) is None
    assert preferred_election(s, a, {1, 2}, 2, {1}) is None
    assert preferred_election(PartitionState(2, 3, (2,), 1), a, {1, 2}, 2) is None
    assert preferred_election(PartitionState(1, 3, (1, 2), 1), a, {1, 2}, 2) is None


def test_leader_imbalance_per_preferred_broker():
    """Broker 1 prefers two partitions and leads one: 50% imbalance; broker 2 leads its own."""
    assignments = {("t", 0): (1, 2), ("t", 1): (1, 2), ("t", 2): (2, 1)}
    leaders = {("t", 0): 1, ("t", 1): 2, ("t", 2): 2}
    assert leader_imbalance(leaders, assignments) == {1: 50.0, 2: 0.0}


def test_reassignment_steps():
    """[1,2,3] -> [3,4,5]: replicas [1,2,3,4,5], adding [4,5], removing [1,2]. A new target
    during the move is relative to the original; cancelling restores [1,2,3]. Completion
    waits for the target in the ISR, then leadership moves into it and the ISR shrinks."""
    full, adding, removing = start_reassignment((1, 2, 3), (), (3, 4, 5))
    assert (full, adding, removing) == ((1, 2, 3, 4, 5), (4, 5), (1, 2))
    assert start_reassignment(full, adding, (2, 6)) == ((1, 2, 3, 6), (6,), (1, 3))
    assert original_replicas(full, adding) == (1, 2, 3)
    assert not reassignment_complete((3, 4, 5), (1, 2, 3, 4))
    assert reassignment_complete((3, 4, 5), (1, 2, 3, 4, 5))
    s = PartitionState(1, 2, (1, 2, 3, 4, 5), 1)
    assert finish_reassignment(s, (3, 4, 5), set(BROKERS), 1) == PartitionState(3, 3, (3, 4, 5), 1)
    back = PartitionState(4, 2, (1, 3, 4), 1)
    assert finish_reassignment(back, (1, 2, 3), set(BROKERS), 1) == PartitionState(1, 3, (1, 3), 1)
    assert finish_reassignment(PartitionState(1, 2, (1,), 1), (4,), set(BROKERS), 1) is None


def test_placement_matches_kafkas_round_robin():
    """Five brokers, ten partitions, three replicas, start index 0 and shift 0: Kafka's
    layout (leaders round robin; followers shifted by one more after each round)."""
    got = assign_replicas({b: None for b in range(5)}, 10, 3, start_index=0, replica_shift=0)
    assert got == {
        0: (0, 1, 2),
        1: (1, 2, 3),
        2: (2, 3, 4),
        3: (3, 4, 0),
        4: (4, 0, 1),
        5: (0, 2, 3),
        6: (1, 3, 4),
        7: (2, 4, 0),
        8: (3, 0, 1),
        9: (4, 1, 2),
    }


@given(
    racks=st.lists(st.sampled_from("abc"), min_size=1, max_size=9),
    partitions=st.integers(1, 30),
    data=st.data(),
)
@settings(max_examples=300, deadline=None)
def test_rack_aware_placement_spreads_leaders_and_racks(racks, partitions, data):
    """With racks on every broker: each partition has RF distinct brokers, on RF distinct
    racks while RF <= the number of racks (every rack before any twice), and leaders
    differ by at most one partition between brokers."""
    brokers = {i: r for i, r in enumerate(racks)}
    rf = data.draw(st.integers(1, len(brokers)))
    start = data.draw(st.integers(0, len(brokers) - 1))
    got = assign_replicas(brokers, partitions, rf, start_index=start, replica_shift=start)
    assert sorted(got) == list(range(partitions))
    n_racks = len(set(racks))
    for replicas in got.values():
        assert len(replicas) == rf == len(set(replicas))
        used = Counter(brokers[b] for b in replicas)
        assert len(used) == min(rf, n_racks)
    leads = Counter(rs[0] for rs in got.values())
    counts = [leads.get(b, 0) for b in brokers]
    assert max(counts) - min(counts) <= 1


def test_placement_refusals_carry_kafkas_codes():
    """RF above the broker count or not positive: INVALID_REPLICATION_FACTOR (38); racks on
    only some brokers, or explicit assignments naming a broker twice, a broker not live,
    different RFs or a gap: INVALID_REPLICA_ASSIGNMENT (39)."""
    with pytest.raises(InvalidReplicationFactorError) as e:
        assign_replicas({1: None, 2: None}, 3, 3)
    assert e.value.kafka_code == ErrorCode.INVALID_REPLICATION_FACTOR == 38
    with pytest.raises(InvalidReplicationFactorError):
        assign_replicas({1: None}, 3, 0)
    with pytest.raises(InvalidReplicaAssignmentError) as e2:
        assign_replicas({1: "a", 2: None}, 3, 1)
    assert e2.value.kafka_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT == 39
    validate_assignment({0: (1, 2), 1: (2, 3)}, {1, 2, 3})
    for bad in ({0: (1, 1)}, {0: (1, 9)}, {0: (1, 2), 1: (2,)}, {0: (1,), 2: (2,)}, {0: ()}):
        with pytest.raises(InvalidReplicaAssignmentError):
            validate_assignment(bad, {1, 2, 3})
    validate_assignment({3: (1,), 4: (2,)}, {1, 2}, first_partition=3)


EVENTS = st.lists(
    st.tuples(st.sampled_from(["die", "start", "shutdown", "preferred"]), st.sampled_from(BROKERS)),
    max_size=40,
)


@given(
    assignment=st.lists(st.sampled_from(BROKERS), min_size=1, max_size=4, unique=True),
    events=EVENTS,
    unclean=st.booleans(),
)
@settings(max_examples=500, deadline=None)
def test_leader_is_always_live_assigned_and_in_sync(assignment, events, unclean):
    """Over any sequence of broker deaths, startups, controlled shutdowns and preferred
    elections, applied as the controller does: a leader is in the ISR, live, assigned, and
    never a broker chosen while shutting down; the ISR is never empty and only holds
    assigned replicas; the leader epoch grows by one with each change; a clean election
    only ever picks a replica that was in the ISR."""
    live = set(BROKERS)
    shutting: set[int] = set()
    state = initial_state(assignment, live, 1)
    for kind, broker in events:
        before = state
        if kind == "die":
            live.discard(broker)
            shutting.discard(broker)
            new = on_broker_failure(state, assignment, {broker}, live, 1, shutting, unclean)
        elif kind == "start":
            live.add(broker)
            new = on_broker_startup(state, assignment, {broker}, live, 1, shutting, unclean)
        elif kind == "shutdown" and broker in live:
            shutting.add(broker)
            new = controlled_shutdown(state, assignment, live, 1, shutting)
        else:
            new = preferred_election(state, assignment, live, 1, shutting)
        if new is None:
            continue
        state = new
        assert state.leader_epoch == before.leader_epoch + 1
        assert state.isr and set(state.isr) <= set(assignment)
        if state.leader != -1:
            assert state.leader in state.isr and state.leader in live
            assert state.leader in assignment
            if state.leader != before.leader:
                assert state.leader not in shutting
                if not unclean:
                    assert state.leader in before.isr
        if kind == "die":
            # A failure is handled completely at once: nothing more is due afterwards.
            assert reconcile(state, assignment, live, 1, shutting, unclean) is None
