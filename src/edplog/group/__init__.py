"""Consumer groups: Kafka's classic rebalance protocol, the consumer protocol (KIP-848) and
committed offsets.

:class:`GroupCoordinator` is what the broker calls; it keeps group membership in memory and
committed offsets, and the consumer-protocol groups' records, in the internal compacted topic
``__consumer_offsets``.
"""

from __future__ import annotations

from .consumer_group import ConsumerGroups
from .coordinator import GroupCoordinator
from .offsets import OFFSETS_TOPIC, CommittedOffset, OffsetStore
from .state import GroupState

__all__ = [
    "OFFSETS_TOPIC",
    "CommittedOffset",
    "ConsumerGroups",
    "GroupCoordinator",
    "GroupState",
    "OffsetStore",
]
