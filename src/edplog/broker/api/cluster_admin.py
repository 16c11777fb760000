"""Cluster administration: leader elections (ElectLeaders) and KIP-455 partition
reassignments (AlterPartitionReassignments, ListPartitionReassignments).

In a cluster no broker changes partition state but the controller. A handler checks the
request against what ZooKeeper holds now (this broker's cache may lag it), writes what is to
be done where the controller takes it (/admin/preferred_replica_election,
/admin/reassign_partitions), and answers once this broker's metadata cache shows the outcome,
waiting at most the request's ``timeout_ms``; what the controller has not done by then is
answered REQUEST_TIMED_OUT (the request stays queued, as in Kafka's ZooKeeper mode).
ZooKeeper calls block: they run in the executor, never on the event loop.

The controller takes no unclean-election request: an offline partition whose live replicas
are all out of sync is elected only by a controller configured with
``unclean.leader.election.enable=true``. Asked for one anyway, the broker refuses with
POLICY_VIOLATION and says why; ELIGIBLE_LEADERS_NOT_AVAILABLE is kept for a partition with no
live replica at all, which no election could lead.

A single node holds the one replica of every partition: there is nothing to elect and nowhere
to move a partition but where it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...cluster import partition_state as rules
from ...cluster.node import ClusterNode
from ...cluster.zk import PartitionState, TopicAssignment, ZkClient
from ...errors import InvalidRequestError
from ..context import ErrorCode, RequestContext, Services
from .registry import ApiSpec

log = logging.getLogger("edplog.broker")

Body = dict[str, Any]
TP = tuple[str, int]
Outcome = tuple[int, str | None]
T = TypeVar("T")

PREFERRED, UNCLEAN = 0, 1
#: How often a waiting request looks at this broker's metadata cache (no ZooKeeper call).
POLL_S = 0.05
#: Every this many polls it also asks ZooKeeper whether the controller has taken the request
#: (a request the controller took without the outcome showing is decided from ZooKeeper).
ZK_CHECK_EVERY = 5


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _result(partition: int, outcome: Outcome) -> Body:
    return {"partition_id": partition, "error_code": outcome[0], "error_message": outcome[1]}


def _requested(req: Body) -> list[tuple[str, list[int]]] | None:
    """The request's topics and partitions (each once, in request order); None: all."""
    given = req.get("topic_partitions")
    if given is None:
        return None
    merged: dict[str, list[int]] = {}
    for item in given:
        partitions = merged.setdefault(item["topic"], [])
        partitions.extend(p for p in item["partitions"] or () if p not in partitions)
    return list(merged.items())


# ---- ElectLeaders (43) ---------------------------------------------------------------------


def elect_leaders_error(req: Body, code: ErrorCode) -> Body:
    wanted = _requested(req) or []
    return {
        "throttle_time_ms": 0,
        "error_code": code,
        "replica_election_results": [
            {"topic": t, "partition_result": [_result(p, (code, None)) for p in ps]}
            for t, ps in wanted
        ],
    }


def _election_response(
    wanted: list[tuple[str, list[int]]], outcomes: dict[TP, Outcome], everything: bool
) -> Body:
    results = []
    for topic, partitions in wanted:
        listed = [
            _result(p, outcomes[(topic, p)])
            for p in partitions
            # Asked for every partition, Kafka leaves out those that need no election.
            if not (everything and outcomes[(topic, p)][0] == ErrorCode.ELECTION_NOT_NEEDED)
        ]
        results.append({"topic": topic, "partition_result": listed})
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "replica_election_results": results,
    }


