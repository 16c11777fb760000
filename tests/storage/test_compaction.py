"""Compaction: the latest record per key survives, offsets never change, tombstones stay for
delete.retention.ms and then go, the result survives a reopen, and a crash in the middle
(a leftover .cleaned file) is cleaned up."""

from __future__ import annotations

import os

from edplog import Log

CFG = {"cleanup.policy": "compact", "segment.bytes": 1500, "delete.retention.ms": 1000}


def build(log: Log, rounds: int = 6, keys: int = 7) -> dict:
    """Write each key several times; returns key -> (offset, value) of its latest record."""
    latest = {}
    for r in range(rounds):
        for k in range(keys):
            key = b"key-%d" % k
            value = b"v%d-%d" % (r, k) + bytes(20)
            off = log.append(value, key=key, timestamp_ms=1000 + r)
            latest[key] = (off, value)
        log.append(b"no-key-%d" % r, timestamp_ms=1000 + r)  # records without a key stay
        log.flush()
    return latest


def test_compact_keeps_latest_per_key_and_offsets(tmp_path):
    """After compaction every key reads as its latest value at its original offset; keyless
    records stay; the active segment is untouched; reopen gives the same records."""
    path = tmp_path / "log"
    with Log(path, CFG) as log:
        latest = build(log)
        active_base = log.segments[-1].base_offset
        before = {r.offset: r for r in log.read(0)}
        removed = log.compact(now_ms=2000)
        assert removed > 0
        after = log.read(0)
        assert len(after) == len(before) - removed
        for r in after:
            assert before[r.offset] == r  # offsets and contents unchanged
            if r.key is not None and r.offset < active_base:
                assert latest[r.key][0] == r.offset
        assert {r.value for r in after if r.key is None} == {b"no-key-%d" % i for i in range(6)}
        assert [r.offset for r in after if r.offset >= active_base] == [
            o for o in sorted(before) if o >= active_base
        ]
        for off, value in latest.values():
            assert any(r.offset == off and r.value == value for r in after)
        end = log.log_end_offset
        assert log.append(b"new", key=b"key-0") == end
        snapshot = [(r.offset, r.key, r.value) for r in log.read(0)]
    with Log(path, CFG) as log:
        assert [(r.offset, r.key, r.value) for r in log.read(0)] == snapshot
        assert log.recovery_report == []


def test_compact_keeps_tombstones_for_delete_retention_then_removes_them(tmp_path):
    """A tombstone (null value) hides its key at once and stays readable until
    delete.retention.ms after its batch, then it is removed."""
    with Log(tmp_path / "log", CFG) as log:
        build(log)
        tomb = log.append(None, key=b"key-3", timestamp_ms=5000)
        log.flush()
        for i in range(60):  # push the tombstone into a sealed segment
            log.append(b"filler" + bytes(30), key=b"f%d" % i, timestamp_ms=5000)
        log.roll()
        log.compact(now_ms=5500)  # within delete.retention.ms: kept
        recs = {r.offset: r for r in log.read(0)}
        assert recs[tomb].value is None
        assert [r for r in recs.values() if r.key == b"key-3"] == [recs[tomb]]
        log.compact(now_ms=5000 + 1000 + 1)  # past it: removed
        assert all(r.key != b"key-3" for r in log.read(0))


def test_compact_under_delete_policy_does_nothing(tmp_path):
    with Log(tmp_path / "log", segment_bytes=1500) as log:
        build(log)
        assert log.compact(now_ms=10**12) == 0


def test_leftover_cleaned_file_from_a_crash_mid_compaction_is_removed(tmp_path):
    """A crash after writing <base>.log.cleaned but before the rename: opening deletes the
    leftover and keeps the original segment whole."""
    path = tmp_path / "log"
    with Log(path, CFG) as log:
        build(log)
        want = [(r.offset, r.key, r.value) for r in log.read(0)]
        first = log.segments[0].path
    with open(first + ".cleaned", "wb") as f:
        f.write(b"half-written cleaned segment")
    with open(first[:-4] + ".swap", "wb") as f:
        f.write(b"x")
    with Log(path, CFG) as log:
        assert [(r.offset, r.key, r.value) for r in log.read(0)] == want
    assert not os.path.exists(first + ".cleaned")
    assert not os.path.exists(first[:-4] + ".swap")


def test_appends_during_a_compaction_pass_are_kept(tmp_path):
    """The pass reads and rewrites off the writer lock; appends made meanwhile (in another
    thread) land in the active segment and survive the swap, and every offset stays."""
    import threading

    cfg = {**CFG, "segment.bytes": 4096, "max.message.bytes": 2048}
    with Log(tmp_path / "log", cfg) as log:
        build(log, rounds=40, keys=11)
        before = log.log_end_offset
        done = threading.Event()
        removed: list[int] = []

        def compact() -> None:
            removed.append(log.compact(now_ms=2000))
            done.set()

        t = threading.Thread(target=compact)
        t.start()
        added = []
        while not done.is_set() and len(added) < 5000:
            added.append(log.append(b"late-%d" % len(added), key=b"late"))
        t.join(60)
        added.append(log.append(b"last", key=b"late"))
        assert removed and removed[0] > 0
        records = {r.offset: r for r in log.read(0)}
        assert added == list(range(before, before + len(added)))
        assert all(o in records for o in added)  # the active segment was never cleaned
        assert records[added[-1]].value == b"last"
    with Log(tmp_path / "log", cfg) as log:
        assert log.recovery_report == [] and log.read(added[-1])[0].value == b"last"
