"""The consumer group protocol (KIP-848): ConsumerGroupHeartbeat, transport-free.

There is no rebalance barrier. The coordinator keeps, per group:

- the **group epoch**, bumped whenever the inputs of the assignment change (a member joins,
  leaves or changes its subscription, or a subscribed topic appears, disappears or grows);
- the **target assignment** computed by a server-side assignor for that epoch (its
  ``assignment_epoch``);
- per member, its **member epoch** and its **current assignment**, which converges on the
  target one heartbeat at a time.

Reconciliation is incremental and never gives one partition to two members: partitions a member
must give up are first removed from its assignment (it stays at its old epoch, state
``UNREVOKED_PARTITIONS``) and only once a heartbeat reports it no longer owns them does it move
to the target epoch; a partition another member still holds (assigned or pending revocation) is
withheld (state ``UNRELEASED_PARTITIONS``) until that member lets it go.

Time (session expiry, revocation timeout) is driven by :meth:`ConsumerGroups.expired`, which
the coordinator's reaper calls, as for the classic protocol. The data lives in
:mod:`.consumer_state`. Durable records go through ``persist`` (see :mod:`.consumer_records`).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..errors import ErrorCode
from .assignors import Assignment, Assignor, MemberSpec, TopicInfo
from .consumer_state import (
    ConsumerGroup,
    ConsumerGroupState,
    ConsumerMember,
    HeartbeatError,
    MemberState,
    common,
    copy_of,
    fingerprint,
    minus,
    owned_in,
    wire_assignment,
)

log = logging.getLogger(__name__)

Body = dict[str, Any]
#: The epoch a member sends to leave; -2 also keeps a static member's place for its return.
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


TopicsSource = Callable[[], dict[str, tuple[uuid.UUID, int]]]
Persist = Callable[[ConsumerGroup, list[str]], Awaitable[None]]
Delete = Callable[[ConsumerGroup], Awaitable[None]]


class ConsumerGroups:
    """Every consumer-protocol group of this coordinator (see the module docstring).

    ``topics()`` gives the cluster's topics as name -> (topic id, partition count).
    ``persist(group, member_ids)`` makes the group's epoch, target and the named members'
    state durable before an answer goes out (None: nothing is persisted).
    """

    def __init__(
        self,
        *,
        now: Callable[[], float],
        topics: TopicsSource,
        assignors: dict[str, Assignor],
        session_timeout_ms: int = 45_000,
        heartbeat_interval_ms: int = 5_000,
        max_size: int = 2**31 - 1,
        persist: Persist | None = None,
        delete: Delete | None = None,
    ) -> None:
        self.groups: dict[str, ConsumerGroup] = {}
        self._now = now
        self._topics = topics
        self.assignors = assignors
        self.default_assignor = next(iter(assignors))
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_size = max_size
        self._persist = persist
        self._delete = delete

    async def persist(self, group: ConsumerGroup, member_ids: list[str]) -> None:
        """Make the group's epoch, target and the named members' state durable."""
        if self._persist is not None:
            await self._persist(group, member_ids)

    async def delete(self, group: ConsumerGroup) -> None:
        """Forget an empty group (it is deleted, or becomes a classic group)."""
        self.groups.pop(group.group_id, None)
        if self._delete is not None:
            await self._delete(group)

    def refresh_snapshot(self, group: ConsumerGroup) -> None:
        """Take the subscribed topics as they are now as the ones the target was made from
        (after a restart, so unchanged topics do not bump the epoch)."""
        group.subscribed_metadata = self._group_subscription(group)

    # ------------------------------------------------------------------ heartbeat

    async def heartbeat(
        self, req: Body, version: int, *, client_id: str = "", client_host: str = ""
    ) -> Body:
        try:
            group, member, changed = self._heartbeat(req, version, client_id, client_host)
        except HeartbeatError as exc:
            return self.error_response(exc.code, str(exc))
        if changed:
            await self.persist(group, changed)
        if member is None:  # it left
            epoch = int(req["member_epoch"])
            return self._response(req.get("member_id") or "", epoch, None)
        send = None
        current = copy_of(member.assigned)
        if (
            member.sent != current
            or int(req["member_epoch"]) == 0
            or (owned_in(req.get("topic_partitions")) not in (None, current))
        ):
            send = wire_assignment(current)
            member.sent = current
        return self._response(member.member_id, member.member_epoch, send)

    def _response(self, member_id: str, epoch: int, assignment: Body | None) -> Body:
        return {
            "throttle_time_ms": 0,
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "member_id": member_id,
            "member_epoch": epoch,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "assignment": assignment,
        }

    @staticmethod
    def error_response(code: int, message: str | None = None) -> Body:
        return {
            "throttle_time_ms": 0,
            "error_code": code,
            "error_message": message,
            "member_id": None,
            "member_epoch": 0,
            "heartbeat_interval_ms": 0,
            "assignment": None,
        }

    def _validate(self, req: Body, version: int) -> None:
        bad = ErrorCode.INVALID_REQUEST
        epoch = int(req["member_epoch"])
        if not req.get("group_id"):
            raise HeartbeatError(ErrorCode.INVALID_GROUP_ID, "GroupId can't be empty")
        if version >= 1 and not req.get("member_id"):
            raise HeartbeatError(bad, "MemberId can't be empty")
        if req.get("instance_id") == "":
            raise HeartbeatError(bad, "InstanceId can't be empty")
        if req.get("rack_id") == "":
            raise HeartbeatError(bad, "RackId can't be empty")
        if epoch == 0:
            if int(req.get("rebalance_timeout_ms", -1)) == -1:
                raise HeartbeatError(bad, "RebalanceTimeoutMs must be provided in first request")
            if req.get("topic_partitions") is None or req["topic_partitions"]:
                raise HeartbeatError(bad, "TopicPartitions must be empty when (re-)joining")
            if req.get("subscribed_topic_names") is None and not req.get("subscribed_topic_regex"):
                raise HeartbeatError(
                    bad, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request"
                )
        elif epoch == STATIC_LEAVE_EPOCH and req.get("instance_id") is None:
            raise HeartbeatError(bad, "InstanceId can't be null when MemberEpoch is -2")
        elif epoch < STATIC_LEAVE_EPOCH:
            raise HeartbeatError(bad, f"MemberEpoch {epoch} is invalid")
        if epoch != 0 and not req.get("member_id"):
            raise HeartbeatError(bad, "MemberId can't be empty")
        regex = req.get("subscribed_topic_regex")
        if regex:
            try:
                re.compile(regex)
            except re.error as exc:
                raise HeartbeatError(
                    ErrorCode.INVALID_REGULAR_EXPRESSION, f"invalid regex {regex!r}: {exc}"
                ) from exc
        assignor = req.get("server_assignor")
        if assignor is not None and assignor not in self.assignors:
            raise HeartbeatError(
                ErrorCode.UNSUPPORTED_ASSIGNOR,
                f"ServerAssignor {assignor} is not supported; known: {', '.join(self.assignors)}",
            )

    def _heartbeat(
        self, req: Body, version: int, client_id: str, client_host: str
    ) -> tuple[ConsumerGroup, ConsumerMember | None, list[str]]:
        self._validate(req, version)
        group_id: str = req["group_id"]
        epoch = int(req["member_epoch"])
        instance_id: str | None = req.get("instance_id")
        group = self.groups.get(group_id)
        if group is None:
            if epoch != 0:
                raise HeartbeatError(ErrorCode.GROUP_ID_NOT_FOUND, f"group {group_id} not found")
            group = self.groups[group_id] = ConsumerGroup(group_id)
        if epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return group, None, self._leave(group, req.get("member_id") or "", instance_id, epoch)
        member, bump = self._member_for(group, req, version, epoch, instance_id)
        before = None if bump or epoch == 0 else fingerprint(member)
        gone = [member.replaces] if member.replaces else []
        member.replaces = None
        member.last_heartbeat = self._now()
        member.client_id, member.client_host = client_id, client_host
        bump |= self._update_subscription(member, req)
        if bump or self._metadata_changed(group):
            self._new_target(group)
            self._reconcile(group, member, owned_in(req.get("topic_partitions")))
            return group, member, sorted(group.members)
        self._reconcile(group, member, owned_in(req.get("topic_partitions")))
        # Most heartbeats change nothing: only a change is written to the offsets topic.
        if fingerprint(member) == before:
            return group, member, []
        return group, member, [member.member_id, *gone]

    def _member_for(
        self, group: ConsumerGroup, req: Body, version: int, epoch: int, instance_id: str | None
    ) -> tuple[ConsumerMember, bool]:
        member_id: str = req.get("member_id") or ""
        if epoch == 0 and member_id not in group.members and len(group.members) >= self.max_size:
            replacing = instance_id is not None and instance_id in group.static_members
            if not replacing:
                raise HeartbeatError(
                    ErrorCode.GROUP_MAX_SIZE_REACHED,
                    f"group {group.group_id} has reached group.consumer.max.size "
                    f"({self.max_size} members)",
                )
        if instance_id is not None:
            return self._static_member(group, member_id, epoch, instance_id, req, version)
        if epoch == 0:
            if not member_id:  # v0: the coordinator names the member
                member_id = str(uuid.uuid4())
            old = group.members.get(member_id)
            if old is not None:  # a rejoin: it starts over with nothing owned
                self._remove(group, old)
            member = ConsumerMember(
                member_id, rebalance_timeout_ms=int(req["rebalance_timeout_ms"])
            )
            group.members[member_id] = member
            return member, True
        member = group.members.get(member_id)
        if member is None:
            raise HeartbeatError(
                ErrorCode.UNKNOWN_MEMBER_ID, f"member {member_id} is not in group {group.group_id}"
            )
        self._check_epoch(member, epoch, owned_in(req.get("topic_partitions")))
        return member, False

    def _static_member(
        self,
        group: ConsumerGroup,
        member_id: str,
        epoch: int,
        instance_id: str,
        req: Body,
        version: int,
    ) -> tuple[ConsumerMember, bool]:
        current_id = group.static_members.get(instance_id)
        current = group.members.get(current_id) if current_id else None
        if epoch == 0:
            if current is not None and current.member_id == member_id and member_id:
                # The same member starts over (it was fenced, say): it owns nothing now.
                self._remove(group, current)
                current = None
            if current is not None and current.member_epoch != STATIC_LEAVE_EPOCH:
                raise HeartbeatError(
                    ErrorCode.UNRELEASED_INSTANCE_ID,
                    f"static member {instance_id} has not released its place yet",
                )
            if not member_id:
                member_id = str(uuid.uuid4())
            member = ConsumerMember(
                member_id,
                instance_id=instance_id,
                rebalance_timeout_ms=int(req["rebalance_timeout_ms"]),
            )
            bump = True
            if current is not None:
                # It comes back: it takes over the old member's assignment and epoch.
                del group.members[current.member_id]
                member.assigned = current.assigned
                member.pending_revocation = current.pending_revocation
                member.state = current.state
                member.member_epoch = current.previous_member_epoch
                member.previous_member_epoch = current.previous_member_epoch
                member.subscribed_topic_names = current.subscribed_topic_names
                member.subscribed_topic_regex = current.subscribed_topic_regex
                member.server_assignor = current.server_assignor
                group.target[member_id] = group.target.pop(current.member_id, {})
                member.replaces = current.member_id
                bump = False
            group.members[member_id] = member
            group.static_members[instance_id] = member_id
            return member, bump
        if current is None:
            raise HeartbeatError(
                ErrorCode.UNKNOWN_MEMBER_ID, f"static member {instance_id} is not in the group"
            )
        if current.member_id != member_id:
            raise HeartbeatError(
                ErrorCode.FENCED_INSTANCE_ID,
                f"static member {instance_id} is now member {current.member_id}",
            )
        self._check_epoch(current, epoch, owned_in(req.get("topic_partitions")))
        return current, False

    @staticmethod
    def _check_epoch(member: ConsumerMember, epoch: int, owned: Assignment | None) -> None:
        """FENCED_MEMBER_EPOCH unless ``epoch`` is the member's, or its previous one while the
        partitions it reports are still a subset of its assignment (a lost response)."""
        if epoch == member.member_epoch:
            return
        if epoch == member.previous_member_epoch and owned is not None:
            if not minus(owned, member.assigned):
                return
        raise HeartbeatError(
            ErrorCode.FENCED_MEMBER_EPOCH,
            f"member {member.member_id} sent epoch {epoch}, its epoch is {member.member_epoch}",
        )

    def _update_subscription(self, member: ConsumerMember, req: Body) -> bool:
        changed = False
        names = req.get("subscribed_topic_names")
        if names is not None and sorted(names) != sorted(member.subscribed_topic_names):
            member.subscribed_topic_names = sorted(set(names))
            changed = True
        regex = req.get("subscribed_topic_regex")
        if regex is not None and (regex or None) != member.subscribed_topic_regex:
            member.subscribed_topic_regex = regex or None
            changed = True
        assignor = req.get("server_assignor")
        if assignor is not None and assignor != member.server_assignor:
            member.server_assignor = assignor
            changed = True
        timeout = int(req.get("rebalance_timeout_ms", -1))
        if timeout != -1:
            member.rebalance_timeout_ms = timeout
        if req.get("rack_id") is not None:
            member.rack_id = req["rack_id"]
        return changed

    # ------------------------------------------------------------------ targets

    def _subscribed(self, member: ConsumerMember, topics: Mapping[str, Any]) -> set[str]:
        names = {n for n in member.subscribed_topic_names if n in topics}
        if member.subscribed_topic_regex:
            # Kafka takes RE2/J syntax; Python's re covers the common subset (docs/broker.md).
            # ``topics`` holds no internal topic, so a regex never matches one.
            pattern = re.compile(member.subscribed_topic_regex)
            names.update(n for n in topics if pattern.fullmatch(n) is not None)
        return names

    def _group_subscription(self, group: ConsumerGroup) -> dict[str, tuple[uuid.UUID, int]]:
        topics = self._topics()
        wanted: set[str] = set()
        for m in group.members.values():
            wanted |= self._subscribed(m, topics)
        return {name: topics[name] for name in sorted(wanted)}

    def _metadata_changed(self, group: ConsumerGroup) -> bool:
        return self._group_subscription(group) != group.subscribed_metadata

    def _new_target(self, group: ConsumerGroup) -> None:
        """Bump the group epoch and compute the target assignment for it."""
        topics = self._topics()
        group.subscribed_metadata = self._group_subscription(group)
        infos = {
            tid: TopicInfo(tid, name, n) for name, (tid, n) in group.subscribed_metadata.items()
        }
        specs = {
            mid: MemberSpec(
                {topics[n][0] for n in self._subscribed(m, topics)},
                copy_of(group.target.get(mid, {})),
            )
            for mid, m in group.members.items()
        }
        assignor = self.assignors.get(
            group.preferred_assignor(self.default_assignor), self.assignors[self.default_assignor]
        )
        group.group_epoch += 1
        group.target = {mid: copy_of(a) for mid, a in assignor.assign(specs, infos).items()}
        group.assignment_epoch = group.group_epoch
        log.info(
            "consumer group %s: epoch %d, %d members, assignor %s",
            group.group_id,
            group.group_epoch,
            len(group.members),
            assignor.name,
        )

    # ------------------------------------------------------------------ reconciliation

    def _owned_by_others(self, group: ConsumerGroup, member_id: str) -> Assignment:
        held: Assignment = {}
        for m in group.members.values():
            if m.member_id == member_id:
                continue
            for source in (m.assigned, m.pending_revocation):
                for tid, ps in source.items():
                    held.setdefault(tid, set()).update(ps)
        return held

    def _reconcile(
        self, group: ConsumerGroup, member: ConsumerMember, owned: Assignment | None
    ) -> None:
        """Move ``member`` toward its target (module docstring): revoke first, then add what
        no other member holds."""
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            if owned is None or common(owned, member.pending_revocation):
                return  # still owns some partition it must give up
            member.pending_revocation = {}
            member.revocation_deadline = None
        target = group.target.get(member.member_id, {})
        if (
            member.member_epoch == group.assignment_epoch
            and member.state is MemberState.STABLE
            and member.assigned == target
        ):
            return
        keep = common(member.assigned, target)
        revoke = minus(member.assigned, target)
        if revoke:
            member.assigned = keep
            member.pending_revocation = revoke
            member.state = MemberState.UNREVOKED_PARTITIONS
            member.revocation_deadline = self._now() + member.rebalance_timeout_ms / 1000.0
            return
        wanted = minus(target, keep)
        free = minus(wanted, self._owned_by_others(group, member.member_id))
        member.assigned = {**keep}
        for tid, ps in free.items():
            member.assigned.setdefault(tid, set()).update(ps)
        if member.member_epoch != group.assignment_epoch:
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = group.assignment_epoch
        unreleased = minus(wanted, free)
        member.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE

    # ------------------------------------------------------------------ leave, expiry

    def _leave(
        self, group: ConsumerGroup, member_id: str, instance_id: str | None, epoch: int
    ) -> list[str]:
        if instance_id is not None:
            current_id = group.static_members.get(instance_id)
            if current_id is None:
                raise HeartbeatError(
                    ErrorCode.UNKNOWN_MEMBER_ID, f"static member {instance_id} is not in the group"
                )
            if current_id != member_id:
                raise HeartbeatError(
                    ErrorCode.FENCED_INSTANCE_ID,
                    f"static member {instance_id} is now member {current_id}",
                )
        member = group.members.get(member_id)
        if member is None:
            raise HeartbeatError(
                ErrorCode.UNKNOWN_MEMBER_ID, f"member {member_id} is not in group {group.group_id}"
            )
        if epoch == STATIC_LEAVE_EPOCH:
            # It keeps its place and assignment until its session ends (KIP-848 static leave).
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = STATIC_LEAVE_EPOCH
            log.info(
                "consumer group %s: static member %s left for now", group.group_id, instance_id
            )
            return [member_id]
        self._remove(group, member)
        self._new_target(group)
        log.info("consumer group %s: member %s left", group.group_id, member_id)
        return [member_id, *group.members]

    def _remove(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        group.members.pop(member.member_id, None)
        group.target.pop(member.member_id, None)
        if member.instance_id is not None:
            if group.static_members.get(member.instance_id) == member.member_id:
                del group.static_members[member.instance_id]

    def expired(self) -> list[tuple[ConsumerGroup, list[str]]]:
        """Fence every member whose session ended or that did not revoke in time; returns
        (group, member ids to persist) per changed group."""
        now = self._now()
        out = []
        for group in list(self.groups.values()):
            gone = []
            for member in list(group.members.values()):
                late = now >= member.last_heartbeat + self.session_timeout_ms / 1000.0
                stuck = member.revocation_deadline is not None and now >= member.revocation_deadline
                if late or stuck:
                    why = "session expired" if late else "did not revoke within its timeout"
                    log.info(
                        "consumer group %s: member %s %s", group.group_id, member.member_id, why
                    )
                    self._remove(group, member)
                    gone.append(member.member_id)
            if gone:
                self._new_target(group)
                out.append((group, [*gone, *group.members]))
        return out

    # ------------------------------------------------------------------ describe, commits

    def validate_commit(self, group: ConsumerGroup, member_id: str, epoch: int) -> int:
        """OffsetCommit fencing by member epoch (Kafka's rules): a non-member (-1) may commit
        only to an empty group; a stale epoch is STALE_MEMBER_EPOCH, a newer one fenced."""
        if epoch < 0 and not group.members:
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if epoch > member.member_epoch:
            return ErrorCode.FENCED_MEMBER_EPOCH
        if epoch < member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def describe(self, group: ConsumerGroup, names_by_id: Mapping[uuid.UUID, str]) -> Body:
        def tps(a: Assignment) -> Body:
            return {
                "topic_partitions": [
                    {
                        "topic_id": tid,
                        "topic_name": names_by_id.get(tid, ""),
                        "partitions": sorted(ps),
                    }
                    for tid, ps in sorted(a.items(), key=str)
                ]
            }

        return {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "group_id": group.group_id,
            "group_state": group.state.value,
            "group_epoch": group.group_epoch,
            "assignment_epoch": group.assignment_epoch,
            "assignor_name": group.preferred_assignor(self.default_assignor),
            "members": [
                {
                    "member_id": m.member_id,
                    "instance_id": m.instance_id,
                    "rack_id": m.rack_id,
                    "member_epoch": m.member_epoch,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "subscribed_topic_names": list(m.subscribed_topic_names),
                    "subscribed_topic_regex": m.subscribed_topic_regex,
                    "assignment": tps(m.assigned),
                    "target_assignment": tps(group.target.get(m.member_id, {})),
                    "member_type": 1,  # 1 = consumer protocol (KIP-1099)
                }
                for m in group.members.values()
            ],
            "authorized_operations": -(2**31),
        }


__all__ = [
    "ConsumerGroup",
    "ConsumerGroupState",
    "ConsumerGroups",
    "ConsumerMember",
    "HeartbeatError",
    "MemberState",
]
