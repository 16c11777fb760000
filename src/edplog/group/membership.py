"""The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat and LeaveGroup.

A group moves Empty -> PreparingRebalance (members rejoin; JoinGroup long-polls) ->
CompletingRebalance (generation bumped, leader got the member list; SyncGroup long-polls until
the leader hands in assignments) -> Stable. A join, a leave or an expired session sends a
Stable or CompletingRebalance group back to PreparingRebalance; when every member has gone, it
ends Empty with the generation bumped once more.

Long polls are plain futures resolved by the state transitions; :meth:`Membership.tick` (run
periodically by the coordinator's reaper, and directly by tests with a fake clock) fires the
time-based transitions: session expiry, rebalance timeout, the initial rebalance delay and
abandoned MEMBER_ID_REQUIRED ids. Everything runs on one event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import ErrorCode
from .state import (
    Group,
    GroupState,
    Member,
    Protocols,
    join_response,
    resolve,
    sync_response,
)

log = logging.getLogger(__name__)

Body = dict[str, Any]


class Membership:
    """Every group's membership state machine (see the module docstring)."""

    def __init__(
        self,
        *,
        now: Callable[[], float],
        min_session_timeout_ms: int,
        max_session_timeout_ms: int,
        initial_rebalance_delay_ms: int,
    ) -> None:
        self.groups: dict[str, Group] = {}
        self._now = now
        self._min_session_ms = min_session_timeout_ms
        self._max_session_ms = max_session_timeout_ms
        self._initial_delay_s = initial_rebalance_delay_ms / 1000.0

    # ------------------------------------------------------------------ JoinGroup

    async def join_group(
        self, req: Body, version: int, *, client_id: str = "", client_host: str = ""
    ) -> Body:
        group_id: str = req["group_id"]
        member_id: str = req.get("member_id") or ""
        instance_id: str | None = req.get("group_instance_id") if version >= 5 else None
        session_ms = int(req["session_timeout_ms"])
        rebalance_ms = int(req.get("rebalance_timeout_ms", -1)) if version >= 1 else -1
        if rebalance_ms < 0:  # v0 has none: Kafka uses the session timeout
            rebalance_ms = session_ms
        protocol_type: str = req.get("protocol_type") or ""
        protocols: Protocols = [(p["name"], bytes(p["metadata"])) for p in req["protocols"]]

        if not group_id:
            return join_response(version, ErrorCode.INVALID_GROUP_ID, member_id)
        if version >= 8 and req.get("reason"):
            log.info("group %s: member %r joins: %s", group_id, member_id, req["reason"])
        if not self._min_session_ms <= session_ms <= self._max_session_ms:
            return join_response(version, ErrorCode.INVALID_SESSION_TIMEOUT, member_id)
        group = self.groups.get(group_id)
        if group is None and member_id:
            return join_response(version, ErrorCode.UNKNOWN_MEMBER_ID, member_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id)

        def new_member(mid: str) -> Member:
            return Member(
                member_id=mid,
                group_instance_id=instance_id,
                client_id=client_id,
                client_host=client_host,
                session_timeout_ms=session_ms,
                rebalance_timeout_ms=rebalance_ms,
                protocol_type=protocol_type,
                protocols=protocols,
                last_heartbeat=self._now(),
            )

        if not member_id:
            return await self._join_new(group, version, new_member, instance_id, client_id)

        if member_id in group.pending_members:
            if not group.supports_protocols(protocol_type, protocols):
                return join_response(version, ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
            del group.pending_members[member_id]
            return await self._add_and_rebalance(group, version, new_member(member_id))

        error = self._check_member(group, member_id, instance_id)
        if error != ErrorCode.NONE:
            return join_response(version, error, member_id)
        member = group.members[member_id]
        if not group.supports_protocols(protocol_type, protocols, except_member=member_id):
            return join_response(version, ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)

        changed = member.protocols != protocols
        member.protocols = protocols
        member.session_timeout_ms = session_ms
        member.rebalance_timeout_ms = rebalance_ms
        member.client_id, member.client_host = client_id, client_host
        member.last_heartbeat = self._now()
        state = group.state
        if state is GroupState.COMPLETING_REBALANCE and not changed:
            # A repeated join (say, a lost response): answer with the generation just formed.
            leader = member_id == group.leader_id
            return join_response(version, ErrorCode.NONE, member_id, group, leader_view=leader)
        if state is GroupState.STABLE and not changed and member_id != group.leader_id:
            return join_response(version, ErrorCode.NONE, member_id, group)
        if state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, f"member {member_id} rejoined")
        return await self._await_join(group, member)

    async def _join_new(
        self,
        group: Group,
        version: int,
        new_member: Callable[[str], Member],
        instance_id: str | None,
        client_id: str,
    ) -> Body:
        """A join without a member id: a new member, or a static member coming back."""
        probe = new_member("")
        if not group.supports_protocols(probe.protocol_type, probe.protocols):
            return join_response(version, ErrorCode.INCONSISTENT_GROUP_PROTOCOL, "")
        member_id = f"{instance_id or client_id or 'member'}-{uuid.uuid4()}"
        if instance_id is not None:
            old_id = group.static_members.get(instance_id)
            if old_id is not None and old_id in group.members:
                return await self._replace_static(group, version, old_id, new_member(member_id))
            return await self._add_and_rebalance(group, version, new_member(member_id))
        if version >= 4:
            # KIP-394: hand out the id first so a client that times out retries with it and is
            # not counted twice while its first join still waits.
            timeout_s = probe.session_timeout_ms / 1000.0
            group.pending_members[member_id] = self._now() + timeout_s
            return join_response(version, ErrorCode.MEMBER_ID_REQUIRED, member_id)
        return await self._add_and_rebalance(group, version, new_member(member_id))

    async def _add_and_rebalance(self, group: Group, version: int, member: Member) -> Body:
        if not group.members:
            group.protocol_type = member.protocol_type
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        if group.leader_id is None:
            group.leader_id = member.member_id
        if group.state is GroupState.PREPARING_REBALANCE:
            if group.initial_delay_until is not None and group.rebalance_deadline is not None:
                group.initial_delay_until = min(
                    self._now() + self._initial_delay_s, group.rebalance_deadline
                )
        else:
            self._prepare_rebalance(group, f"member {member.member_id} joined")
        return await self._await_join(group, member)

    async def _replace_static(
        self, group: Group, version: int, old_id: str, member: Member
    ) -> Body:
        """A static member rejoined without its id: it takes over the old id's place (KIP-345).

        The old id is fenced. A Stable group whose member brings the same protocols keeps its
        generation and assignment: no rebalance.
        """
        old = group.members.pop(old_id)
        fenced = join_response(version, ErrorCode.FENCED_INSTANCE_ID, old_id)
        resolve(old.join_future, fenced)
        resolve(old.sync_future, sync_response(ErrorCode.FENCED_INSTANCE_ID))
        member.assignment = old.assignment
        group.members[member.member_id] = member
        assert member.group_instance_id is not None
        group.static_members[member.group_instance_id] = member.member_id
        old_leader = group.leader_id
        if old_leader == old_id:
            group.leader_id = member.member_id
        if group.state is GroupState.STABLE and old.protocols == member.protocols:
            return join_response(
                version, ErrorCode.NONE, member.member_id, group, leader_id=old_leader
            )
        if group.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, f"static member {member.group_instance_id} changed")
        return await self._await_join(group, member)

    async def _await_join(self, group: Group, member: Member) -> Body:
        # A second join from the same member replaces the first long poll, which is told to
        # retry rather than left hanging.
        resolve(
            member.join_future, join_response(0, ErrorCode.REBALANCE_IN_PROGRESS, member.member_id)
        )
        future: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        member.join_future = future
        self._maybe_complete_join(group)
        return await asyncio.shield(future)

    def _check_member(self, group: Group, member_id: str, instance_id: str | None) -> int:
        """UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID for a request naming ``member_id``."""
        if instance_id is not None:
            current = group.static_members.get(instance_id)
            if current is not None and current != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE

    # ------------------------------------------------------------------ rebalance transitions

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            for member in group.members.values():
                resolve(member.sync_future, sync_response(ErrorCode.REBALANCE_IN_PROGRESS))
                member.sync_future = None
        now = self._now()
        was_empty = group.state is GroupState.EMPTY
        group.state = GroupState.PREPARING_REBALANCE
        group.rebalance_deadline = now + group.rebalance_timeout_s()
        group.initial_delay_until = None
        if was_empty and self._initial_delay_s > 0:
            group.initial_delay_until = min(now + self._initial_delay_s, group.rebalance_deadline)
        log.info("group %s: preparing rebalance (%s)", group.group_id, reason)
        self._maybe_complete_join(group)

    def _maybe_complete_join(self, group: Group) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        if group.initial_delay_until is not None and self._now() < group.initial_delay_until:
            return
        if group.all_members_joined():
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        """End PreparingRebalance: drop who did not rejoin, bump the generation, answer joins."""
        for member in list(group.members.values()):
            # Static members keep their place until their session expires (KIP-345).
            if member.join_future is None and member.group_instance_id is None:
                self._drop_member(group, member)
        group.pending_members.clear()
        joined = [m for m in group.members.values() if m.join_future is not None]
        if group.members and not joined:
            # Only silent static members are left: wait another round for them to expire.
            group.rebalance_deadline = self._now() + group.rebalance_timeout_s()
            return
        group.initial_delay_until = None
        group.rebalance_deadline = None
        group.generation_id += 1
        if not group.members:
            group.state = GroupState.EMPTY
            group.protocol_name = None
            group.leader_id = None
            log.info("group %s: empty at generation %d", group.group_id, group.generation_id)
            return
        leader = group.members.get(group.leader_id or "")
        if leader is None or leader.join_future is None:
            group.leader_id = joined[0].member_id
        group.protocol_name = group.select_protocol()
        group.state = GroupState.COMPLETING_REBALANCE
        now = self._now()
        for member in group.members.values():
            member.last_heartbeat = now
            future, member.join_future = member.join_future, None
            if future is not None:
                is_leader = member.member_id == group.leader_id
                body = join_response(
                    7, ErrorCode.NONE, member.member_id, group, leader_view=is_leader
                )
                resolve(future, body)
        log.info(
            "group %s: generation %d with %d members, protocol %s, leader %s",
            group.group_id,
            group.generation_id,
            len(group.members),
            group.protocol_name,
            group.leader_id,
        )

    def _drop_member(self, group: Group, member: Member) -> None:
        """Forget ``member`` without starting a rebalance (callers decide about that)."""
        group.members.pop(member.member_id, None)
        if member.group_instance_id is not None:
            if group.static_members.get(member.group_instance_id) == member.member_id:
                del group.static_members[member.group_instance_id]
        resolve(member.join_future, join_response(0, ErrorCode.UNKNOWN_MEMBER_ID, member.member_id))
        resolve(member.sync_future, sync_response(ErrorCode.UNKNOWN_MEMBER_ID))
        member.join_future = member.sync_future = None
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)

    def remove_member(self, group: Group, member: Member, reason: str) -> None:
        """Drop ``member`` and rebalance the rest (a leave or an expired session)."""
        self._drop_member(group, member)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        else:
            self._maybe_complete_join(group)

    def tick(self) -> None:
        """Fire every deadline that has passed: sessions, rebalance timeouts, delays."""
        now = self._now()
        for group in list(self.groups.values()):
            for member_id, deadline in list(group.pending_members.items()):
                if now >= deadline:
                    del group.pending_members[member_id]
            for member in list(group.members.values()):
                if member.member_id in group.members and member.session_expired(now):
                    self.remove_member(group, member, f"session of {member.member_id} expired")
            if group.state is GroupState.PREPARING_REBALANCE:
                if group.initial_delay_until is not None and now >= group.initial_delay_until:
                    group.initial_delay_until = None
                if group.rebalance_deadline is not None and now >= group.rebalance_deadline:
                    self._complete_join(group)
                else:
                    self._maybe_complete_join(group)

    def fail_all(self, join_error: int) -> None:
        """Answer every parked long poll with ``join_error`` (the coordinator is going away)."""
        for group in self.groups.values():
            for member in group.members.values():
                resolve(member.join_future, join_response(0, join_error, member.member_id))
                resolve(member.sync_future, sync_response(join_error))
                member.join_future = member.sync_future = None

    # ------------------------------------------------------------------ SyncGroup

    async def sync_group(self, req: Body, version: int) -> Body:
        group = self.groups.get(req["group_id"])
        member_id: str = req.get("member_id") or ""
        instance_id = req.get("group_instance_id") if version >= 3 else None
        if group is None:
            return sync_response(ErrorCode.UNKNOWN_MEMBER_ID)
        error = self._check_member(group, member_id, instance_id)
        if error != ErrorCode.NONE:
            return sync_response(error)
        if req["generation_id"] != group.generation_id:
            return sync_response(ErrorCode.ILLEGAL_GENERATION)
        if version >= 5:
            ptype, pname = req.get("protocol_type"), req.get("protocol_name")
            if (ptype is not None and ptype != group.protocol_type) or (
                pname is not None and pname != group.protocol_name
            ):
                return sync_response(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        member = group.members[member_id]
        member.last_heartbeat = self._now()
        if group.state is GroupState.PREPARING_REBALANCE:
            return sync_response(ErrorCode.REBALANCE_IN_PROGRESS)
        if group.state is GroupState.STABLE:
            return sync_response(ErrorCode.NONE, group, member.assignment)
        if group.state is not GroupState.COMPLETING_REBALANCE:
            return sync_response(ErrorCode.UNKNOWN_MEMBER_ID)
        resolve(member.sync_future, sync_response(ErrorCode.REBALANCE_IN_PROGRESS))
        future: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        member.sync_future = future
        if member_id == group.leader_id:
            assignments = {a["member_id"]: bytes(a["assignment"]) for a in req["assignments"]}
            group.state = GroupState.STABLE
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
                resolve(m.sync_future, sync_response(ErrorCode.NONE, group, m.assignment))
                m.sync_future = None
        return await asyncio.shield(future)

    # ------------------------------------------------------------------ Heartbeat

    def heartbeat(self, req: Body, version: int) -> Body:
        group = self.groups.get(req["group_id"])
        member_id: str = req.get("member_id") or ""
        instance_id = req.get("group_instance_id") if version >= 3 else None
        error = ErrorCode.UNKNOWN_MEMBER_ID
        if group is not None:
            error = self._check_member(group, member_id, instance_id)
            if error == ErrorCode.NONE and req["generation_id"] != group.generation_id:
                error = ErrorCode.ILLEGAL_GENERATION
            if error == ErrorCode.NONE:
                group.members[member_id].last_heartbeat = self._now()
                if group.state is GroupState.PREPARING_REBALANCE:
                    error = ErrorCode.REBALANCE_IN_PROGRESS
        return {"throttle_time_ms": 0, "error_code": error}

    # ------------------------------------------------------------------ LeaveGroup

    def leave_group(self, req: Body, version: int) -> Body:
        if version >= 3:
            leaving = [
                (m.get("member_id") or "", m.get("group_instance_id"), m.get("reason"))
                for m in req["members"]
            ]
        else:
            leaving = [(req.get("member_id") or "", None, None)]
        group = self.groups.get(req["group_id"])
        results = []
        for member_id, instance_id, reason in leaving:
            error = (
                ErrorCode.UNKNOWN_MEMBER_ID
                if group is None
                else self._leave(group, member_id, instance_id, reason)
            )
            results.append(
                {"member_id": member_id, "group_instance_id": instance_id, "error_code": error}
            )
        top_error = results[0]["error_code"] if version < 3 and results else ErrorCode.NONE
        return {"throttle_time_ms": 0, "error_code": top_error, "members": results}

    def _leave(
        self, group: Group, member_id: str, instance_id: str | None, reason: str | None = None
    ) -> int:
        if instance_id is not None:
            current = group.static_members.get(instance_id)
            if current is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if member_id and member_id != current:
                return ErrorCode.FENCED_INSTANCE_ID
            member_id = current
        if member_id in group.pending_members:
            del group.pending_members[member_id]
            self._maybe_complete_join(group)
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        why = f"member {member_id} left" + (f": {reason}" if reason else "")
        self.remove_member(group, member, why)
        return ErrorCode.NONE

    # ------------------------------------------------------------------ OffsetCommit fencing

    def validate_commit(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> int:
        """The error (or NONE) for a commit by this member/generation; a valid one heartbeats.

        Commits with a negative generation and no member come from consumers that assign
        partitions themselves; they are accepted while the group has no members. A group that
        does not exist yet is created for them, Empty.
        """
        group = self.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return ErrorCode.ILLEGAL_GENERATION
            self.groups[group_id] = Group(group_id)
            return ErrorCode.NONE
        if generation_id < 0 and not member_id and group.state is GroupState.EMPTY:
            return ErrorCode.NONE
        if generation_id < 0 and not member_id:
            return ErrorCode.UNKNOWN_MEMBER_ID
        error = self._check_member(group, member_id, instance_id)
        if error != ErrorCode.NONE:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        group.members[member_id].last_heartbeat = self._now()
        return ErrorCode.NONE
