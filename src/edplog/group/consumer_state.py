"""The data of a consumer-protocol group (KIP-848): members, epochs, assignments.

Plain data and set arithmetic over assignments (topic id -> partitions), kept apart from the
transitions in :mod:`.consumer_group` as :mod:`.state` is for the classic protocol.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .assignors import Assignment

Body = dict[str, Any]


class MemberState(enum.Enum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


class ConsumerGroupState(enum.Enum):
    """Values are the names Kafka reports (ListGroups, ConsumerGroupDescribe)."""

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300_000
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    last_heartbeat: float = 0.0
    revocation_deadline: float | None = None
    #: The assignment last sent, so an unchanged one is not sent again.
    sent: Assignment | None = None
    #: The member id of the static member this one took over (its records are deleted).
    replaces: str | None = None


@dataclass
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    #: name -> (topic id, partitions) of the subscribed topics the target was computed from.
    subscribed_metadata: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.assignment_epoch != self.group_epoch:
            return ConsumerGroupState.ASSIGNING
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.state is not MemberState.STABLE:
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def preferred_assignor(self, default: str) -> str:
        """The assignor most members ask for (ties: by name), else the broker default."""
        votes: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor:
                votes[m.server_assignor] = votes.get(m.server_assignor, 0) + 1
        if not votes:
            return default
        return max(sorted(votes), key=lambda n: votes[n])


class HeartbeatError(Exception):
    """A request the coordinator answers with ``code`` (and ``message``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def copy_of(a: Mapping[uuid.UUID, set[int]]) -> Assignment:
    return {tid: set(ps) for tid, ps in a.items() if ps}


def minus(a: Assignment, b: Assignment) -> Assignment:
    return {tid: ps - b.get(tid, set()) for tid, ps in a.items() if ps - b.get(tid, set())}


def common(a: Assignment, b: Assignment) -> Assignment:
    return {tid: ps & b.get(tid, set()) for tid, ps in a.items() if ps & b.get(tid, set())}


def owned_in(req_partitions: list[Body] | None) -> Assignment | None:
    if req_partitions is None:
        return None
    return {tp["topic_id"]: set(tp["partitions"]) for tp in req_partitions if tp["partitions"]}


def fingerprint(m: ConsumerMember) -> tuple[Any, ...]:
    """Everything of a member that its durable records hold."""

    def frozen(a: Assignment) -> tuple[Any, ...]:
        return tuple(sorted((str(t), tuple(sorted(p))) for t, p in a.items()))

    return (
        m.member_epoch,
        m.previous_member_epoch,
        m.state,
        frozen(m.assigned),
        frozen(m.pending_revocation),
        tuple(m.subscribed_topic_names),
        m.subscribed_topic_regex,
        m.server_assignor,
        m.instance_id,
        m.rack_id,
        m.client_id,
        m.client_host,
        m.rebalance_timeout_ms,
    )


def wire_assignment(a: Assignment) -> Body:
    return {
        "topic_partitions": [
            {"topic_id": tid, "partitions": sorted(ps)} for tid, ps in sorted(a.items(), key=str)
        ]
    }


__all__ = [
    "ConsumerGroup",
    "ConsumerGroupState",
    "ConsumerMember",
    "HeartbeatError",
    "MemberState",
    "common",
    "copy_of",
    "fingerprint",
    "minus",
    "owned_in",
    "wire_assignment",
]
