"""Shared helpers for the group-coordinator tests: a fake clock, request builders and an
in-memory store double with the same surface as :class:`edplog.store.Store`.

The double lets the state machine and the replay logic be tested without disk; the tests in
``test_persistence.py`` repeat the durability checks against the real store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edplog.errors import TopicExistsError, UnknownTopicError


class FakeClock:
    """A monotonic clock the tests move by hand, so no outcome depends on real time."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += ms / 1000.0


@dataclass
class MemRecord:
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[Any] = field(default_factory=list)


class MemLog:
    def __init__(self) -> None:
        self.records: list[MemRecord] = []
        self.flushed_upto = 0

    @property
    def log_start_offset(self) -> int:
        return 0

    @property
    def log_end_offset(self) -> int:
        return len(self.records)

    def append(self, value, key=None, headers=None, timestamp_ms=None) -> int:
        offset = len(self.records)
        self.records.append(MemRecord(offset, timestamp_ms or 0, key, value, headers or []))
        return offset

    def flush(self) -> None:
        self.flushed_upto = len(self.records)

    def read(self, offset: int, max_records: int | None = None) -> list[MemRecord]:
        end = len(self.records) if max_records is None else offset + max_records
        return self.records[offset:end]


class MemStore:
    """Topics as lists of records. ``reopen`` keeps only flushed records, like a restart."""

    def __init__(self) -> None:
        self._topics: dict[str, list[MemLog]] = {}
        self.configs: dict[str, dict[str, str]] = {}

    def create_topic(self, name: str, partitions: int, config: dict[str, str] | None = None):
        if name in self._topics:
            raise TopicExistsError(name)
        self._topics[name] = [MemLog() for _ in range(partitions)]
        self.configs[name] = dict(config or {})

    def topics(self) -> dict[str, int]:
        return {name: len(logs) for name, logs in self._topics.items()}

    def log(self, topic: str, partition: int) -> MemLog:
        try:
            return self._topics[topic][partition]
        except (KeyError, IndexError):
            raise UnknownTopicError(f"{topic}-{partition}") from None

    def reopen(self) -> MemStore:
        fresh = MemStore()
        fresh.configs = dict(self.configs)
        for name, logs in self._topics.items():
            fresh._topics[name] = []
            for old in logs:
                new = MemLog()
                new.records = old.records[: old.flushed_upto]
                new.flushed_upto = len(new.records)
                fresh._topics[name].append(new)
        return fresh


def join_req(
    group: str = "g",
    member_id: str = "",
    *,
    protocols: tuple[tuple[str, bytes], ...] = (("range", b"meta"),),
    session_ms: int = 1000,
    rebalance_ms: int = 2000,
    instance: str | None = None,
    protocol_type: str = "consumer",
) -> dict[str, Any]:
    return {
        "group_id": group,
        "session_timeout_ms": session_ms,
        "rebalance_timeout_ms": rebalance_ms,
        "member_id": member_id,
        "group_instance_id": instance,
        "protocol_type": protocol_type,
        "protocols": [{"name": n, "metadata": m} for n, m in protocols],
        "reason": None,
    }


def sync_req(
    group: str,
    member_id: str,
    generation: int,
    assignments: dict[str, bytes] | None = None,
    *,
    instance: str | None = None,
) -> dict[str, Any]:
    return {
        "group_id": group,
        "generation_id": generation,
        "member_id": member_id,
        "group_instance_id": instance,
        "protocol_type": None,
        "protocol_name": None,
        "assignments": [{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()],
    }


def hb_req(group: str, member_id: str, generation: int, instance: str | None = None) -> dict:
    return {
        "group_id": group,
        "generation_id": generation,
        "member_id": member_id,
        "group_instance_id": instance,
    }


def commit_req(
    group: str,
    offsets: dict[tuple[str, int], int],
    *,
    generation: int = -1,
    member_id: str = "",
    metadata: str | None = "",
    leader_epoch: int = -1,
) -> dict[str, Any]:
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (topic, partition), offset in offsets.items():
        by_topic.setdefault(topic, []).append(
            {
                "partition_index": partition,
                "committed_offset": offset,
                "committed_leader_epoch": leader_epoch,
                "commit_timestamp": -1,
                "committed_metadata": metadata,
            }
        )
    return {
        "group_id": group,
        "generation_id_or_member_epoch": generation,
        "member_id": member_id,
        "group_instance_id": None,
        "retention_time_ms": -1,
        "topics": [{"name": t, "partitions": p} for t, p in by_topic.items()],
    }


def fetch_req(group: str, topics: dict[str, list[int]] | None = None) -> dict[str, Any]:
    return {
        "group_id": group,
        "topics": None
        if topics is None
        else [{"name": t, "partition_indexes": p} for t, p in topics.items()],
        "groups": [],
        "require_stable": False,
    }


def commit_errors(resp: dict[str, Any]) -> dict[tuple[str, int], int]:
    return {
        (t["name"], p["partition_index"]): p["error_code"]
        for t in resp["topics"]
        for p in t["partitions"]
    }


def fetched(resp: dict[str, Any]) -> dict[tuple[str, int], tuple[int, int, str]]:
    return {
        (t["name"], p["partition_index"]): (
            p["committed_offset"],
            p["committed_leader_epoch"],
            p["metadata"],
        )
        for t in resp["topics"]
        for p in t["partitions"]
    }


def make_coord(store: Any = None, clock: FakeClock | None = None, **settings: Any):
    """A coordinator over ``store`` (a fresh MemStore by default) with test-sized limits."""
    from edplog.group import GroupCoordinator

    settings.setdefault("min_session_timeout_ms", 10)
    settings.setdefault("initial_rebalance_delay_ms", 0)
    settings.setdefault("tick_interval_ms", 20)
    return GroupCoordinator(
        store if store is not None else MemStore(), now=clock or FakeClock(), **settings
    )


async def settle(rounds: int = 10) -> None:
    """Let every ready task run up to its next real wait (a bounded number of loop turns)."""
    import asyncio

    for _ in range(rounds):
        await asyncio.sleep(0)
