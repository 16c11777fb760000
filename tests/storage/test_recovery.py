"""Crash recovery of a partition log: torn tails, flipped bits, garbage, damaged indexes,
corruption below the recovery point, a writer killed with SIGKILL, and a full disk."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import (
    SMALL,
    batch_ends,
    contents,
    index_view,
    restore,
    segment_names,
    snapshot,
    value_of,
)

from edplog import Log
from edplog.errors import CorruptRecordError, LogPoisonedError
from edplog.records import decode_batches
from edplog.storage.checkpoint import CHECKPOINT, CLEAN_SHUTDOWN


def crash_image(path: str, committed: int = 300, tail_batches: int = 8) -> tuple[dict, list, int]:
    """A log with `committed` flushed records (recovery point checkpointed by a roll) and
    `tail_batches` more batches written but never flushed, imaged while still open.

    Returns (image, every record written, the committed offset)."""
    log = Log(path, SMALL)
    for i in range(committed):
        log.append(value_of(i), key=b"k%d" % (i % 17))
        if i % 9 == 0:
            log.read(log.log_end_offset)  # writes the open batch: batches of varied sizes
    log.flush()
    log.roll()  # the checkpoint now says everything below committed is durable
    assert log.recovery_point == committed
    i = committed
    for b in range(tail_batches):
        for _ in range(1 + b % 4):
            log.append(value_of(i), key=None if i % 5 else b"k", headers=[("h", None)])
            i += 1
        log.read(log.log_end_offset)
    image = snapshot(path)
    written = contents(log)
    log.close()
    assert CLEAN_SHUTDOWN not in image
    return image, written, committed


def rebuilt_view(path: str) -> list:
    """index_view of the log at path after deleting every index file (a fresh rebuild)."""
    fresh = path + "-rebuilt"
    shutil.copytree(path, fresh)
    for name in os.listdir(fresh):
        if name.endswith((".index", ".timeindex")):
            os.unlink(os.path.join(fresh, name))
    with Log(fresh, SMALL) as log:
        view = index_view(log)
    shutil.rmtree(fresh)
    return view


def test_recover_cut_at_every_byte_of_the_unflushed_tail_keeps_the_whole_batch_prefix(tmp_path):
    """Cut the active segment at every byte inside its unflushed batches: reopening keeps
    exactly the whole batches before the cut, rebuilds indexes equal to a fresh rebuild, and
    reports the cut."""
    src = str(tmp_path / "src")
    image, written, committed = crash_image(src)
    active = segment_names(image)[-1]
    data = image[active]
    ends = batch_ends(data)
    assert ends[-1] == len(data)
    base = int(active[:20])
    records_in = {}  # batch end position -> records of the active segment before it
    for end in ends:
        records_in[end] = sum(1 for o, _, _ in written if o >= base) if end == len(data) else None
    work = str(tmp_path / "work")
    tail_start = ends[-9]
    for cut in range(tail_start, len(data)):
        case = dict(image)
        case[active] = data[:cut]
        restore(case, work)
        with Log(work, SMALL) as log:
            keep = max(e for e in ends if e <= cut)
            got = contents(log)
            assert got == written[: len(got)], cut
            assert len(got) >= committed
            assert log.log_end_offset == len(got)
            assert log.segments[-1].size == keep
            if cut != keep:
                assert any(
                    f"cut {cut - keep} bytes at position {keep}" in line
                    for line in log.recovery_report
                ), (cut, log.recovery_report)
            else:
                assert log.recovery_report == []
            view = index_view(log)
        assert view == rebuilt_view(work), cut


def test_recover_is_idempotent_after_a_torn_tail(tmp_path):
    """Recovering a torn tail twice (crash again right after recovery) gives the same log."""
    src = str(tmp_path / "src")
    image, written, _ = crash_image(src)
    active = segment_names(image)[-1]
    image[active] = image[active][:-7]
    work = str(tmp_path / "work")
    restore(image, work)
    first = Log(work, SMALL)
    got = contents(first)
    second_image = snapshot(work)  # imaged without closing: a second crash
    first.close()
    restore(second_image, work)
    with Log(work, SMALL) as again:
        assert contents(again) == got
        assert again.recovery_report == []


def test_recover_random_bit_flips_in_the_tail_serve_only_valid_batches(tmp_path):
    """Flip one random bit anywhere in the unflushed tail (CRC-covered area, baseOffset,
    batchLength, magic, epoch): reopening keeps the committed records, serves a prefix of
    what was written with ascending offsets, and every served batch passes its CRC."""
    src = str(tmp_path / "src")
    image, written, committed = crash_image(src)
    active = segment_names(image)[-1]
    data = image[active]
    ends = batch_ends(data)
    rng = random.Random(2024)
    work = str(tmp_path / "work")
    values = [(k, v) for _, k, v in written]
    for _ in range(150):
        pos = rng.randrange(ends[-9], len(data))
        flipped = bytearray(data)
        flipped[pos] ^= 1 << rng.randrange(8)
        case = dict(image)
        case[active] = bytes(flipped)
        restore(case, work)
        with Log(work, SMALL) as log:
            got = contents(log)
            offsets = [o for o, _, _ in got]
            assert offsets == sorted(set(offsets))
            assert [(k, v) for _, k, v in got] == values[: len(got)], pos
            assert len(got) >= committed
            raw = log.read_batches(log.log_start_offset, 1 << 30)
            while raw:  # every batch served decodes with its CRC checked
                batches = decode_batches(raw)
                raw = b"" if not batches else log.read_batches(batches[-1].last_offset + 1, 1 << 30)
            # everything that was kept is readable again after a second open
        with Log(work, SMALL) as log:
            assert contents(log) == got


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00" * 4096,  # a zero-filled (preallocated or torn) page
        bytes(range(256)) * 3,
        # a header that claims a huge batch with a valid magic byte
        (10**6).to_bytes(8, "big")
        + (5000).to_bytes(4, "big")
        + b"\x00" * 4
        + b"\x02"
        + b"\x01" * 60,
    ],
    ids=["zeros", "bytes", "plausible-header"],
)
def test_recover_cuts_garbage_appended_after_the_last_batch(tmp_path, garbage):
    """Garbage after the last whole batch is cut exactly; every written record survives."""
    src = str(tmp_path / "src")
    image, written, _ = crash_image(src)
    active = segment_names(image)[-1]
    image[active] += garbage
    work = str(tmp_path / "work")
    restore(image, work)
    with Log(work, SMALL) as log:
        assert contents(log) == written
        assert any(f"cut {len(garbage)} bytes" in line for line in log.recovery_report)
        assert log.append(b"after") == len(written)
    with Log(work, SMALL) as log:
        assert contents(log)[-1] == (len(written), None, b"after")


def test_recover_without_checkpoint_cuts_a_torn_sealed_segment_and_drops_later_ones(tmp_path):
    """No recovery-point checkpoint (lost) and a sealed segment torn in the middle: full
    recovery keeps its whole-batch prefix, deletes every later segment and says so."""
    src = str(tmp_path / "src")
    image, written, _ = crash_image(src, committed=900)
    del image[CHECKPOINT]
    names = segment_names(image)
    assert len(names) >= 3
    torn = names[1]
    ends = batch_ends(image[torn])
    cut = ends[3] + 5
    image[torn] = image[torn][:cut]
    work = str(tmp_path / "work")
    restore(image, work)
    with Log(work, SMALL) as log:
        kept = contents(log)
        base = int(torn[:20])
        assert kept == written[: len(kept)]
        assert [s.base_offset for s in log.segments] == [int(n[:20]) for n in names[:2]]
        assert log.segments[-1].size == ends[3]
        assert log.log_end_offset > base
        report = " ".join(log.recovery_report)
        assert "cut 5 bytes" in report
        for later in names[2:]:
            assert f"deleted segment {later}" in report
            assert not os.path.exists(os.path.join(work, later))
        log.append(b"x")
    with Log(work, SMALL) as log:
        assert contents(log) == kept + [(len(kept), None, b"x")]


# ---- index damage ---------------------------------------------------------------------------


def _damage(data: bytes, how: str, rng: random.Random) -> bytes | None:
    if how == "delete":
        return None
    if how == "zero":
        return b"\x00" * max(len(data), 4096)
    if how == "shorten":
        return data[: max(len(data) // 2 - 3, 0)]
    if how == "garble":
        return bytes(rng.randrange(256) for _ in range(max(len(data), 48)))
    if how == "past-end":
        # one more entry, pointing far past the end of the log
        size = 8 if len(data) % 12 else 12
        return (
            data + b"\x00\x00\x7f\xff" + b"\x7f\xff\xff\xf0"
            if size == 8
            else (data + (2**40).to_bytes(8, "big") + b"\x00\x0f\xff\xff")
        )
    raise AssertionError(how)


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "crashed"])
@pytest.mark.parametrize("how", ["delete", "zero", "shorten", "garble", "past-end"])
@pytest.mark.parametrize("which", ["sealed", "active"])
@pytest.mark.parametrize("ext", [".index", ".timeindex"])
def test_damaged_index_is_rebuilt_and_lookups_are_unchanged(tmp_path, ext, which, how, clean):
    """Delete, zero, shorten, garble or extend past the log end one index file: reopening
    rebuilds it; reads, index lookups and timestamp lookups equal those of the intact log."""
    path = str(tmp_path / "log")
    with Log(path, SMALL) as log:
        for i in range(1200):
            log.append(value_of(i), timestamp_ms=1_000_000 + i * 10)
            if i % 4 == 3:
                log.read(log.log_end_offset)  # write the open batch
        expected = contents(log)
        expected_ts = [log.offset_for_timestamp(1_000_000 + t) for t in range(0, 12100, 333)]
        if not clean:
            log.flush()
    image = snapshot(path)
    # Only the indexes are damaged; both shutdown kinds start from the same good .log files.
    if not clean:
        del image[CLEAN_SHUTDOWN]
    names = segment_names(image)
    assert len(names) >= 3
    stem = (names[1] if which == "sealed" else names[-1])[:20]
    target = stem + ext
    assert image[target], "the index under test must have entries"
    damaged = _damage(image[target], how, random.Random(7))
    if damaged is None:
        del image[target]
    else:
        image[target] = damaged
    restore(image, path)
    with Log(path, SMALL) as log:
        assert contents(log) == expected
        assert [log.offset_for_timestamp(1_000_000 + t) for t in range(0, 12100, 333)] == (
            expected_ts
        )
        view = index_view(log)
    assert view == rebuilt_view(path)
    # The rebuilt files are sane on disk: a further clean reopen trusts them.
    with Log(path, SMALL) as log:
        assert contents(log) == expected
        assert index_view(log) == view


# ---- corruption below the recovery point ----------------------------------------------------


def _flip_value_byte(path: str, name: str) -> tuple[int, int]:
    """Flip a byte inside a record of the second batch of a segment; returns where that
    batch starts and ends."""
    full = os.path.join(path, name)
    with open(full, "rb") as f:
        data = bytearray(f.read())
    ends = batch_ends(bytes(data))
    pos = ends[1] + 70
    data[pos] ^= 0x40
    with open(full, "wb") as f:
        f.write(data)
    return ends[1], ends[2]


def _build(path: str, n: int = 600) -> list:
    with Log(path, SMALL) as log:
        for i in range(n):
            log.append(value_of(i))
            if i % 11 == 0:
                log.flush()
        return contents(log)


def test_crc_mismatch_in_a_sealed_segment_is_reported_on_read_naming_file_and_position(tmp_path):
    """A flipped byte inside a sealed segment of a cleanly closed log: open trusts it, but a
    read through it raises CorruptRecordError naming the file and the batch position; reads
    elsewhere still work and nothing is dropped."""
    path = str(tmp_path / "log")
    written = _build(path)
    names = segment_names(snapshot(path))
    batch = _flip_value_byte(path, names[0])
    with Log(path, SMALL) as log:
        assert log.log_end_offset == len(written)
        with pytest.raises(CorruptRecordError) as info:
            log.read(0)
        assert info.value.path.endswith(names[0])
        assert batch[0] <= info.value.position < batch[1]
        assert names[0] in str(info.value) and str(info.value.position) in str(info.value)
        second = int(names[1][:20])
        assert contents_from(log, second) == written[second:]
    with Log(path, SMALL) as log:
        assert log.log_end_offset == len(written)  # reopening dropped nothing


def contents_from(log: Log, offset: int) -> list:
    return [(r.offset, r.key, r.value) for r in log.read(offset)]


def test_crc_mismatch_in_the_segment_holding_the_recovery_point_refuses_to_open(tmp_path):
    """After an unclean shutdown, damage below the recovery point inside the segment that
    recovery scans makes open raise CorruptRecordError (file and position) and leaves the
    .log files and the checkpoint byte for byte as they were (indexes are derived data)."""
    path = str(tmp_path / "log")
    written = _build(path)
    os.unlink(os.path.join(path, CLEAN_SHUTDOWN))
    names = segment_names(snapshot(path))
    # The checkpoint's recovery point is the log end: recovery scans the last segment.
    batch = _flip_value_byte(path, names[-1])
    before = snapshot(path)
    with pytest.raises(CorruptRecordError) as info:
        Log(path, SMALL)
    assert info.value.path.endswith(names[-1])
    assert batch[0] <= info.value.position < batch[1]
    assert "recovery point" in str(info.value)
    after = snapshot(path)
    for name in [*names, CHECKPOINT]:
        assert after[name] == before[name], name
    assert len(written) == 600


def test_crc_mismatch_below_the_recovered_segments_after_a_crash_fails_reads_loudly(tmp_path):
    """After an unclean shutdown, damage in an older sealed segment (trusted on open): the
    log opens with every offset, and reading the damaged batch raises CorruptRecordError."""
    path = str(tmp_path / "log")
    written = _build(path)
    os.unlink(os.path.join(path, CLEAN_SHUTDOWN))
    names = segment_names(snapshot(path))
    batch = _flip_value_byte(path, names[0])
    with Log(path, SMALL) as log:
        assert log.log_end_offset == len(written)
        with pytest.raises(CorruptRecordError) as info:
            log.read_numpy(0)
        assert info.value.path.endswith(names[0])
        assert batch[0] <= info.value.position < batch[1]


# ---- a writer killed with SIGKILL -------------------------------------------------------------

WRITER_CONFIG = {"segment.bytes": 30000, "segment.index.bytes": 4096, "index.interval.bytes": 512}
WRITER = textwrap.dedent(
    """
    import json, sys
    from edplog import Log
    from edplog.records import build_batch
    log = Log(sys.argv[1], json.loads(sys.argv[2]))
    i = log.log_end_offset
    step = 0
    while True:
        step += 1
        if step % 3 == 0:
            recs = [(None, b"v%d" % (i + j)) for j in range(5)]
            base, last = log.append_batches(build_batch(recs, "lz4" if step % 2 else None))
            assert base == i
            i = last + 1
        else:
            for _ in range(step % 7 + 1):
                assert log.append(b"v%d" % i) == i
                i += 1
        log.flush()
        sys.stdout.write("%d\\n" % i)
        sys.stdout.flush()
    """
)


@pytest.mark.slow
def test_sigkill_mid_append_keeps_every_flushed_record_and_no_partial_batch(tmp_path):
    """A writer appends and flushes in a loop and reports each flushed end offset; it is
    killed with SIGKILL after a varying number of reports, 12 times over the same log.
    Reopening keeps every reported record, offsets are contiguous from 0, every value is
    the one written at its offset, and every stored batch passes its CRC."""
    path = str(tmp_path / "log")
    rng = random.Random(5)
    acked = 0
    for _ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, path, json.dumps(WRITER_CONFIG)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            for _ in range(rng.randrange(1, 60)):
                line = proc.stdout.readline()
                assert line, "the writer died on its own"
                acked = max(acked, int(line))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        with Log(path, WRITER_CONFIG) as log:
            assert log.log_end_offset >= acked
            values = [r.value for r in log.read(0)]
            assert values == [b"v%d" % i for i in range(log.log_end_offset)]
            pos = 0
            for seg in log.segments:
                data = seg.pread(0, seg.size)
                assert sum(b.size_bytes for b in decode_batches(data)) == len(data)
                pos += len(data)
            acked = log.log_end_offset


# ---- a full disk ------------------------------------------------------------------------------

FILLER = textwrap.dedent(
    """
    import json, os, sys
    from edplog import Log
    from edplog.errors import LogPoisonedError
    out = {}
    log = Log(sys.argv[1], {"segment.bytes": int(sys.argv[2])})
    flushed = 0
    try:
        for i in range(100000):
            log.append(b"%08d" % i + bytes(992))
            if i % 20 == 19:
                log.flush()
                flushed = i + 1
    except OSError as exc:
        out["first"] = [type(exc).__name__, exc.errno, str(exc)]
    out["flushed"] = flushed
    readable = log.read(0)
    out["readable"] = len(readable)
    out["readable_ok"] = all(r.value[:8] == b"%08d" % r.offset for r in readable)
    later = []
    for name in ("append_batches", "flush", "append_then_flush"):
        try:
            if name == "append_batches":
                from edplog.records import build_batch
                log.append_batches(build_batch([(None, b"x")]))
            elif name == "flush":
                log.flush()
            else:
                log.append(b"y")
                log.flush()
            later.append([name, None])
        except LogPoisonedError as exc:
            later.append([name, "LogPoisonedError", exc.errno])
        except OSError as exc:
            later.append([name, type(exc).__name__, exc.errno])
    out["later"] = later
    log.close()
    print(json.dumps(out))
    """
)


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("segment_bytes", [1 << 30, 300_000], ids=["one-segment", "rolling"])
def test_disk_full_fails_loudly_keeps_the_log_readable_and_recovers(small_tmpfs, segment_bytes):
    """Fill a 2 MiB tmpfs: the failing write raises OSError(ENOSPC), later writes and
    flushes fail with LogPoisonedError, every written record stays readable; after space is
    freed, reopening recovers to the last whole batch (every flushed record kept) and the
    log is appendable again."""
    path = os.path.join(small_tmpfs, "t-0")
    spare = os.path.join(small_tmpfs, "spare")
    with open(spare, "wb") as f:
        f.write(bytes(300_000))
    done = subprocess.run(
        [sys.executable, "-c", FILLER, path, str(segment_bytes)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["first"][1] == errno.ENOSPC, out
    assert out["readable"] >= out["flushed"] > 0 and out["readable_ok"]
    assert [e[1] for e in out["later"]] == ["LogPoisonedError"] * 3, out["later"]
    os.unlink(spare)
    with Log(path, {"segment.bytes": segment_bytes}) as log:
        got = log.read(0)
        assert len(got) >= out["flushed"]
        assert [r.value[:8] for r in got] == [b"%08d" % i for i in range(len(got))]
        assert log.append(b"after") == len(got)
        log.flush()
    with Log(path, {"segment.bytes": segment_bytes}) as log:
        assert log.read(len(got))[0].value == b"after"


def test_append_after_a_failed_write_raises_at_once(small_tmpfs):
    """After ENOSPC poisoned the active segment, append() itself must fail loudly."""
    path = os.path.join(small_tmpfs, "t-0")
    log = Log(path)
    try:
        with pytest.raises(OSError):
            for i in range(10_000):
                log.append(bytes(1000))
                if i % 20 == 0:
                    log.flush()
        with pytest.raises(LogPoisonedError):
            log.append(b"y")
    finally:
        log.close()


def test_a_failed_flush_fences_what_it_covered_and_revive_cuts_it(small_tmpfs):
    """Batch A is appended (page cache), the disk fills on batch B, so the flush that A's
    writer waits on fails: A's writer is told it failed, so A must never be read; reads stop
    at the last durable offset. After space is freed, revive() cuts A, fsyncs and takes
    writes again, without reopening."""
    from edplog.records import build_batch

    path = os.path.join(small_tmpfs, "t-0")
    spare = os.path.join(small_tmpfs, "spare")
    log = Log(path)
    try:
        log.append_batches(build_batch([(None, b"durable")]))
        log.flush()
        durable = log.log_end_offset
        log.append_batches(build_batch([(None, b"A")]))
        with open(spare, "wb") as f:  # take the rest of the disk
            try:
                while True:
                    f.write(bytes(64 << 10))
                    f.flush()
            except OSError:
                pass
        with pytest.raises(OSError):
            for _ in range(100):  # B: some append runs out of space
                log.append_batches(build_batch([(None, bytes(256 << 10))]))
        with pytest.raises(LogPoisonedError):
            log.flush()  # what A's writer waits on
        assert log.readable_end_offset == durable
        assert [r.value for r in log.read(0)] == [b"durable"]
        assert log.fetch_slices(0, 1 << 20) and log.read_batches(durable, 1 << 20) == b""
        assert not log.revive()  # still full: nothing changes
        os.unlink(spare)
        assert log.revive()
        assert log.log_end_offset == durable and not log.poisoned
        assert log.append(b"after") == durable
        log.flush()
        assert [r.value for r in log.read(0)] == [b"durable", b"after"]
    finally:
        log.close()
    with Log(path) as log:
        assert [r.value for r in log.read(0)] == [b"durable", b"after"]