async def elect_leaders(ctx: RequestContext, services: Services, req: Body) -> Body:
    """PREFERRED (0): the first replica of each partition's assignment becomes its leader.
    UNCLEAN (1): an offline partition gets a leader (see the module docstring). ``null``
    topic_partitions means every partition of every topic."""
    election = req.get("election_type", PREFERRED)
    if election not in (PREFERRED, UNCLEAN):
        raise InvalidRequestError(f"unknown election type {election}")
    wanted = _requested(req)
    if services.cluster is None:
        return _elect_single_node(services, wanted)
    cluster = services.cluster
    view = await _blocking(_read_cluster, cluster.zk, None if wanted is None else dict(wanted))
    everything = wanted is None
    if wanted is None:
        wanted = [(t, sorted(ta.partitions)) for t, ta in sorted(view.assignments.items())]
    outcomes: dict[TP, Outcome] = {}
    targets: dict[TP, int] = {}  # partitions to wait for, with the leader to expect (-1: any)
    for topic, partitions in wanted:
        for p in partitions:
            tp = (topic, p)
            decided = view.unknown(tp)
            if decided is None and election == PREFERRED:
                decided = view.preferred_refusal(tp)
                if decided is None:
                    targets[tp] = view.replicas(tp)[0]
            elif decided is None:
                decided = view.unclean_refusal(tp, cluster.settings.unclean_leader_election)
                if decided is None:
                    targets[tp] = -1
            if decided is not None:
                outcomes[tp] = decided
    if targets:
        timeout_ms = int(req.get("timeout_ms", 60_000))
        if election == PREFERRED:
            await _blocking(cluster.zk.request_preferred_election, sorted(targets))
            outcomes.update(await _await_preferred(services, cluster, targets, timeout_ms))
        else:
            outcomes.update(await _await_leaders(services, cluster, targets, timeout_ms))
    return _election_response(wanted, outcomes, everything)


def _elect_single_node(services: Services, wanted: list[tuple[str, list[int]]] | None) -> Body:
    topics = services.store.topics()
    everything = wanted is None
    if wanted is None:
        wanted = [(t, list(range(n))) for t, n in sorted(topics.items())]
    me = services.config.node_id
    outcomes: dict[TP, Outcome] = {}
    for topic, partitions in wanted:
        for p in partitions:
            if 0 <= p < topics.get(topic, 0):
                outcomes[(topic, p)] = (
                    ErrorCode.ELECTION_NOT_NEEDED,
                    f"broker {me}, the only replica of {topic}-{p}, leads it",
                )
            else:
                outcomes[(topic, p)] = (_UNKNOWN, f"no partition {topic}-{p}")
    return _election_response(wanted, outcomes, everything)


_UNKNOWN = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


@dataclass(frozen=True)
class _ClusterView:
    """What ZooKeeper holds for the partitions of a request, read at once."""

    assignments: dict[str, TopicAssignment]
    states: dict[TP, PartitionState | None]
    live: frozenset[int]
    shutting_down: frozenset[int]

    def replicas(self, tp: TP) -> tuple[int, ...]:
        ta = self.assignments.get(tp[0])
        return ta.partitions.get(tp[1], ()) if ta is not None else ()

    def unknown(self, tp: TP) -> Outcome | None:
        if not self.replicas(tp):
            return _UNKNOWN, f"no partition {tp[0]}-{tp[1]}"
        return None

    def preferred_refusal(self, tp: TP) -> Outcome | None:
        """Why the preferred replica cannot or need not lead; None when it can take over."""
        name = f"{tp[0]}-{tp[1]}"
        preferred = self.replicas(tp)[0]
        state = self.states.get(tp)
        if state is None:
            return ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, f"{name} has no leader state yet"
        if state.leader == preferred:
            return (
                ErrorCode.ELECTION_NOT_NEEDED,
                f"broker {preferred}, the preferred replica, already leads {name}",
            )
        why = None
        if preferred not in self.live:
            why = "is not live"
        elif preferred not in state.isr:
            why = f"is not in the ISR {list(state.isr)}"
        elif preferred in self.shutting_down:
            why = "is shutting down"
        if why is not None:
            return (
                ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                f"broker {preferred}, the preferred replica of {name}, {why}",
            )
        return None

    def unclean_refusal(self, tp: TP, controller_elects_unclean: bool) -> Outcome | None:
        """Why no unclean election happens; None when the controller elects a leader by
        itself (a live in-sync replica, or unclean election enabled in its configuration)."""
        name = f"{tp[0]}-{tp[1]}"
        state = self.states.get(tp)
        if state is None:
            return ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, f"{name} has no leader state yet"
        if state.leader in self.live:
            return ErrorCode.ELECTION_NOT_NEEDED, f"broker {state.leader} leads {name}"
        replicas = self.replicas(tp)
        candidates = [r for r in replicas if r in self.live and r not in self.shutting_down]
        if not candidates:
            return (
                ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                f"no replica of {name} is live (replicas {list(replicas)})",
            )
        if any(r in state.isr for r in candidates) or controller_elects_unclean:
            return None
        return (
            ErrorCode.POLICY_VIOLATION,
            f"unclean election of {name} refused: its live replicas {candidates} are not in "
            f"the ISR {list(state.isr)}, and this cluster's controller elects an out-of-sync "
            "replica only when unclean.leader.election.enable=true (an ElectLeaders UNCLEAN "
            "request does not override it here)",
        )


