"""The logs of a data directory: a partition that cannot be opened stays offline while every
other one serves, housekeeping of one partition never stops the others, and a missing
segment file is a hole, not leftovers."""

from __future__ import annotations

import os

import pytest

from edplog import Log, Store
from edplog.errors import CorruptRecordError, PartitionOfflineError
from edplog.storage.segments import file_names

# Small batches and segments: a few hundred records span several segments.
SMALL = {"segment.bytes": 4096, "max.message.bytes": 1024}


def _fill(log: Log, n: int, size: int = 100, key: bytes | None = None) -> None:
    for i in range(n):
        log.append(b"%06d" % i + bytes(size), key=key)
    log.flush()


def _flip_crc_byte(path: str, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0xFF]))


def test_a_damaged_partition_is_offline_and_the_others_open(tmp_path):
    """Flushed data with a flipped byte below the recovery point in one partition's active
    segment, found by crash recovery: the store opens, that partition raises
    PartitionOfflineError with the reason, the others work."""
    with Store(tmp_path, SMALL) as store:
        store.create_topic("t", 3)
        for p in range(3):
            _fill(store.log("t", p), 100)
        seg = store.log("t", 1).segments[-1].path
    _flip_crc_byte(seg, 100)  # inside the first batch's CRC-covered bytes
    os.unlink(tmp_path / "t-1" / ".clean-shutdown")  # recovery, not a trusted load
    with Store(tmp_path, SMALL) as store:
        assert set(store.offline_partitions()) == {("t", 1)}
        with pytest.raises(PartitionOfflineError, match="t-1"):
            store.log("t", 1)
        for p in (0, 2):
            assert len(store.log("t", p).read(0)) == 100
        store.log("t", 0).append(b"more")


def test_a_missing_segment_is_a_hole_not_leftovers(tmp_path):
    """Deleting a sealed .log (and its indexes) leaves a gap in the offsets: the log is
    refused with a message naming it, unless the gap is accepted."""
    path = tmp_path / "log"
    with Log(path, SMALL) as log:
        _fill(log, 200)
        bases = [s.base_offset for s in log.segments]
    assert len(bases) > 3
    for name in file_names(str(path), bases[1]):
        os.unlink(name)
    with pytest.raises(PartitionOfflineError, match=f"offsets \\[{bases[1]}, {bases[2]}\\)"):
        Log(path, SMALL)
    with Log(path, SMALL, accept_gaps=True) as log:
        assert any("accepted missing" in line for line in log.recovery_report)
        assert len(log.read(bases[2])) == 200 - bases[2]


def test_an_index_without_its_log_is_a_missing_segment(tmp_path):
    path = tmp_path / "log"
    with Log(path, SMALL) as log:
        _fill(log, 200)
        base = log.segments[1].base_offset
    os.unlink(file_names(str(path), base)[0])  # only the .log
    with pytest.raises(PartitionOfflineError, match=f"{base:020d}.log are missing"):
        Log(path, SMALL)


def test_one_partitions_failing_compaction_does_not_stop_retention_of_others(tmp_path):
    """A compacted topic with a damaged sealed batch: its compaction fails (and is logged),
    yet retention still deletes the other topic's old segments in the same pass."""
    defaults = {"segment.bytes": 2048, "retention.bytes": 4096, "max.message.bytes": 1024}
    with Store(tmp_path, defaults) as store:
        store.create_topic("events", 1)
        store.create_topic("state", 1, {"cleanup.policy": "compact", "retention.bytes": -1})
        _fill(store.log("events", 0), 300)
        _fill(store.log("state", 0), 100, key=b"k")
        seg = store.log("state", 0).segments[0].path
        before = len(store.log("events", 0).segments)
        _flip_crc_byte(seg, 100)
        result = store.housekeeping()
        assert result.failures == 1
        assert result.segments_deleted > 0
        assert len(store.log("events", 0).segments) < before
        with pytest.raises(CorruptRecordError):
            store.log("state", 0).compact()


def test_garbage_after_a_clean_shutdown_is_cut_with_a_warning(tmp_path):
    """Bytes appended past the recorded end of a cleanly closed log were never acknowledged:
    they are cut, reported, and every record is still there."""
    path = tmp_path / "log"
    with Log(path) as log:
        _fill(log, 10)
        active = log.segments[-1].path
    with open(active, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x09" + os.urandom(300))
    with Log(path) as log:
        assert any("past the end recorded" in line for line in log.recovery_report)
        assert len(log.read(0)) == 10
        assert log.append(b"next") == 10
