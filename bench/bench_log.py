"""The embedded ``edplog.Log`` beside the naive baselines, grouped by operation.

Run: python -m pytest bench/bench_log.py --benchmark-only

Each group holds edplog and its baseline, run one after the other in this process; the
session ends with the goal ratios (see ``conftest.GOALS``). The workloads are the ones
``edplog perf log`` and ``edplog perf compare`` run (``edplog.perf.compare.embedded``), so the
three report the same thing. Every timed call's result is checked after it returns.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import RECORDS, REOPEN_BYTES, VALUE_BYTES

from edplog import Log
from edplog.perf import log as perf_log
from edplog.perf.compare import data, embedded, limits
from edplog.perf.compare.model import Budget

UNBOUNDED = 600.0  # seconds: the record count, not the clock, ends each timed call
BUDGET = Budget("bench", UNBOUNDED, RECORDS * VALUE_BYTES, 0.0)
POOL = data.payloads(VALUE_BYTES)
# Kafka topic properties: no fsync, as the baselines never fsync.
NO_FSYNC = {"flush.messages": 2**63 - 1, "flush.ms": 2**63 - 1}
ROUNDED = -(-RECORDS // embedded.CHECK_EVERY) * embedded.CHECK_EVERY  # loops run whole chunks


class Logs:
    """Fresh logs for pedantic setups; every one is closed and removed at teardown."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.opened: list[Any] = []

    def new(self) -> Any:
        log = Log(os.path.join(self.root, f"log-{len(self.opened)}"), config=NO_FSYNC)
        self.opened.append(log)
        return log

    def close(self) -> None:
        for log in self.opened:
            log.close()


@pytest.fixture
def logs(bench_dir: str) -> Iterator[Logs]:
    made = Logs(bench_dir)
    try:
        yield made
    finally:
        made.close()


def _expected(offset: int) -> bytes:
    return POOL[offset % len(POOL)]


# ---- append: one record per call ------------------------------------------------------------


@pytest.mark.benchmark(group="append 100 B records one at a time")
def test_append_edplog(timed, logs: Logs) -> None:
    sample = timed(
        lambda log: embedded.append_records(log, POOL, RECORDS, UNBOUNDED), setup=logs.new
    )
    log = logs.opened[-1]
    assert sample.records == ROUNDED
    assert log.log_end_offset == ROUNDED
    last = log.read(ROUNDED - 1, 1)[0]
    assert (last.offset, last.value) == (ROUNDED - 1, _expected(ROUNDED - 1))


@pytest.mark.benchmark(group="append 100 B records one at a time")
def test_append_struct_loop(timed, bench_dir: str) -> None:
    path = os.path.join(bench_dir, "naive.bin")

    def fresh() -> str:  # untimed: truncating the last round's file costs as much as a write
        if os.path.exists(path):
            os.unlink(path)
        return path

    sample = timed(lambda p: embedded.write_struct(p, POOL, RECORDS, UNBOUNDED), setup=fresh)
    assert sample.records == ROUNDED
    frame = 4 + VALUE_BYTES
    assert os.path.getsize(path) == ROUNDED * frame
    with open(path, "rb") as f:
        f.seek((ROUNDED - 1) * frame)
        tail = f.read()
    assert struct.unpack(">I", tail[:4])[0] == VALUE_BYTES
    assert tail[4:] == _expected(ROUNDED - 1)


@pytest.mark.benchmark(group="append 100 B records one at a time")
def test_append_sqlite_wal(timed, bench_dir: str) -> None:
    made: list[str] = []

    def fresh() -> sqlite3.Connection:
        path = os.path.join(bench_dir, f"naive-{len(made)}.sqlite")
        made.append(path)
        return embedded.sqlite_open(path)

    holder: list[sqlite3.Connection] = []

    def insert(db: sqlite3.Connection) -> Any:
        holder.append(db)
        return embedded.sqlite_insert(db, POOL, RECORDS, UNBOUNDED)

    try:
        sample = timed(insert, setup=fresh, rounds=3)
        db = holder[-1]
        assert sample.records == ROUNDED
        count, last = db.execute("SELECT count(*), max(id) FROM log").fetchone()
        assert count == ROUNDED
        (payload,) = db.execute("SELECT payload FROM log WHERE id = ?", (last,)).fetchone()
        assert payload == _expected(ROUNDED - 1)
    finally:
        for db in holder:
            db.close()
        for path in made:
            embedded.sqlite_remove(path)


# ---- append_batches: 1 MiB of ready RecordBatch v2 per call ---------------------------------


