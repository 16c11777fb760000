"""Several log dirs in the embedded Store (real files): placement, reopening, the leftovers of
an interrupted move, and moving a partition between dirs while it is written to."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from edplog.errors import EdplogError, InvalidConfigError
from edplog.storage import Store
from edplog.storage.log_dirs import check_meta, split_log_dirs


def _homes(dirs: list[str], topic: str, partitions: int) -> dict[int, str]:
    out: dict[int, str] = {}
    for d in dirs:
        for p in range(partitions):
            if os.path.isdir(os.path.join(d, f"{topic}-{p}")):
                assert p not in out, f"{topic}-{p} is in two dirs"
                out[p] = d
    return out


def test_new_partitions_go_to_the_dir_with_the_fewest(tmp_path) -> None:
    """Three dirs, a topic of 2 partitions then one of 4: every dir ends with 2 partitions
    (each new one went to the dir holding the fewest), each lives in exactly one dir, the
    topic registry is in the first dir, and a reopen finds every record where it was."""
    dirs = [str(tmp_path / n) for n in ("a", "b", "c")]
    with Store(",".join(dirs)) as store:
        store.create_topic("x", 2)
        store.create_topic("y", 4)
        for topic, n in (("x", 2), ("y", 4)):
            for p in range(n):
                store.log(topic, p).append(b"%s-%d" % (topic.encode(), p))
    homes = {**{("x", p): d for p, d in _homes(dirs, "x", 2).items()}}
    homes.update({("y", p): d for p, d in _homes(dirs, "y", 4).items()})
    assert len(homes) == 6
    assert sorted(list(homes.values()).count(d) for d in dirs) == [2, 2, 2]
    assert os.path.exists(os.path.join(dirs[0], "topics.json"))
    assert not os.path.exists(os.path.join(dirs[1], "topics.json"))
    with Store(dirs) as store:
        for (topic, p), d in homes.items():
            assert store.dir_of(topic, p) == d
            assert [r.value for r in store.log(topic, p).read(0)] == [
                b"%s-%d" % (topic.encode(), p)
            ]


def test_a_half_made_future_copy_is_removed_and_a_duplicate_is_kept_once(tmp_path) -> None:
    """What a crash during a move leaves: a ``-future`` copy (removed on open, the original
    serves), or the whole copy renamed while the original was not yet removed (two whole
    copies: one is kept, the other removed, and every record is served)."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with Store([a, b]) as store:
        store.create_topic("t", 1)
        for i in range(100):
            store.log("t", 0).append(b"%d" % i)
        home = store.dir_of("t", 0)
    assert home is not None
    other = b if home == a else a
    shutil.copytree(os.path.join(home, "t-0"), os.path.join(other, "t-0-future"))
    with Store([a, b]) as store:
        assert not os.path.exists(os.path.join(other, "t-0-future"))
        assert [r.value for r in store.log("t", 0).read(0)] == [b"%d" % i for i in range(100)]
    shutil.copytree(os.path.join(home, "t-0"), os.path.join(other, "t-0"))
    with Store([a, b]) as store:
        assert len(_homes([a, b], "t", 1)) == 1
        assert [r.value for r in store.log("t", 0).read(0)] == [b"%d" % i for i in range(100)]


def test_move_partition_while_a_writer_appends_loses_nothing(tmp_path) -> None:
    """A thread appends while the partition is moved to the other dir: every append that
    returned is in the moved log, in order (appends refused during the swap raise and are
    retried, as a client would); the partition then lives only in the new dir."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    store = Store([a, b], {"segment.bytes": 65536})
    try:
        store.create_topic("m", 1)
        for i in range(500):
            store.log("m", 0).append(b"%06d" % i + bytes(500))
        src = store.dir_of("m", 0)
        dst = b if src == a else a
        written = [b"%06d" % i + bytes(500) for i in range(500)]
        stop = threading.Event()

        def writer() -> None:
            i = 500
            while not stop.is_set() and i < 20_000:
                value = b"%06d" % i + bytes(500)
                try:
                    store.log("m", 0).append(value)
                except (OSError, EdplogError):
                    continue  # the swap: retried
                written.append(value)
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            store.move_partition("m", 0, dst)
        finally:
            stop.set()
            t.join(30)
        assert store.dir_of("m", 0) == dst
        assert not os.path.exists(os.path.join(src, "m-0"))
        store.log("m", 0).flush()  # appends are batched: written out to be read
        assert [r.value for r in store.log("m", 0).read(0, max_records=100_000)] == written
    finally:
        store.close()
    with Store([a, b]) as store:
        assert store.dir_of("m", 0) == dst
        assert [r.value for r in store.log("m", 0).read(0, max_records=100_000)] == written


def test_log_dirs_value_and_meta_checks() -> None:
    """log.dirs is split on commas with duplicates dropped; an empty list is refused;
    meta.properties of two clusters, or of another broker, are refused."""
    assert split_log_dirs("/a, /b/,/a") == ["/a", "/b"]
    with pytest.raises(InvalidConfigError):
        split_log_dirs(" , ")
    assert check_meta({"/a": {"cluster.id": "c", "broker.id": "1"}}, None, 1) == "c"
    with pytest.raises(InvalidConfigError, match="different clusters"):
        check_meta({"/a": {"cluster.id": "c"}, "/b": {"cluster.id": "d"}}, None, 1)
    with pytest.raises(InvalidConfigError, match="broker 2"):
        check_meta({"/a": {"broker.id": "2"}}, None, 1)
    with pytest.raises(InvalidConfigError, match="cluster.id is x"):
        check_meta({"/a": {"cluster.id": "c"}}, "x", 1)


# ---- a move in progress: its future replica, and administration meanwhile ------------------

MOVE_RATE = 8 << 20  # bytes a second: a 24 MB partition takes about 3 s to copy


def _filled_store(tmp_path, topic: str, records: int = 6000) -> tuple[Store, str, str]:
    """A store over two dirs with ``records`` records of 4 KB (24 MB) in ``topic``-0."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    store = Store([a, b], {"segment.bytes": 8 << 20}, move_bytes_per_second=MOVE_RATE)
    store.create_topic(topic, 1)
    log = store.log(topic, 0)
    for i in range(records):
        log.append(b"%06d" % i + bytes(4090))
    log.flush()
    src = store.dir_of(topic, 0)
    assert src is not None
    return store, src, (b if src == a else a)


