"""Retention: retention.ms (with an explicit now_ms) and retention.bytes delete whole old
segments, never the active one, and advance the log start offset durably."""

from __future__ import annotations

from edplog import Log

SEG = {"segment.bytes": 2000, "index.interval.bytes": 200}


def fill(log: Log, n: int, ts0: int) -> None:
    for i in range(n):
        log.append(b"r%05d" % i + bytes(50), timestamp_ms=ts0 + i)
        if i % 5 == 4:
            log.flush()


def test_retention_ms_deletes_only_segments_older_than_the_limit(tmp_path):
    """Segments whose newest record is older than now - retention.ms go, the rest stay; the
    log start offset moves to the first kept segment and survives a reopen."""
    path = tmp_path / "log"
    with Log(path, SEG, retention_ms=1000) as log:
        fill(log, 200, ts0=10_000)
        segs = log.segments
        assert len(segs) > 4
        now = segs[2].max_timestamp_ms + 1000 + 1  # segments 0..2 expired, 3 not
        assert log.enforce_retention(now_ms=now) == 3
        assert log.log_start_offset == segs[3].base_offset
        assert [s.base_offset for s in log.segments] == [s.base_offset for s in segs[3:]]
        assert log.read(log.log_start_offset)[0].offset == segs[3].base_offset
        assert log.enforce_retention(now_ms=now) == 0
        start = log.log_start_offset
    with Log(path, SEG, retention_ms=1000) as log:
        assert log.log_start_offset == start
        assert log.read(start)[0].value.startswith(b"r%05d" % start)


def test_retention_ms_never_deletes_the_active_segment(tmp_path):
    """Even when every record is expired, the active segment and the log end offset stay."""
    with Log(tmp_path / "log", SEG, retention_ms=1) as log:
        fill(log, 100, ts0=0)
        end = log.log_end_offset
        log.enforce_retention(now_ms=10**12)
        assert len(log.segments) == 1
        assert log.log_end_offset == end
        assert log.append(b"next") == end


def test_retention_ms_minus_one_keeps_everything(tmp_path):
    with Log(tmp_path / "log", SEG, retention_ms=-1) as log:
        fill(log, 100, ts0=0)
        assert log.enforce_retention(now_ms=10**15) == 0
        assert log.log_start_offset == 0


def test_retention_bytes_keeps_the_newest_segments_under_the_limit(tmp_path):
    """retention.bytes deletes the oldest segments while the rest would still hold at least
    retention.bytes; the total left exceeds the limit by less than one segment."""
    limit = 5000
    with Log(tmp_path / "log", SEG, retention_bytes=limit, retention_ms=-1) as log:
        fill(log, 400, ts0=0)
        before = log.size_bytes
        deleted = log.enforce_retention(now_ms=0)
        assert deleted > 0
        segs = log.segments
        assert log.size_bytes < before
        assert log.size_bytes - segs[0].size < limit <= log.size_bytes
        assert log.log_start_offset == segs[0].base_offset
        got = log.read(log.log_start_offset)
        assert [r.offset for r in got] == list(range(segs[0].base_offset, 400))


def test_compact_only_policy_ignores_retention(tmp_path):
    """cleanup.policy=compact alone: enforce_retention deletes nothing."""
    with Log(tmp_path / "log", SEG, cleanup_policy="compact", retention_ms=1) as log:
        fill(log, 100, ts0=0)
        assert log.enforce_retention(now_ms=10**12) == 0
        assert log.log_start_offset == 0
