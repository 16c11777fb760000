"""Idempotent-producer state: Kafka's sequence rules, snapshots in Kafka's layout, and state
that survives a clean restart, a kill and a truncation."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap

import pytest

from edplog import Log, _native
from edplog.errors import (
    DuplicateSequenceError,
    InvalidProducerEpochError,
    InvalidRecordError,
    OutOfOrderSequenceError,
)
from edplog.records import build_batch
from edplog.storage.producer_state import ProducerStateManager, snapshot_offsets

PID = 4242


def batch(seq: int, n: int = 1, epoch: int = 0, pid: int = PID) -> bytes:
    return build_batch(
        [(None, b"v%d" % (seq + i)) for i in range(n)],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
    )


def test_a_retried_batch_is_a_duplicate_with_its_original_offsets(tmp_path):
    with Log(tmp_path / "log") as log:
        assert log.append_batches(batch(0, 3)) == (0, 2)
        assert log.append_batches(batch(3, 2)) == (3, 4)
        with pytest.raises(DuplicateSequenceError) as dup:
            log.append_batches(batch(0, 3))
        assert (dup.value.base_offset, dup.value.last_offset) == (0, 2)
        assert log.log_end_offset == 5


def test_gaps_and_fenced_epochs_are_refused(tmp_path):
    with Log(tmp_path / "log") as log:
        log.append_batches(batch(0, 2, epoch=1))
        with pytest.raises(OutOfOrderSequenceError):
            log.append_batches(batch(5, 1, epoch=1))
        with pytest.raises(InvalidProducerEpochError):
            log.append_batches(batch(2, 1, epoch=0))
        with pytest.raises(OutOfOrderSequenceError):
            log.append_batches(batch(1, 1, epoch=2))  # a new epoch starts at 0
        assert log.append_batches(batch(0, 1, epoch=2)) == (2, 2)
        with pytest.raises(InvalidRecordError):
            log.append_batches(batch(1, 1, epoch=2) + batch(2, 1, epoch=2))
        assert log.log_end_offset == 3


def test_the_last_five_batches_are_remembered(tmp_path):
    with Log(tmp_path / "log") as log:
        for i in range(7):
            log.append_batches(batch(i))
        for i in range(2, 7):
            with pytest.raises(DuplicateSequenceError):
                log.append_batches(batch(i))
        with pytest.raises(OutOfOrderSequenceError):
            log.append_batches(batch(1))  # older than the window: not recognised


def test_state_survives_a_clean_restart(tmp_path):
    path = tmp_path / "log"
    with Log(path) as log:
        for i in range(6):
            log.append_batches(batch(i * 2, 2))
    assert snapshot_offsets(str(path)) == [12]
    with Log(path) as log:
        for i in range(1, 6):
            with pytest.raises(DuplicateSequenceError) as dup:
                log.append_batches(batch(i * 2, 2))
            assert dup.value.base_offset == i * 2
        assert log.append_batches(batch(12, 1)) == (12, 12)


def test_state_is_rebuilt_from_the_log_after_a_kill(tmp_path):
    """A process SIGKILLed mid-stream: no snapshot at shutdown; reopening replays the batch
    headers past the last snapshot (taken at a roll) and every retry is still a duplicate."""
    path = tmp_path / "log"
    script = textwrap.dedent(
        f"""
        import os, signal
        from edplog import Log
        from edplog.records import build_batch
        log = Log({str(path)!r}, {{"segment.bytes": 4096}})
        for i in range(200):
            b = build_batch([(None, b"x" * 50)], producer_id={PID}, producer_epoch=0,
                            base_sequence=i)
            log.append_batches(b)
        log.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    with Log(path, {"segment.bytes": 4096}) as log:
        assert log.log_end_offset == 200
        assert len(log.segments) > 2
        for i in range(195, 200):
            with pytest.raises(DuplicateSequenceError) as dup:
                log.append_batches(batch(i))
            assert dup.value.base_offset == i
        assert log.append_batches(batch(200)) == (200, 200)


def test_truncation_rewinds_the_state(tmp_path):
    """After truncate_to, the batches removed are no longer duplicates: they can be
    appended again (what a follower does after diverging)."""
    with Log(tmp_path / "log") as log:
        for i in range(4):
            log.append_batches(batch(i))
        log.truncate_to(2)
        assert log.append_batches(batch(2)) == (2, 2)
        with pytest.raises(DuplicateSequenceError):
            log.append_batches(batch(1))


def test_follower_appends_carry_producer_state(tmp_path):
    with Log(tmp_path / "leader") as leader:
        for i in range(3):
            leader.append_batches(batch(i))
        data = leader.read_batches(0, 1 << 20)
    with Log(tmp_path / "follower") as follower:
        follower.append_as_follower(data)
        with pytest.raises(DuplicateSequenceError):
            follower.append_batches(batch(2))


def test_snapshot_is_kafkas_layout(tmp_path):
    """version 1, CRC-32C of the rest, then int32 count and 46-byte entries."""
    state = ProducerStateManager(str(tmp_path))
    h = _native.batch_header(batch(10, 3, epoch=2))
    state.update(h, 100, 102)
    path = state.take_snapshot(103)
    data = open(path, "rb").read()
    version, crc = struct.unpack_from(">hI", data, 0)
    assert version == 1
    assert crc == _native.crc32c(data[6:])
    (count,) = struct.unpack_from(">i", data, 6)
    assert count == 1 and len(data) == 10 + 46
    entry = struct.unpack_from(">qhiqiqiq", data, 10)
    assert entry == (PID, 2, 12, 102, 2, h.max_timestamp_ms, -1, -1)
    assert os.path.basename(path) == f"{103:020d}.snapshot"


def test_a_damaged_snapshot_is_dropped_for_an_older_one(tmp_path):
    state = ProducerStateManager(str(tmp_path))
    state.update(_native.batch_header(batch(0)), 0, 0)
    state.take_snapshot(1)
    state.update(_native.batch_header(batch(1)), 1, 1)
    newest = state.take_snapshot(2)
    with open(newest, "r+b") as f:
        f.seek(20)
        f.write(b"\xff")
    fresh = ProducerStateManager(str(tmp_path))
    assert fresh.load(10) == 1
    assert snapshot_offsets(str(tmp_path)) == [1]
    assert fresh.producers[PID].last_offset == 0