def _read_cluster(zk: ZkClient, topics: dict[str, list[int]] | None) -> _ClusterView:
    names = zk.topic_names() if topics is None else sorted(topics)
    assignments = {}
    for name in names:
        ta = zk.assignment(name)
        if ta is not None:
            assignments[name] = ta
    tps = [(t, p) for t, ta in assignments.items() for p in sorted(ta.partitions)]
    return _ClusterView(
        assignments,
        zk.partition_states(tps),
        frozenset(zk.live_brokers()),
        frozenset(zk.shutting_down_brokers()),
    )


def _timed_out(tp: TP, timeout_ms: int, what: str) -> Outcome:
    return (
        ErrorCode.REQUEST_TIMED_OUT,
        f"{tp[0]}-{tp[1]}: the controller had not {what} within {timeout_ms} ms",
    )


async def _await_preferred(
    services: Services, cluster: ClusterNode, targets: dict[TP, int], timeout_ms: int
) -> dict[TP, Outcome]:
    """Wait until each partition is led by its preferred replica, or the controller took the
    request without electing it (decided again from ZooKeeper), or the time is up."""
    out: dict[TP, Outcome] = {}
    pending = dict(targets)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0, timeout_ms) / 1000
    polls = 0
    while pending and loop.time() < deadline and not services.closing:
        await asyncio.sleep(POLL_S)
        polls += 1
        states = cluster.cache.snapshot.states
        for tp, leader in list(pending.items()):
            state = states.get(tp)
            if state is not None and state.leader == leader:
                out[tp] = (ErrorCode.NONE, None)
                del pending[tp]
        if not pending or polls % ZK_CHECK_EVERY:
            continue
        queued = set((await _blocking(cluster.zk.preferred_election_requests))[0])
        taken = {tp: leader for tp, leader in pending.items() if tp not in queued}
        if not taken:
            continue
        view = await _blocking(_read_cluster, cluster.zk, _topics_of(taken))
        again = []
        for tp in taken:
            state = view.states.get(tp)
            if state is not None and state.leader == taken[tp]:
                out[tp] = (ErrorCode.NONE, None)
            elif (refusal := view.unknown(tp) or view.preferred_refusal(tp)) is not None:
                out[tp] = refusal
            else:
                again.append(tp)  # still possible: the controller lost a race; ask again
                continue
            del pending[tp]
        if again:
            await _blocking(cluster.zk.request_preferred_election, again)
    for tp in pending:
        out[tp] = _timed_out(tp, timeout_ms, "elected the preferred leader")
    return out


async def _await_leaders(
    services: Services, cluster: ClusterNode, targets: dict[TP, int], timeout_ms: int
) -> dict[TP, Outcome]:
    """Wait until each offline partition has a live leader (elected by the controller on its
    own: nothing is requested), or the time is up."""
    out: dict[TP, Outcome] = {}
    pending = set(targets)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0, timeout_ms) / 1000
    while pending and loop.time() < deadline and not services.closing:
        await asyncio.sleep(POLL_S)
        snap = cluster.cache.snapshot
        for tp in list(pending):
            state = snap.states.get(tp)
            if state is not None and state.leader in snap.brokers:
                out[tp] = (ErrorCode.NONE, None)
                pending.discard(tp)
    for tp in pending:
        out[tp] = _timed_out(tp, timeout_ms, "elected a leader")
    return out


def _topics_of(tps: dict[TP, Any] | set[TP]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for topic, p in tps:
        out.setdefault(topic, []).append(p)
    return out


# ---- AlterPartitionReassignments (45) ------------------------------------------------------


def _reassigned(partition: int, outcome: Outcome) -> Body:
    return {"partition_index": partition, "error_code": outcome[0], "error_message": outcome[1]}


def alter_reassignments_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "allow_replication_factor_change": req.get("allow_replication_factor_change", True),
        "error_code": code,
        "error_message": None,
        "responses": [
            {
                "name": t["name"],
                "partitions": [
                    _reassigned(p["partition_index"], (code, None)) for p in t["partitions"]
                ],
            }
            for t in req["topics"]
        ],
    }


