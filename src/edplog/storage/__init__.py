"""The embeddable storage engine: partition logs, their files and the logs of a data directory.

No broker concepts live here (no high watermark, no ISR): a :class:`Log` is one partition's
records, a :class:`Store` the topics of one data directory. Read the module docstrings in the
order of a record's life: :mod:`.log` (appends, rolls, durability), :mod:`.reader` (reads),
:mod:`.recovery` (opening after a crash), :mod:`.retention` and :mod:`.cleaner` (deletion and
compaction), :mod:`.leader_epoch` and :mod:`.producer_state` (what replication and idempotent
producers need), :mod:`.log_manager` and :mod:`.topic_registry` (a data directory).
"""

from __future__ import annotations

from .log import Log, RecordColumns
from .log_manager import LogManager
from .store import Store
from .topic_registry import (
    INTERNAL_TOPICS,
    OFFSETS_TOPIC,
    LocalTopicRegistry,
    TopicRegistry,
    validate_topic_name,
)

__all__ = [
    "INTERNAL_TOPICS",
    "OFFSETS_TOPIC",
    "LocalTopicRegistry",
    "Log",
    "LogManager",
    "RecordColumns",
    "Store",
    "TopicRegistry",
    "validate_topic_name",
]
