"""Consumer groups: Kafka's classic rebalance protocol and committed offsets.

:class:`GroupCoordinator` is what the broker calls; it keeps group membership in memory and
committed offsets in the internal compacted topic ``__consumer_offsets``.
"""

from __future__ import annotations

from .coordinator import GroupCoordinator
from .offsets import OFFSETS_TOPIC, CommittedOffset, OffsetStore
from .state import GroupState

__all__ = ["OFFSETS_TOPIC", "CommittedOffset", "GroupCoordinator", "GroupState", "OffsetStore"]