def _moves(req: Body) -> list[tuple[str, list[tuple[int, tuple[int, ...] | None]]]]:
    out: dict[str, dict[int, tuple[int, ...] | None]] = {}
    for topic in req["topics"]:
        parts = out.setdefault(topic["name"], {})
        for p in topic["partitions"]:
            rs = p.get("replicas")
            parts[p["partition_index"]] = None if rs is None else tuple(rs)
    return [(t, list(ps.items())) for t, ps in out.items()]


def _target_refusal(
    name: str,
    target: tuple[int, ...],
    current: tuple[int, ...],
    live: frozenset[int],
    allow_rf_change: bool,
) -> Outcome | None:
    """Kafka's checks of a reassignment target: replicas given, none negative or repeated,
    all live brokers; the replication factor kept unless the request allows a change."""
    invalid = ErrorCode.INVALID_REPLICA_ASSIGNMENT
    if not target:
        return invalid, f"{name}: the replica list is empty"
    if any(b < 0 for b in target):
        return invalid, f"{name}: replicas {list(target)} include a negative broker id"
    if len(set(target)) != len(target):
        return invalid, f"{name}: replicas {list(target)} name a broker twice"
    absent = [b for b in target if b not in live]
    if absent:
        return invalid, f"{name}: brokers {absent} are not live"
    if not allow_rf_change and len(target) != len(current):
        return (
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"{name}: replicas {list(target)} change the replication factor from "
            f"{len(current)} to {len(target)}, which the request does not allow",
        )
    return None


