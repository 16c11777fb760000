"""Log.max_timestamp (ListOffsets MAX_TIMESTAMP): the first record with the largest timestamp,
found by walking the one batch the segment names, uncompressed and behind every codec."""

from __future__ import annotations

import pytest

from edplog import Log, _native
from edplog.errors import CorruptRecordError
from edplog.records import build_batch

CFG = {"segment.bytes": 3000, "index.interval.bytes": 200, "segment.index.bytes": 4096}
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def _batch(timestamps: list[int], codec: str = "none") -> bytes:
    return build_batch(
        [(None, b"v-%d" % i + b"x" * 40, None, ts) for i, ts in enumerate(timestamps)], codec
    )


def _linear_oracle(log: Log) -> tuple[int, int]:
    """The first record with the largest timestamp, by reading every record."""
    best: tuple[int, int] | None = None
    for r in log.read(log.log_start_offset):
        if best is None or r.timestamp_ms > best[1]:
            best = (r.offset, r.timestamp_ms)
    assert best is not None
    return best


@pytest.mark.parametrize("codec", CODECS)
def test_max_timestamp_is_the_record_not_the_batch_end(tmp_path, codec):
    """A batch of 10 records whose largest timestamp is at record 4 (and again at record 7),
    after a first batch of 3: the answer is offset 3 + 4 with that timestamp, not the batch's
    last offset 12; the same after the log is reopened (segment metadata rebuilt)."""
    ts = [1_000 + i for i in range(10)]
    ts[4] = ts[7] = 5_000
    with Log(tmp_path / "log", CFG) as log:
        log.append_batches(_batch([100, 200, 300], codec))
        log.append_batches(_batch(ts, codec))
        assert log.max_timestamp() == (7, 5_000)
        assert log.max_timestamp() == _linear_oracle(log)
    with Log(tmp_path / "log", CFG) as log:
        assert log.max_timestamp() == (7, 5_000)


@pytest.mark.parametrize("codec", CODECS)
def test_max_timestamp_across_segments_matches_a_linear_scan(tmp_path, codec):
    """Many batches over several segments, timestamps out of order inside batches and the
    maximum repeated in later batches: the answer is the first record holding it, as a scan
    of every record says."""
    with Log(tmp_path / "log", CFG) as log:
        for b in range(40):
            ts = [(b * 37 + i * 11) % 97 + 10_000 for i in range(7)]
            log.append_batches(_batch(ts, codec))
        assert len(log.segments) >= 2
        found = log.max_timestamp()
        assert found == _linear_oracle(log)
        assert found[1] == 10_096


def test_max_timestamp_of_log_append_time_batch_is_its_first_record(tmp_path):
    """Batches stamped with the log-append time carry it on every record: the first record of
    the batch stamped latest is the answer."""
    with Log(tmp_path / "log", CFG) as log:
        log.append_batches(_batch([1, 2, 3]), log_append_time_ms=50_000)
        log.append_batches(_batch([4, 5, 6, 7]), log_append_time_ms=60_000)
        log.append_batches(_batch([8, 9]), log_append_time_ms=55_000)
        assert log.max_timestamp() == (3, 60_000)


def test_max_timestamp_of_empty_log_is_none(tmp_path):
    """A log without records has no max timestamp."""
    with Log(tmp_path / "log", CFG) as log:
        assert log.max_timestamp() is None


@pytest.mark.parametrize("codec", CODECS)
def test_offset_of_timestamp_walks_one_batch(codec):
    """The native walk over one batch: the first record with the timestamp, its offset counted
    from the batch's base offset; -1 for a timestamp no record has."""
    raw = bytearray(_batch([5, 9, 3, 9, 1], codec))
    raw[0:8] = (1000).to_bytes(8, "big")  # base offset is not covered by the CRC
    assert _native.offset_of_timestamp(raw, 9) == 1001
    assert _native.offset_of_timestamp(raw, 1) == 1004
    assert _native.offset_of_timestamp(raw, 7) == -1


def test_offset_of_timestamp_refuses_a_damaged_batch():
    """A flipped byte in the records fails the CRC check: CorruptRecordError, no answer."""
    raw = bytearray(_batch([5, 9, 3]))
    raw[-3] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        _native.offset_of_timestamp(raw, 9)
