"""What the group coordinator's API mixins share: its parts, and whether it serves a group.

:class:`CoordinatorBase` names the parts :class:`.coordinator.GroupCoordinator` builds (the
offset store, classic membership, consumer-protocol groups, the offsets-partition leadership
in a cluster) for the APIs in offset_apis.py and admin_apis.py, and answers for all of them
whether this node coordinates a group now.
"""

from __future__ import annotations

from typing import Any

from ..errors import ErrorCode
from .consumer_group import ConsumerGroups
from .leadership import OffsetsLeadership
from .membership import Membership
from .offsets import OffsetStore, StoreLike

Body = dict[str, Any]


class CoordinatorBase:
    """The coordinator's parts (set by GroupCoordinator) and its serving checks."""

    _store: StoreLike
    offsets: OffsetStore
    membership: Membership
    consumer: ConsumerGroups
    leadership: OffsetsLeadership | None

    def _serve(self, group_id: str) -> None:
        """In a cluster, raise NOT_COORDINATOR (or COORDINATOR_LOAD_IN_PROGRESS) for a group
        this broker does not coordinate now: the API answers in its own error shape."""
        if self.leadership is not None:
            self.leadership.check(group_id)

    def _group_error(self, group_id: str) -> int:
        """For APIs with an error per group: the same as :meth:`_serve`, as a code."""
        if self.leadership is None or not group_id:
            return ErrorCode.NONE
        return self.leadership.error_for(group_id)

    def unavailable(self, group_id: str) -> str | None:
        """Why this node cannot coordinate ``group_id`` now (its partition of the offsets
        topic is offline), or None: such a group is answered COORDINATOR_NOT_AVAILABLE."""
        return self.offsets.unavailable(group_id) if group_id else None