async def alter_partition_reassignments(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Start (replicas given) or cancel (replicas null) reassignments; answered once the
    controller has begun each one (the copy of the data goes on after the answer)."""
    allow_rf = bool(req.get("allow_replication_factor_change", True))
    wanted = _moves(req)
    if services.cluster is None:
        outcomes = _reassign_single_node(services, wanted, allow_rf)
    else:
        outcomes = await _reassign_in_cluster(services, services.cluster, req, wanted, allow_rf)
    return {
        "throttle_time_ms": 0,
        "allow_replication_factor_change": allow_rf,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "responses": [
            {"name": t, "partitions": [_reassigned(p, outcomes[(t, p)]) for p, _ in ps]}
            for t, ps in wanted
        ],
    }


def _reassign_single_node(
    services: Services,
    wanted: list[tuple[str, list[tuple[int, tuple[int, ...] | None]]]],
    allow_rf: bool,
) -> dict[TP, Outcome]:
    topics = services.store.topics()
    me = services.config.node_id
    out: dict[TP, Outcome] = {}
    for topic, parts in wanted:
        for p, target in parts:
            name = f"{topic}-{p}"
            if not 0 <= p < topics.get(topic, 0):
                out[(topic, p)] = (_UNKNOWN, f"no partition {name}")
            elif target is None:
                out[(topic, p)] = (
                    ErrorCode.NO_REASSIGNMENT_IN_PROGRESS,
                    f"no reassignment of {name} is in progress",
                )
            else:
                refusal = _target_refusal(name, target, (me,), frozenset({me}), allow_rf)
                out[(topic, p)] = refusal or (ErrorCode.NONE, None)
    return out


def _started(ta: TopicAssignment | None, p: int, target: tuple[int, ...] | None) -> bool:
    """Whether the assignment shows the controller has taken this move (or cancellation)."""
    if ta is None or p not in ta.partitions:
        return True  # deleted meanwhile: nothing left to wait for
    replicas, adding = ta.partitions[p], ta.adding.get(p, ())
    removing = ta.removing.get(p, ())
    if target is None:
        return not (adding or removing)
    if replicas == target and not (adding or removing):
        return True  # done already (a move within the in-sync replicas completes at once)
    expected = rules.start_reassignment(replicas, adding, target)
    return bool(adding or removing) and expected == (replicas, adding, removing)


async def _reassign_in_cluster(
    services: Services,
    cluster: ClusterNode,
    req: Body,
    wanted: list[tuple[str, list[tuple[int, tuple[int, ...] | None]]]],
    allow_rf: bool,
) -> dict[TP, Outcome]:
    zk = cluster.zk
    view = await _blocking(_read_cluster, zk, {t: [p for p, _ in ps] for t, ps in wanted})
    queued, _ = await _blocking(zk.reassignment_requests)
    out: dict[TP, Outcome] = {}
    moves: dict[TP, tuple[int, ...] | None] = {}
    for topic, parts in wanted:
        ta = view.assignments.get(topic)
        for p, target in parts:
            tp, name = (topic, p), f"{topic}-{p}"
            if ta is None or p not in ta.partitions:
                out[tp] = (_UNKNOWN, f"no partition {name}")
                continue
            adding = ta.adding.get(p, ())
            in_progress = bool(adding or ta.removing.get(p, ()))
            if target is None:
                if in_progress or queued.get(tp) is not None:
                    moves[tp] = None
                else:
                    out[tp] = (
                        ErrorCode.NO_REASSIGNMENT_IN_PROGRESS,
                        f"no reassignment of {name} is in progress",
                    )
                continue
            original = rules.original_replicas(ta.partitions[p], adding)
            refusal = _target_refusal(name, target, original, view.live, allow_rf)
            if refusal is not None:
                out[tp] = refusal
            else:
                moves[tp] = target
    if not moves:
        return out
    await _blocking(zk.request_reassignment, moves)
    log.info(
        "reassignments requested: %s",
        ", ".join(
            f"{t}-{p} -> {'cancel' if rs is None else list(rs)}" for (t, p), rs in moves.items()
        ),
    )
    out.update(await _await_started(services, cluster, moves, int(req.get("timeout_ms", 60_000))))
    return out


async def _await_started(
    services: Services,
    cluster: ClusterNode,
    moves: dict[TP, tuple[int, ...] | None],
    timeout_ms: int,
) -> dict[TP, Outcome]:
    """Wait until this broker's cache shows the controller began each move (or cancelled
    it). A request the controller dropped without a change it refused (a target broker
    that died meanwhile): that is decided from ZooKeeper."""
    out: dict[TP, Outcome] = {}
    pending = dict(moves)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0, timeout_ms) / 1000
    polls = 0
    while pending and loop.time() < deadline and not services.closing:
        await asyncio.sleep(POLL_S)
        polls += 1
        topics = cluster.cache.snapshot.topics
        for tp, target in list(pending.items()):
            if _started(topics.get(tp[0]), tp[1], target):
                out[tp] = (ErrorCode.NONE, None)
                del pending[tp]
        if not pending or polls % ZK_CHECK_EVERY:
            continue
        queued, _ = await _blocking(cluster.zk.reassignment_requests)
        dropped = [tp for tp in pending if tp not in queued]
        for tp in dropped:
            ta = await _blocking(cluster.zk.assignment, tp[0])
            if _started(ta, tp[1], pending[tp]):
                out[tp] = (ErrorCode.NONE, None)
            else:
                out[tp] = (
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"{tp[0]}-{tp[1]}: the controller refused the move (a target broker is "
                    "no longer live)",
                )
            del pending[tp]
    for tp in pending:
        out[tp] = _timed_out(tp, timeout_ms, "started the reassignment")
    return out


# ---- ListPartitionReassignments (46) -------------------------------------------------------


def list_reassignments_error(req: Body, code: ErrorCode) -> Body:
    return {"throttle_time_ms": 0, "error_code": code, "error_message": None, "topics": []}


async def list_partition_reassignments(ctx: RequestContext, services: Services, req: Body) -> Body:
    """The reassignments in progress (partitions with replicas being added or removed), from
    this broker's view of the topic assignments; null topics: all. Unknown topics and
    partitions not being moved are left out, as Kafka does."""
    topics_out: list[Body] = []
    if services.cluster is not None:
        assignments = services.cluster.cache.snapshot.topics
        asked = req.get("topics")
        selection: list[tuple[str, set[int] | None]]
        if asked is None:
            selection = [(t, None) for t in sorted(assignments)]
        else:
            selection = [(t["name"], set(t["partition_indexes"] or ())) for t in asked]
        for name, indexes in selection:
            ta = assignments.get(name)
            if ta is None:
                continue
            parts = []
            for p in sorted(ta.partitions):
                adding, removing = ta.adding.get(p, ()), ta.removing.get(p, ())
                if (indexes is None or p in indexes) and (adding or removing):
                    parts.append(
                        {
                            "partition_index": p,
                            "replicas": list(ta.partitions[p]),
                            "adding_replicas": list(adding),
                            "removing_replicas": list(removing),
                        }
                    )
            if parts:
                topics_out.append({"name": name, "partitions": parts})
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "topics": topics_out,
    }


APIS = [
    ApiSpec(43, elect_leaders, elect_leaders_error),
    ApiSpec(45, alter_partition_reassignments, alter_reassignments_error),
    ApiSpec(46, list_partition_reassignments, list_reassignments_error),
]