def _start_move(store: Store, topic: str, dst: str) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(store.move_partition(topic, 0, dst))
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, outcome


def _future(store: Store, dst: str, topic: str) -> tuple[int, int] | None:
    report = next(r for r in store.describe_dirs() if r.path == dst)
    return report.futures.get((topic, 0))


def test_describe_dirs_reports_the_future_replica_with_a_shrinking_lag(tmp_path) -> None:
    """Move a 24 MB partition with the copy capped at 8 MB/s and poll describe_dirs: the
    destination lists a future replica whose size grows by more than a segment and whose
    offset lag never grows and ends below where it started, while the source still lists
    the partition (or, once the move switched, the destination does: never neither);
    afterwards only the destination lists it, with no future left."""
    store, src, dst = _filled_store(tmp_path, "big")
    try:
        end = store.log("big", 0).log_end_offset
        t, outcome = _start_move(store, "big", dst)
        seen: list[tuple[int, int]] = []
        for _ in range(600):
            if not t.is_alive():
                break
            future = _future(store, dst, "big")
            if future is not None:
                seen.append(future)
                # One report: the source lists the partition until the move switches it to
                # the destination (which may happen between the two looks): never neither.
                listed = {r.path: ("big", 0) in r.partitions for r in store.describe_dirs()}
                assert listed[src] or listed[dst], listed
            t.join(0.05)
        t.join(60)
        assert not t.is_alive() and not isinstance(outcome[0], BaseException), outcome
        assert len(seen) >= 3, seen
        lags = [lag for _, lag in seen]
        sizes = [size for size, _ in seen]
        assert lags == sorted(lags, reverse=True) and lags[0] > lags[-1], lags
        # Sizes grow as segments are copied (index files are rewritten whole, so not strictly).
        assert max(sizes) > sizes[0] + (8 << 20), sizes
        assert all(0 <= lag <= end for lag in lags)
        reports = {r.path: r for r in store.describe_dirs()}
        assert ("big", 0) in reports[dst].partitions
        assert ("big", 0) not in reports[src].partitions
        assert not reports[dst].futures and not reports[src].futures
        assert store.log("big", 0).log_end_offset == end
        assert not os.path.exists(os.path.join(dst, "big-0-future"))
    finally:
        store.close()


def test_topic_administration_goes_on_during_a_move(tmp_path) -> None:
    """While a throttled move copies, creating and deleting another topic (on executor-like
    threads) finishes long before the move does: the store lock is not held for the copy."""
    store, _, dst = _filled_store(tmp_path, "slow")
    try:
        t, outcome = _start_move(store, "slow", dst)
        for _ in range(200):
            if _future(store, dst, "slow") is not None:
                break
            t.join(0.02)
        done = threading.Event()

        def admin() -> None:
            store.create_topic("other", 2)
            store.delete_topic("other")
            done.set()

        a = threading.Thread(target=admin)
        a.start()
        a.join(30)
        assert done.is_set()
        # The move was still copying when administration had finished.
        assert t.is_alive() and _future(store, dst, "slow") is not None
        t.join(60)
        assert not isinstance(outcome[0], BaseException), outcome
        assert store.dir_of("slow", 0) == dst and not store.has_topic("other")
    finally:
        store.close()


def test_deleting_the_topic_being_moved_abandons_the_move(tmp_path) -> None:
    """Delete the topic while its partition's copy is being made: the delete returns, the
    move ends with MoveAbandoned, and neither the partition nor its -future copy is left in
    any dir; a topic of the same name created afterwards starts empty."""
    from edplog.storage.log_move import MoveAbandoned

    store, src, dst = _filled_store(tmp_path, "gone")
    try:
        t, outcome = _start_move(store, "gone", dst)
        for _ in range(200):
            if _future(store, dst, "gone") is not None:
                break
            t.join(0.02)
        assert _future(store, dst, "gone") is not None
        store.delete_topic("gone")
        t.join(30)
        assert not t.is_alive()
        assert isinstance(outcome[0], MoveAbandoned), outcome
        for d in (src, dst):
            assert [n for n in os.listdir(d) if n.startswith("gone-")] == [], os.listdir(d)
        store.create_topic("gone", 1)
        assert store.log("gone", 0).log_end_offset == 0
    finally:
        store.close()