@pytest.mark.benchmark(group="append 1 MiB of batches per call")
def test_append_batches_edplog(timed, logs: Logs) -> None:
    frozen, per_buf = data.batch_buffer(VALUE_BYTES)
    buf = bytearray(frozen)  # writable, as a receive buffer is: offsets are assigned in place
    calls = -(-BUDGET.max_bytes // len(buf))
    sample = timed(
        lambda log: embedded.append_buffers(log, buf, per_buf, BUDGET.max_bytes, UNBOUNDED),
        setup=logs.new,
    )
    log = logs.opened[-1]
    assert sample.records == calls * per_buf
    assert log.log_end_offset == calls * per_buf
    assert log.read(calls * per_buf - 1, 1)[0].offset == calls * per_buf - 1


@pytest.mark.benchmark(group="append 1 MiB of batches per call")
def test_append_batches_os_write(timed, bench_dir: str) -> None:
    frozen, _ = data.batch_buffer(VALUE_BYTES)
    calls = -(-BUDGET.max_bytes // len(frozen))
    # limits.write_new_file removes its file; the byte count is its whole result.
    sample = timed(lambda: limits.write_new_file(bench_dir, VALUE_BYTES, BUDGET))
    assert sample.bytes == calls * len(frozen)


# ---- read: the whole log from offset 0 ------------------------------------------------------


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, int]]:
    """One log of about RECORDS records (appended as batches), read by every read benchmark."""
    root = os.environ.get("EDPLOG_BENCH_DIR") or str(tmp_path_factory.mktemp("read"))
    engine = embedded.EmbeddedLog(root)
    log, total = engine.filled(VALUE_BYTES, BUDGET)
    try:
        yield log, total
    finally:
        engine.discard(log)


@pytest.fixture(scope="module")
def naive_file(
    tmp_path_factory: pytest.TempPathFactory, filled: tuple[Any, int]
) -> Iterator[tuple[str, int]]:
    """The struct loop's file holding as many records as the filled log."""
    _, total = filled
    path = str(tmp_path_factory.mktemp("naive") / "naive-read.bin")
    written = embedded.write_struct(path, POOL, total, UNBOUNDED).records
    try:
        yield path, written
    finally:
        os.unlink(path)


@pytest.mark.benchmark(group="read 100 B records from offset 0")
def test_read_edplog(timed, filled: tuple[Any, int]) -> None:
    log, total = filled
    sample, last = timed(lambda: embedded.read_records(log, total, VALUE_BYTES, UNBOUNDED))
    assert sample.records == total
    assert last[-1].offset == total - 1
    assert len(last[-1].value) == VALUE_BYTES


@pytest.mark.benchmark(group="read 100 B records from offset 0")
def test_read_struct_loop(timed, naive_file: tuple[str, int]) -> None:
    path, written = naive_file
    sample, last = timed(lambda: embedded.read_struct(path, UNBOUNDED))
    assert sample.records == written
    assert last == (written - 1, _expected(written - 1))


@pytest.mark.benchmark(group="read 100 B records from offset 0")
def test_read_numpy_edplog(timed, filled: tuple[Any, int]) -> None:
    log, total = filled
    sample, cols = timed(
        lambda: embedded.read_records(log, total, VALUE_BYTES, UNBOUNDED, numpy=True)
    )
    assert sample.records == total
    assert int(cols.offsets[-1]) == total - 1
    assert int(cols.value_lengths[-1]) == VALUE_BYTES
    start = int(cols.value_offsets[-1])
    value = cols.values[start : start + VALUE_BYTES].tobytes()
    assert value == log.read(total - 1, 1)[0].value


# ---- reopen after SIGKILL -------------------------------------------------------------------


@pytest.mark.benchmark(group="reopen after SIGKILL of a writer")
def test_reopen_after_sigkill(timed, bench_dir: str) -> None:
    """A writer process appends REOPEN_BYTES without flushing and is killed (untimed); the
    timed call is ``Log(path)``, which recovers the whole unflushed active segment."""
    opened: list[tuple[Any, int]] = []
    serial = [0]

    def killed() -> tuple[str, int, int]:
        serial[0] += 1
        path = os.path.join(bench_dir, f"reopen-{serial[0]}")
        records, written = perf_log.kill_writer(path, REOPEN_BYTES, VALUE_BYTES)
        return path, records, written

    def reopen(args: tuple[str, int, int]) -> Any:
        result = perf_log.reopen(*args)
        opened.append((result[1], args[1]))
        return result

    try:
        sample, log = timed(reopen, setup=killed, rounds=3)
        perf_log.check_reopened(log, sample.records)
        assert sample.bytes >= REOPEN_BYTES
    finally:
        for log, _ in opened:
            log.close()
