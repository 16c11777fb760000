"""The group-admin APIs of the group coordinator: ListGroups, DescribeGroups, DeleteGroups.

Both kinds of group are listed and deleted here: classic ones (:mod:`.membership`) and those of
the consumer protocol (:mod:`.consumer_group`); a deleted group's committed offsets are
tombstoned in ``__consumer_offsets``.
"""

from __future__ import annotations

import logging

from ..errors import EdplogError, ErrorCode, kafka_code_of
from .coordinator_base import Body, CoordinatorBase
from .state import GROUP_AUTHORIZED_OPERATIONS, Group, GroupState

log = logging.getLogger("edplog.group.coordinator")


class AdminApis(CoordinatorBase):
    """ListGroups, DescribeGroups and DeleteGroups (a mixin of GroupCoordinator)."""

    async def list_groups(self, req: Body, version: int) -> Body:
        """ListGroups with v4 state and v5 type filters (matched case-insensitively)."""
        states = {s.lower() for s in (req.get("states_filter") or [])} if version >= 4 else set()
        types = {t.lower() for t in (req.get("types_filter") or [])} if version >= 5 else set()
        groups = []
        for group in self.membership.groups.values():
            if group.state is GroupState.DEAD:
                continue
            if states and group.state.value.lower() not in states:
                continue
            if types and "classic" not in types:
                continue
            groups.append(
                {
                    "group_id": group.group_id,
                    "protocol_type": group.protocol_type or "",
                    "group_state": group.state.value,
                    "group_type": "classic",
                }
            )
        for cgroup in self.consumer.groups.values():
            state = cgroup.state.value
            if states and state.lower() not in states:
                continue
            if types and "consumer" not in types:
                continue
            groups.append(
                {
                    "group_id": cgroup.group_id,
                    "protocol_type": "consumer",
                    "group_state": state,
                    "group_type": "consumer",
                }
            )
        # A coordinator still loading a partition lists what it has, saying it is not all.
        loading = self.leadership is not None and self.leadership.loading
        error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if loading else ErrorCode.NONE
        return {"throttle_time_ms": 0, "error_code": error, "groups": groups}

    async def describe_groups(self, req: Body, version: int) -> Body:
        """DescribeGroups; an unknown group is reported Dead, or GROUP_ID_NOT_FOUND from v6."""
        with_ops = version >= 3 and bool(req.get("include_authorized_operations"))
        described = []
        for group_id in req["groups"]:
            group = self.membership.groups.get(group_id)
            not_here = self._group_error(group_id)
            if not_here:
                body = Group(group_id).describe()
                body["error_code"] = not_here
            elif group is not None and group.state is not GroupState.DEAD:
                body = group.describe()
            else:
                body = Group(group_id).describe()
                body["group_state"] = GroupState.DEAD.value
                if version >= 6:
                    body["error_code"] = ErrorCode.GROUP_ID_NOT_FOUND
                    body["error_message"] = f"group {group_id} does not exist"
            if with_ops:
                body["authorized_operations"] = GROUP_AUTHORIZED_OPERATIONS
            described.append(body)
        return {"throttle_time_ms": 0, "groups": described}

    async def delete_groups(self, req: Body, version: int) -> Body:
        """DeleteGroups: only Empty groups; their offsets are tombstoned in the offsets topic."""
        results = []
        for group_id in req["groups_names"]:
            results.append({"group_id": group_id, "error_code": await self._delete_group(group_id)})
        return {"throttle_time_ms": 0, "results": results}

    async def _delete_group(self, group_id: str) -> int:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        if self._group_error(group_id):
            return self._group_error(group_id)
        consumer = self.consumer.groups.get(group_id)
        if consumer is not None:
            if consumer.members:
                return ErrorCode.NON_EMPTY_GROUP
            try:
                await self.offsets.delete_group(group_id)
                await self.consumer.delete(consumer)
            except EdplogError as exc:
                log.error("group %s: delete failed: %s", group_id, exc)
                return kafka_code_of(exc)
            return ErrorCode.NONE
        group = self.membership.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group.state is not GroupState.EMPTY:
            return ErrorCode.NON_EMPTY_GROUP
        try:
            await self.offsets.delete_group(group_id)
        except EdplogError as exc:
            log.error("group %s: delete failed: %s", group_id, exc)
            return kafka_code_of(exc)
        group.state = GroupState.DEAD
        del self.membership.groups[group_id]
        log.info("group %s deleted", group_id)
        return ErrorCode.NONE
