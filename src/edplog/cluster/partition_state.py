"""The controller's rules as pure functions: leader election, ISR edits, reassignment steps
and replica placement. No ZooKeeper here: the controller reads, calls these, and writes what
they return with a fenced multi-op (controller.py).

A transform returns the new PartitionState, or None when nothing changes. Every leadership
change and every ISR change the controller makes bumps leader_epoch by 1 (leaders' own ISR
shrinks and expands do not: they go through ZkClient.update_isr).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence, Set

from ..errors import InvalidReplicaAssignmentError, InvalidReplicationFactorError
from .zk import PartitionState

__all__ = [
    "assign_replicas",
    "controlled_shutdown",
    "elect_leader",
    "finish_reassignment",
    "initial_state",
    "leader_imbalance",
    "on_broker_failure",
    "on_broker_startup",
    "original_replicas",
    "preferred_election",
    "reassignment_complete",
    "reconcile",
    "start_reassignment",
    "validate_assignment",
]

NO_LEADER = -1
_EMPTY: frozenset[int] = frozenset()


def elect_leader(
    assignment: Sequence[int],
    isr: Sequence[int],
    live: Set[int],
    shutting_down: Set[int] = _EMPTY,
    unclean: bool = False,
) -> tuple[int, tuple[int, ...]]:
    """(leader, isr) for a partition that needs a leader.

    Clean: the first replica in assignment order that is live, in the ISR and not shutting
    down; the ISR keeps its live members. None: (-1, the ISR as it was), so that an ISR member
    that comes back can lead again without losing acknowledged records. Unclean (only when
    enabled): any live replica, alone in the ISR; records only the old ISR had are lost.
    """
    live_isr = tuple(b for b in isr if b in live)
    for replica in assignment:
        if replica in live_isr and replica not in shutting_down:
            return replica, live_isr
    if unclean:
        for replica in assignment:
            if replica in live and replica not in shutting_down:
                return replica, (replica,)
    return NO_LEADER, tuple(isr)


def _changed(
    old: PartitionState, leader: int, isr: Sequence[int], controller_epoch: int
) -> PartitionState | None:
    isr = tuple(isr)
    if leader == old.leader and isr == old.isr:
        return None
    return PartitionState(leader, old.leader_epoch + 1, isr, controller_epoch, old.version)


def initial_state(
    assignment: Sequence[int],
    live: Set[int],
    controller_epoch: int,
    shutting_down: Set[int] = _EMPTY,
) -> PartitionState:
    """A new partition: leader the first live replica (one not shutting down when there is
    one), ISR the live replicas in assignment order, leader epoch 0. With no replica live the
    partition starts offline with every replica in the ISR: no replica holds a record yet, so
    whichever comes first may lead."""
    live_replicas = tuple(r for r in assignment if r in live)
    if not live_replicas:
        return PartitionState(NO_LEADER, 0, tuple(assignment), controller_epoch)
    leader = next((r for r in live_replicas if r not in shutting_down), live_replicas[0])
    return PartitionState(leader, 0, live_replicas, controller_epoch)


def reconcile(
    state: PartitionState,
    assignment: Sequence[int],
    live: Set[int],
    controller_epoch: int,
    shutting_down: Set[int] = _EMPTY,
    unclean: bool = False,
) -> PartitionState | None:
    """The state the rules want given who is live now: dead brokers leave the ISR (unless no
    live member would remain), a partition whose leader is dead or missing gets one elected.
    Applying it after any set of broker failures and startups gives the same result as
    applying on_broker_failure / on_broker_startup for each."""
    live_isr = tuple(b for b in state.isr if b in live)
    if state.leader != NO_LEADER and state.leader in live_isr:
        return _changed(state, state.leader, live_isr, controller_epoch)
    leader, isr = elect_leader(assignment, state.isr, live, shutting_down, unclean)
    return _changed(state, leader, isr, controller_epoch)


def on_broker_failure(
    state: PartitionState,
    assignment: Sequence[int],
    dead: Set[int],
    live: Set[int],
    controller_epoch: int,
    shutting_down: Set[int] = _EMPTY,
    unclean: bool = False,
) -> PartitionState | None:
    """Brokers ``dead`` are gone (``live`` is who remains): they leave the ISR unless no live
    member would remain, and a partition they led gets a new leader (or goes offline)."""
    if state.leader not in dead and not dead & set(state.isr):
        return None
    return reconcile(state, assignment, live - dead, controller_epoch, shutting_down, unclean)


def on_broker_startup(
    state: PartitionState,
    assignment: Sequence[int],
    started: Set[int],
    live: Set[int],
    controller_epoch: int,
    shutting_down: Set[int] = _EMPTY,
    unclean: bool = False,
) -> PartitionState | None:
    """Brokers ``started`` came (back): an offline partition whose ISR holds one of them gets
    it as leader (with unclean election, any of its replicas)."""
    if state.leader != NO_LEADER or not started & set(assignment):
        return None
    return reconcile(state, assignment, live | started, controller_epoch, shutting_down, unclean)


def controlled_shutdown(
    state: PartitionState,
    assignment: Sequence[int],
    live: Set[int],
    controller_epoch: int,
    shutting_down: Set[int],
) -> PartitionState | None:
    """Move leadership off shutting-down brokers to another live ISR member, and take them
    out of every ISR where another member remains. A partition whose only in-sync replica is
    shutting down keeps it as leader: moving would lose records."""
    leader = state.leader
    if leader in shutting_down:
        for replica in assignment:
            if replica in state.isr and replica in live and replica not in shutting_down:
                leader = replica
                break
        else:
            return None
    isr = tuple(b for b in state.isr if b not in shutting_down)
    if not isr or (leader != NO_LEADER and leader not in isr):
        return None
    return _changed(state, leader, isr, controller_epoch)


def preferred_election(
    state: PartitionState,
    assignment: Sequence[int],
    live: Set[int],
    controller_epoch: int,
    shutting_down: Set[int] = _EMPTY,
) -> PartitionState | None:
    """The preferred replica (first in the assignment) becomes leader when it is live, in
    the ISR and not shutting down; None when it leads already or cannot."""
    if not assignment:
        return None
    preferred = assignment[0]
    if state.leader == preferred or preferred not in state.isr:
        return None
    if preferred not in live or preferred in shutting_down:
        return None
    return _changed(state, preferred, state.isr, controller_epoch)


def leader_imbalance(
    leaders: Mapping[tuple[str, int], int], assignments: Mapping[tuple[str, int], Sequence[int]]
) -> dict[int, float]:
    """Per preferred broker, the percentage of the partitions it prefers that it does not
    lead (Kafka's leader.imbalance.per.broker.percentage compares against this)."""
    preferred: dict[int, int] = {}
    not_leading: dict[int, int] = {}
    for tp, replicas in assignments.items():
        if not replicas:
            continue
        broker = replicas[0]
        preferred[broker] = preferred.get(broker, 0) + 1
        if leaders.get(tp, NO_LEADER) != broker:
            not_leading[broker] = not_leading.get(broker, 0) + 1
    return {b: 100.0 * not_leading.get(b, 0) / n for b, n in sorted(preferred.items())}


# ---- reassignment (KIP-455) ----------------------------------------------------------------


def original_replicas(replicas: Sequence[int], adding: Sequence[int]) -> tuple[int, ...]:
    """The replicas before a reassignment in progress began (what cancelling restores)."""
    return tuple(r for r in replicas if r not in adding)


def start_reassignment(
    replicas: Sequence[int], adding: Sequence[int], target: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(replicas, adding, removing) while moving to ``target``: the original replicas in
    their order, then the ones being added, so that cancelling restores the original order
    exactly (the target's order is in the pending request, applied at completion). A new
    target replaces one in progress, relative to the original replicas."""
    original = original_replicas(replicas, adding)
    added = tuple(r for r in target if r not in original)
    return original + added, added, tuple(r for r in original if r not in target)


def reassignment_complete(target: Sequence[int], isr: Sequence[int]) -> bool:
    """Every target replica is in sync: leadership can move and the others can go."""
    return set(target) <= set(isr)


def finish_reassignment(
    state: PartitionState,
    replicas: Sequence[int],
    live: Set[int],
    controller_epoch: int,
    shutting_down: Set[int] = _EMPTY,
) -> PartitionState | None:
    """Shrink the ISR to ``replicas`` (the target when completing, the original replicas when
    cancelling) and move leadership into it if the leader is outside it. None when nothing
    changes, or when no ISR member is among ``replicas`` (the state is then left alone)."""
    isr = tuple(b for b in state.isr if b in replicas)
    if not isr:
        return None
    leader = state.leader
    if leader not in isr or leader not in live or leader in shutting_down:
        leader = next(
            (r for r in replicas if r in isr and r in live and r not in shutting_down),
            NO_LEADER if leader not in isr else leader,
        )
    return _changed(state, leader, isr, controller_epoch)


# ---- placement (CreateTopics, CreatePartitions) --------------------------------------------


def validate_assignment(
    assignment: Mapping[int, Sequence[int]], live: Set[int], first_partition: int = 0
) -> None:
    """Explicit assignments, as Kafka checks them: partitions numbered from first_partition
    without gaps, each with at least one replica, no broker twice, one replication factor for
    all, and only live brokers. InvalidReplicaAssignmentError otherwise."""
    if not assignment:
        raise InvalidReplicaAssignmentError("no partitions in the assignment")
    expected = list(range(first_partition, first_partition + len(assignment)))
    if sorted(assignment) != expected:
        raise InvalidReplicaAssignmentError(
            f"partitions must be numbered {expected[0]}..{expected[-1]}: {sorted(assignment)}"
        )
    factors = {len(rs) for rs in assignment.values()}
    if 0 in factors:
        raise InvalidReplicaAssignmentError("a partition has no replicas")
    if len(factors) > 1:
        raise InvalidReplicaAssignmentError("all partitions must have the same number of replicas")
    for partition, replicas in sorted(assignment.items()):
        if len(set(replicas)) != len(replicas):
            raise InvalidReplicaAssignmentError(
                f"partition {partition} names a broker twice: {list(replicas)}"
            )
        unknown = [b for b in replicas if b not in live]
        if unknown:
            raise InvalidReplicaAssignmentError(
                f"partition {partition}: brokers {unknown} are not live brokers"
            )


def _rack_alternated(brokers: Mapping[int, str | None]) -> list[int]:
    """Brokers ordered rack by rack in turn (r1's first, r2's first, ..., r1's second...),
    so that consecutive positions are on different racks."""
    by_rack: dict[str, list[int]] = {}
    for broker in sorted(brokers):
        by_rack.setdefault(str(brokers[broker]), []).append(broker)
    racks = [by_rack[r] for r in sorted(by_rack)]
    out: list[int] = []
    for i in range(max(len(r) for r in racks)):
        out.extend(r[i] for r in racks if i < len(r))
    return out


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    return (first + 1 + (shift + j) % (n - 1)) % n


def assign_replicas(
    brokers: Mapping[int, str | None],
    partitions: int,
    replication_factor: int,
    *,
    start_index: int | None = None,
    start_partition: int = 0,
    replica_shift: int | None = None,
) -> dict[int, tuple[int, ...]]:
    """Replica lists for ``partitions`` partitions over ``brokers`` (id -> rack or None).

    Kafka's placement: partition leaders go round robin over the brokers from start_index,
    followers at a shift that grows each time the round wraps, so that leaders and followers
    spread evenly. When every broker has a rack the broker list alternates racks and each
    partition takes a replica from every rack before doubling up on one. Deterministic given
    start_index and replica_shift (random otherwise, as in Kafka).
    InvalidReplicationFactorError for a factor that is not positive or exceeds the brokers;
    InvalidReplicaAssignmentError when only some brokers have a rack.
    """
    if partitions <= 0:
        return {}
    if replication_factor <= 0:
        raise InvalidReplicationFactorError(
            f"replication factor must be positive: {replication_factor}"
        )
    if replication_factor > len(brokers):
        raise InvalidReplicationFactorError(
            f"replication factor {replication_factor} larger than the {len(brokers)} "
            "available brokers"
        )
    racked = [b for b, r in brokers.items() if r is not None]
    if racked and len(racked) != len(brokers):
        raise InvalidReplicaAssignmentError(
            "not all brokers have rack information for rack-aware replica assignment"
        )
    ordered = _rack_alternated(brokers) if racked else sorted(brokers)
    n = len(ordered)
    start = random.randrange(n) if start_index is None else start_index
    shift = random.randrange(n) if replica_shift is None else replica_shift
    rack_of = {b: brokers[b] for b in ordered}
    n_racks = len({rack_of[b] for b in ordered}) if racked else 0
    out: dict[int, tuple[int, ...]] = {}
    for partition in range(start_partition, start_partition + partitions):
        if partition > 0 and partition % n == 0:
            shift += 1
        first = (partition + start) % n
        replicas = [ordered[first]]
        if not racked:
            for j in range(replication_factor - 1):
                replicas.append(ordered[_replica_index(first, shift, j, n)])
        else:
            racks_used = {rack_of[ordered[first]]}
            k = 0
            # Bounded: every broker is tried within n steps of k, and one always qualifies.
            while len(replicas) < replication_factor and k < n * n:
                broker = ordered[_replica_index(first, shift * n_racks, k, n)]
                k += 1
                rack = rack_of[broker]
                new_rack = rack not in racks_used or len(racks_used) == n_racks
                if new_rack and (broker not in replicas or len(replicas) == n):
                    replicas.append(broker)
                    racks_used.add(rack)
        out[partition] = tuple(replicas)
    return out
