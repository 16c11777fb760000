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
