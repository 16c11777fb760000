"""The data of one consumer group: its members, its state and the response bodies built from them.

Kept free of asyncio scheduling decisions so the rebalance rules in :mod:`.membership` read as
transitions over plain data. Field names of the dicts built here are the snake_case of Kafka's
protocol field names; the broker's encoder drops the fields a version lacks.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

from ..errors import ErrorCode

#: DescribeGroups' "authorized operations not requested" sentinel (INT32_MIN).
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
#: READ (3), DELETE (6) and DESCRIBE (8): every group operation, as there is no authorizer yet.
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)

Protocols = list[tuple[str, bytes]]


class GroupState(enum.Enum):
    """The classic protocol's group states; values are the names Kafka reports to clients."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass
class Member:
    """One member of a group, with the long-poll futures of its outstanding Join/Sync calls."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    last_heartbeat: float = 0.0
    join_future: asyncio.Future[dict[str, Any]] | None = None
    sync_future: asyncio.Future[dict[str, Any]] | None = None

    def protocol_names(self) -> set[str]:
        return {name for name, _ in self.protocols}

    def metadata_for(self, protocol_name: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol_name:
                return metadata
        return b""

    def session_expired(self, now: float) -> bool:
        """True when the member missed its session; members in a long-poll are kept alive.

        A member parked in JoinGroup or SyncGroup cannot heartbeat on most clients, so the
        rebalance timeout (not the session timeout) bounds it, as in Kafka.
        """
        if self.join_future is not None or self.sync_future is not None:
            return False
        return now >= self.last_heartbeat + self.session_timeout_ms / 1000.0


def _subscription_topics(metadata: bytes) -> list[str] | None:
    """Topic names at the head of a consumer subscription, or None if it does not parse."""
    if len(metadata) < 6:
        return None
    count = int.from_bytes(metadata[2:6], "big", signed=True)
    pos, names = 6, []
    if count < 0 or count > len(metadata):
        return None
    for _ in range(count):
        if pos + 2 > len(metadata):
            return None
        length = int.from_bytes(metadata[pos : pos + 2], "big", signed=True)
        pos += 2
        if length < 0 or pos + length > len(metadata):
            return None
        try:
            names.append(metadata[pos : pos + length].decode())
        except UnicodeDecodeError:
            return None
        pos += length
    return names


@dataclass
class Group:
    """A classic consumer group. ``members`` keeps join order: the first joiner leads."""

    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    #: Member ids handed out with MEMBER_ID_REQUIRED, each with the deadline to come back by.
    pending_members: dict[str, float] = field(default_factory=dict)
    rebalance_deadline: float | None = None
    #: While set, an Empty group's first rebalance waits for more members to arrive.
    initial_delay_until: float | None = None

    def all_members_joined(self) -> bool:
        return not self.pending_members and all(
            m.join_future is not None for m in self.members.values()
        )

    def rebalance_timeout_s(self) -> float:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0) / 1000.0

    def supports_protocols(
        self, protocol_type: str, protocols: Protocols, *, except_member: str | None = None
    ) -> bool:
        """Whether a member with ``protocols`` may (re)join: it must share one protocol with all.

        ``except_member`` leaves out the rejoining member's own, possibly outdated, protocols.
        """
        others = [m for m in self.members.values() if m.member_id != except_member]
        if not protocol_type or not protocols:
            return False
        if not others:
            return True
        if protocol_type != self.protocol_type:
            return False
        names = {name for name, _ in protocols}
        for member in others:
            names &= member.protocol_names()
        return bool(names)

    def subscribed_topics(self) -> set[str] | None:
        """The topics the members subscribe to, read from their consumer-protocol metadata
        (``version:int16`` then an array of topic names, as every version of Kafka's consumer
        subscription starts); None when some metadata cannot be read, so callers treat the
        subscription as unknown rather than empty."""
        topics: set[str] = set()
        for member in self.members.values():
            for _, metadata in member.protocols:
                names = _subscription_topics(metadata)
                if names is None:
                    return None
                topics.update(names)
        return topics

    def select_protocol(self) -> str:
        """The protocol every member supports that most members list first among those.

        Each member votes for its most preferred protocol among the common ones; ties go to the
        leader's preference order so the choice is deterministic.
        """
        members = list(self.members.values())
        common = set(members[0].protocol_names())
        for member in members[1:]:
            common &= member.protocol_names()
        votes: dict[str, int] = dict.fromkeys(common, 0)
        for member in members:
            choice = next(name for name, _ in member.protocols if name in common)
            votes[choice] += 1
        leader = self.members.get(self.leader_id or "", members[0])
        order = [name for name, _ in leader.protocols if name in common]
        return max(order, key=lambda name: (votes[name], -order.index(name)))

    def describe(self) -> dict[str, Any]:
        """The DescribeGroups entry: metadata and assignments only once the group is Stable."""
        stable = self.state is GroupState.STABLE
        members = [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": m.metadata_for(self.protocol_name) if stable else b"",
                "member_assignment": m.assignment if stable else b"",
            }
            for m in self.members.values()
        ]
        return {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "group_id": self.group_id,
            "group_state": self.state.value,
            "protocol_type": self.protocol_type or "",
            "protocol_data": (self.protocol_name or "") if stable else "",
            "members": members,
            "authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
        }


def join_response(
    version: int,
    error_code: int,
    member_id: str,
    group: Group | None = None,
    *,
    leader_view: bool = False,
    leader_id: str | None = None,
) -> dict[str, Any]:
    """A JoinGroup response body; the leader's view carries every member's metadata.

    ``leader_id`` overrides the reported leader (a replaced static member must not believe it
    leads, or it would compute an assignment a Stable group never relays).
    """
    body: dict[str, Any] = {
        "throttle_time_ms": 0,
        "error_code": error_code,
        "generation_id": -1,
        "protocol_type": None,
        "protocol_name": None if version >= 7 else "",
        "leader": "",
        "skip_assignment": False,
        "member_id": member_id,
        "members": [],
    }
    if group is None or error_code != ErrorCode.NONE:
        return body
    body["generation_id"] = group.generation_id
    body["protocol_type"] = group.protocol_type
    body["protocol_name"] = group.protocol_name or ("" if version < 7 else None)
    body["leader"] = leader_id if leader_id is not None else (group.leader_id or "")
    if leader_view:
        body["members"] = [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "metadata": m.metadata_for(group.protocol_name),
            }
            for m in group.members.values()
        ]
    return body


def sync_response(error_code: int, group: Group | None = None, assignment: bytes = b"") -> dict:
    """A SyncGroup response body (protocol type and name are only filled on success)."""
    ok = error_code == ErrorCode.NONE and group is not None
    return {
        "throttle_time_ms": 0,
        "error_code": error_code,
        "protocol_type": group.protocol_type if ok and group else None,
        "protocol_name": group.protocol_name if ok and group else None,
        "assignment": assignment if ok else b"",
    }


def resolve(future: asyncio.Future[dict[str, Any]] | None, body: dict[str, Any]) -> None:
    """Complete a long-poll future unless its caller already went away."""
    if future is not None and not future.done():
        future.set_result(body)
