"""Shared helpers for the group-coordinator tests: a fake clock (the coordinator takes its
clock as a parameter, so timeouts are driven without sleeping), request builders, and a real
Store in a temporary directory.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from typing import Any

from edplog import Store


class FakeClock:
    """A monotonic clock the tests move by hand, so no outcome depends on real time."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += ms / 1000.0


_ROOT = tempfile.mkdtemp(prefix="edplog-group-tests-")
atexit.register(shutil.rmtree, _ROOT, True)


class TempStore(Store):
    """A real Store in a fresh temporary directory; ``reopen`` closes it and opens the same
    directory again, as a broker restart does."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__(path or tempfile.mkdtemp(dir=_ROOT))

    def reopen(self) -> TempStore:
        self.close()
        return TempStore(self.data_dir)


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
    """A coordinator over ``store`` (a fresh TempStore by default) with test-sized limits."""
    from edplog.group import GroupCoordinator

    settings.setdefault("min_session_timeout_ms", 10)
    settings.setdefault("initial_rebalance_delay_ms", 0)
    settings.setdefault("tick_interval_ms", 20)
    return GroupCoordinator(
        store if store is not None else TempStore(), now=clock or FakeClock(), **settings
    )


async def settle(rounds: int = 10) -> None:
    """Let every ready task run up to its next real wait (a bounded number of loop turns)."""
    import asyncio

    for _ in range(rounds):
        await asyncio.sleep(0)
