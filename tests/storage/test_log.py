"""Log: timestamp lookups, fetch slices of whole batches, truncation edge cases, and readers
in threads while one writer appends."""

from __future__ import annotations

import threading

import pytest

from edplog import Log
from edplog.errors import OffsetOutOfRangeError
from edplog.records import build_batch, decode_batches

CFG = {"segment.bytes": 3000, "index.interval.bytes": 200, "segment.index.bytes": 4096}


def test_offset_for_timestamp_finds_first_record_at_or_after(tmp_path):
    """Across several segments, with non-monotonic timestamps inside batches, the answer is
    the first offset whose timestamp >= the target (a linear scan is the oracle)."""
    with Log(tmp_path / "log", CFG) as log:
        stamps = [1000 + (i * 37) % 101 + i * 3 for i in range(600)]
        for i, ts in enumerate(stamps):
            log.append(b"%d" % i + bytes(20), timestamp_ms=ts)
            if i % 6 == 5:
                log.flush()
        assert len(log.segments) > 3
        for target in list(range(900, 3100, 37)) + [stamps[0], max(stamps), max(stamps) + 1]:
            want = next(((o, t) for o, t in enumerate(stamps) if t >= target), None)
            assert log.offset_for_timestamp(target) == want, target
        log.delete_records_before(300)
        target = 0
        want = next((o, t) for o, t in enumerate(stamps) if o >= 300)
        assert log.offset_for_timestamp(target) == want


def test_fetch_slices_serve_whole_batches_and_at_least_one(tmp_path):
    """read_batches returns whole batches starting with the one holding the offset, never
    more than max_bytes unless a single batch is larger, and nothing at the log end."""
    with Log(tmp_path / "log", CFG) as log:
        sizes = []
        for i in range(40):
            raw = build_batch([(None, bytes(10 * (i % 9 + 1)))] * (i % 4 + 1))
            sizes.append(len(raw))
            log.append_batches(raw)
        end = log.log_end_offset
        for offset in range(0, end, 3):
            for max_bytes in (1, 100, 500, 5000):
                data = log.read_batches(offset, max_bytes)
                batches = decode_batches(data)
                assert batches, (offset, max_bytes)
                assert batches[0].base_offset <= offset <= batches[0].last_offset
                assert sum(b.size_bytes for b in batches) == len(data)
                assert len(batches) == 1 or len(data) <= max_bytes
                slices = log.fetch_slices(offset, max_bytes)
                assert len(slices) == 1
                seg, pos, length = slices[0]
                assert seg.pread(pos, length) == data
        assert log.read_batches(end, 1000) == b""
        assert log.fetch_slices(end, 1000) == []
        with pytest.raises(OffsetOutOfRangeError):
            log.read_batches(end + 1, 1000)


def test_truncate_below_the_log_start_offset_empties_the_log_there(tmp_path):
    """truncate_to below the log start offset (a replica far behind): the log becomes
    empty at that offset and appends continue from it, also after a reopen."""
    path = tmp_path / "log"
    with Log(path, CFG) as log:
        for i in range(300):
            log.append(b"%d" % i + bytes(30))
            if i % 10 == 9:
                log.flush()
        log.delete_records_before(200)
        log.truncate_to(50)
        assert (log.log_start_offset, log.log_end_offset) == (50, 50)
        assert log.read(50) == []
        assert log.append(b"again") == 50
    with Log(path, CFG) as log:
        assert (log.log_start_offset, log.log_end_offset) == (50, 51)
        assert [r.value for r in log.read(50)] == [b"again"]


def test_closed_log_refuses_everything(tmp_path):
    from edplog.errors import LogClosedError

    log = Log(tmp_path / "log")
    log.append(b"x")
    log.close()
    log.close()  # twice is fine
    for call in (lambda: log.read(0), log.flush, log.roll, lambda: log.truncate_to(0)):
        with pytest.raises(LogClosedError):
            call()


def test_readers_in_threads_see_a_prefix_consistent_log_while_one_writer_appends(tmp_path):
    """Four reader threads read from random offsets while the writer appends records and
    batches (rolling segments): every read returns contiguous offsets whose values are the
    ones written, and no reader raises."""
    log = Log(tmp_path / "log", CFG)
    errors: list[BaseException] = []
    stop = threading.Event()
    total = 3000

    def value(i: int) -> bytes:
        return b"v%d" % i

    def reader(seed: int) -> None:
        import random

        rng = random.Random(seed)
        try:
            for _ in range(400):
                if stop.is_set():
                    break
                end = log.log_end_offset
                offset = rng.randrange(0, end + 1)
                got = log.read(offset, 50)
                offs = [r.offset for r in got]
                assert offs == list(range(offset, offset + len(offs)))
                assert all(r.value == value(r.offset) for r in got)
                cols = log.read_numpy(offset, 50)
                assert cols.offsets.tolist() == list(range(offset, offset + len(cols.offsets)))
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    try:
        i = 0
        while i < total:
            if i % 50 == 0:
                base, last = log.append_batches(
                    build_batch([(None, value(i + j)) for j in range(5)])
                )
                assert base == i
                i = last + 1
            else:
                assert log.append(value(i)) == i
                i += 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors[0]
    assert [r.value for r in log.read(0)] == [value(i) for i in range(total)]
    log.close()


def test_flush_messages_fsyncs_every_n_records(tmp_path):
    """flush.messages=3: the recovery point (what is known fsynced) moves every 3 appends."""
    with Log(str(tmp_path), {"flush.messages": 3}) as log:
        points = []
        for _ in range(7):
            log.append(b"r")
            points.append(log.recovery_point)
        assert points == [0, 0, 3, 3, 3, 6, 6]


def test_flush_ms_flushes_in_the_background(tmp_path):
    """flush.ms=50: a record nobody flushes becomes durable without another call."""
    import time

    with Log(str(tmp_path), flush_ms=50) as log:
        log.append(b"r")
        assert log.recovery_point == 0
        deadline = time.monotonic() + 10
        while log.recovery_point < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.recovery_point == 1


def test_concurrent_flushes_share_one_fsync_and_cover_every_append(tmp_path):
    """Group commit: threads that flush at once all return with their records durable."""
    with Log(str(tmp_path)) as log:
        errors = []

        def writer(n: int) -> None:
            try:
                for _ in range(50):
                    offset = log.append(b"x%d" % n)
                    log.flush()
                    assert log.recovery_point > offset
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert log.log_end_offset == 200
        assert len(log.read(0)) == 200


def test_segments_rolled_by_appends_are_fsynced_before_flush_returns(tmp_path):
    """Rolls triggered by appends fsync the old segment in the background; flush() still
    returns only when every segment, rolled or active, is on disk and checkpointed."""
    from edplog.storage.checkpoint import read_checkpoint

    with Log(str(tmp_path), {"segment.bytes": 16384, "max.message.bytes": 4096}) as log:
        for i in range(2000):
            log.append(b"%05d" % i + bytes(95))
        assert len(log.segments) > 5
        log.flush()
        assert log.recovery_point == log.log_end_offset == 2000
        log.write_checkpoint()
        assert read_checkpoint(str(tmp_path))["recovery-point"] == 2000
    with Log(str(tmp_path)) as log:
        assert [r.value[:5] for r in log.read(1995)] == [b"%05d" % i for i in range(1995, 2000)]
