"""The fetch-session cache on its own, with explicit clock values (no sleeping): Kafka's
eviction preference, epochs, wrap-around, and the partition count the metrics report."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from edplog.broker.fetch_session import CachedPartition, FetchSessionCache
from edplog.errors import ErrorCode
from edplog.storage import Store

EVICTION_MS = 1000


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path)
    s.create_topic("t", 8)
    yield s
    s.close()


def _parts(n: int) -> list[CachedPartition]:
    return [CachedPartition(None, "t", {"partition": p, "fetch_offset": 0}) for p in range(n)]


def _results(n: int, hw: int = 0) -> list[dict[str, Any]]:
    return [{"high_watermark": hw, "log_start_offset": 0, "records": b"", "error_code": 0}] * n


def _open(cache: FetchSessionCache, size: int, now: int, privileged: bool = False) -> int:
    assert cache.context(0, 0, False, [], [], now).create
    return cache.open(_parts(size), _results(size), privileged, False, now)


def test_eviction_follows_kafkas_preference(store: Store) -> None:
    """Two slots. Fresh consumer sessions are never evicted by consumers (a new one gets
    session 0); a follower evicts the smallest consumer session at once; a session idle past
    the eviction time is evicted by anyone; a settled session is evicted only by a strictly
    more valuable one."""
    cache = FetchSessionCache(2, EVICTION_MS, store)
    a = _open(cache, 3, now=0)
    b = _open(cache, 2, now=0)
    assert a and b and len(cache) == 2
    assert _open(cache, 8, now=10) == 0  # both fresh
    f = _open(cache, 1, now=20, privileged=True)
    assert f and b not in cache.sessions and a in cache.sessions  # the smaller one went
    assert cache.evictions == 1
    # at 1500 a and f are settled; keep both in use (not stale)
    assert cache.context(a, 1, False, [], [], 1500).error == ErrorCode.NONE
    assert cache.context(f, 1, False, [], [], 1500).error == ErrorCode.NONE
    assert _open(cache, 3, now=1600) == 0  # (consumer, 3) is not worth more than a
    big = _open(cache, 4, now=1700)
    assert big and a not in cache.sessions and f in cache.sessions
    # at 3000, f was last used at 1500: stale, so even a one-partition consumer evicts it
    assert cache.context(big, 1, False, [], [], 2900).error == ErrorCode.NONE
    assert _open(cache, 1, now=3000) and f not in cache.sessions
    assert cache.evictions == 3
    assert cache.partitions_cached == 4 + 1


def test_epochs_errors_and_wrap(store: Store) -> None:
    """Epoch n+1 follows n; a repeated epoch is INVALID_FETCH_SESSION_EPOCH; the epoch after
    INT32_MAX is 1; a name-keyed session continued with topic ids is
    FETCH_SESSION_TOPIC_ID_ERROR; epoch -1 removes the session."""
    cache = FetchSessionCache(4, EVICTION_MS, store)
    sid = _open(cache, 2, now=0)
    assert cache.context(sid, 1, False, [], [], 1).error == ErrorCode.NONE
    assert cache.context(sid, 1, False, [], [], 2).error == ErrorCode.INVALID_FETCH_SESSION_EPOCH
    assert cache.context(sid, 2, True, [], [], 3).error == ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
    cache.sessions[sid].epoch = 0x7FFFFFFF
    assert cache.context(sid, 0x7FFFFFFF, False, [], [], 4).error == ErrorCode.NONE
    assert cache.sessions[sid].epoch == 1
    assert cache.context(sid, -1, False, [], [], 5).error == ErrorCode.NONE
    assert sid not in cache.sessions and cache.partitions_cached == 0
    assert cache.context(sid, 1, False, [], [], 6).error == ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_incremental_selection_and_round_robin(store: Store) -> None:
    """An incremental context lists the session's partitions (added ones at the end, forgotten
    ones gone); select() picks those with records or a changed high watermark, and moves the
    ones that returned records to the end of the session."""
    cache = FetchSessionCache(4, EVICTION_MS, store)
    sid = _open(cache, 3, now=0)
    added = CachedPartition(None, "t", {"partition": 5, "fetch_offset": 0})
    ctx = cache.context(sid, 1, False, [added], [("t", 1)], 10)
    assert [p.req["partition"] for p in ctx.partitions] == [0, 2, 5]
    results = _results(3)
    results = [dict(r) for r in results]
    results[0]["records"] = [object()]  # partition 0 returned records
    # partition 5 was never sent: its high watermark (0) differs from the cached -1
    assert cache.select(ctx, results) == [0, 2]
    ctx = cache.context(sid, 2, False, [], [], 20)
    assert [p.req["partition"] for p in ctx.partitions] == [2, 5, 0]
    assert cache.select(ctx, _results(3)) == []
    moved = [dict(r, high_watermark=7) if i == 1 else dict(r) for i, r in enumerate(_results(3))]
    ctx = cache.context(sid, 3, False, [], [], 30)
    assert cache.select(ctx, moved) == [1]
    assert cache.partitions_cached == 3


def test_topic_id_resolution_follows_the_registry(store: Store) -> None:
    """Ids resolve to names from the store; a deleted topic's id stops resolving, and a topic
    created again under the same name resolves only by its new id."""
    cache = FetchSessionCache(4, EVICTION_MS, store)
    old = store.topic_id("t")
    assert cache.topic_ids.resolver()(old) == "t"
    store.delete_topic("t")
    assert cache.topic_ids.resolver()(old) is None
    store.create_topic("t", 1)
    name_of = cache.topic_ids.resolver()
    assert name_of(old) is None and name_of(store.topic_id("t")) == "t"
    assert name_of(uuid.uuid4()) is None
