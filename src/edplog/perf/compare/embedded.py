"""edplog as a library, in-process, against the naive ways a user would otherwise log records.

The two baselines are the ones perf.md part B5 measured: a buffered file with a 4-byte length
prefix per record (``struct`` loop) and SQLite in WAL mode with one ``executemany``. They run
in the same process and the same minute as the edplog figures, so the goal ratios (per-record
append >= 2x the struct loop) compare like with like. The edplog figures call ``edplog.Log``
directly, with fsync-on-append switched off so that they measure the append path, as the
baselines (which never fsync) do.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import time
from functools import partial
from typing import Any

from . import data
from .model import Budget, Context, Sample, Spec

# Kafka topic properties: never flush by count or by time, as the baselines never fsync.
# (These are edplog's defaults too; they are spelled out so the figure's label stays true.)
NO_FSYNC_KEYS = ("flush.messages", "flush.ms")
CHECK_EVERY = 4096  # records between clock reads in per-record loops


def write_struct(path: str, pool: tuple[bytes, ...], cap: int, seconds: float) -> Sample:
    """Write ``struct.pack('>I', len) + record`` per record to a buffered file at ``path``.

    Stops after ``cap`` records (rounded up to ``CHECK_EVERY``) or ``seconds``; the file is
    kept so a caller can read it back. Timed: the loop and the final flush to the kernel.
    """
    pack = struct.Struct(">I").pack
    n = 0
    with open(path, "wb") as f:
        write = f.write
        start = time.perf_counter()
        deadline = start + seconds
        while n < cap and time.perf_counter() < deadline:
            for i in range(CHECK_EVERY):
                rec = pool[i]
                write(pack(len(rec)) + rec)
            n += CHECK_EVERY
        f.flush()
        elapsed = time.perf_counter() - start
    return Sample(n, n * len(pool[0]), elapsed)


def struct_loop(workdir: str, size: int, budget: Budget) -> Sample:
    """Buffered file, ``struct.pack('>I', len) + record`` per record (perf.md B5 'struct')."""
    path = os.path.join(workdir, "naive-struct.bin")
    try:
        return write_struct(path, data.payloads(size), budget.records(size), budget.seconds)
    finally:
        os.unlink(path)


def read_struct(path: str, seconds: float, step: int = CHECK_EVERY) -> tuple[Sample, Any]:
    """The naive reader of ``write_struct``'s file: 1 MiB reads, ``struct.unpack_from`` per record.

    Each record becomes an ``(offset, value)`` tuple, collected ``step`` at a time into a
    list, as ``Log.read(offset, step)`` hands back a list of Record objects. Returns the sample
    and the last tuple read (for checking).
    """
    unpack_from = struct.Struct(">I").unpack_from
    n = nbytes = 0
    last: Any = None
    with open(path, "rb", buffering=0) as f:
        start = time.perf_counter()
        deadline = start + seconds
        buf = b""
        pos = 0
        batch: list[tuple[int, bytes]] = []
        while time.perf_counter() < deadline:
            chunk = f.read(data.BUFFER_BYTES)
            if not chunk:
                break
            buf = buf[pos:] + chunk
            pos = 0
            end = len(buf)
            while pos + 4 <= end:
                (length,) = unpack_from(buf, pos)
                if pos + 4 + length > end:
                    break
                batch.append((n, buf[pos + 4 : pos + 4 + length]))
                pos += 4 + length
                nbytes += length
                n += 1
                if len(batch) == step:
                    last = batch[-1]
                    batch = []
        if batch:
            last = batch[-1]
        elapsed = time.perf_counter() - start
    return Sample(n, nbytes, elapsed), last


def sqlite_insert(
    db: sqlite3.Connection, pool: tuple[bytes, ...], cap: int, seconds: float
) -> Sample:
    """``executemany`` of ``len(pool)``-row chunks into ``log(payload)``, in one transaction."""
    rows = [(p,) for p in pool]
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    with db:
        while n < cap and time.perf_counter() < deadline:
            db.executemany("INSERT INTO log (payload) VALUES (?)", rows)
            n += len(rows)
    elapsed = time.perf_counter() - start
    return Sample(n, n * len(pool[0]), elapsed)


def sqlite_open(path: str) -> sqlite3.Connection:
    """A new WAL-mode database with synchronous=NORMAL and one ``log`` table."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, payload BLOB)")
    return db


def sqlite_remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def sqlite_wal(workdir: str, size: int, budget: Budget) -> Sample:
    """SQLite WAL, synchronous=NORMAL, executemany of 4096-row chunks in one transaction."""
    path = os.path.join(workdir, "naive.sqlite")
    db = sqlite_open(path)
    try:
        return sqlite_insert(db, data.payloads(size), budget.records(size), budget.seconds)
    finally:
        db.close()
        sqlite_remove(path)


def append_records(log: Any, pool: tuple[bytes, ...], cap: int, seconds: float) -> Sample:
    """One ``log.append(value)`` call per record, then the open batch is written out.

    Stops after ``cap`` records (rounded up to ``CHECK_EVERY``) or ``seconds``. The timed part
    ends once the last batch is in the segment file (readable, not fsynced), matching the
    struct baseline, whose timed part ends with handing its buffer to the kernel.
    """
    append = log.append
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < cap and time.perf_counter() < deadline:
        for i in range(CHECK_EVERY):
            append(pool[i])
        n += CHECK_EVERY
    # Log.flush() would add an fdatasync the baselines never pay; seal() writes the open batch.
    log.seal()
    elapsed = time.perf_counter() - start
    return Sample(n, n * len(pool[0]), elapsed)


def append_buffers(
    log: Any, buf: bytearray, per_buf: int, max_bytes: int, seconds: float
) -> Sample:
    """``log.append_batches(buf)`` until ``max_bytes`` or ``seconds``."""
    n = written = 0
    start = time.perf_counter()
    deadline = start + seconds
    while written < max_bytes and time.perf_counter() < deadline:
        log.append_batches(buf)
        written += len(buf)
        n += per_buf
    elapsed = time.perf_counter() - start
    return Sample(n, written, elapsed)


def read_records(
    log: Any, total: int, size: int, seconds: float, numpy: bool = False
) -> tuple[Sample, Any]:
    """Read ``total`` ``size``-byte records from offset 0 with ``Log.read`` (Record objects,
    4096 a call) or ``Log.read_numpy`` (columns, 65536 a call). Returns the sample and the
    last result (for checking)."""
    reader = log.read_numpy if numpy else log.read
    step = 65536 if numpy else CHECK_EVERY
    offset = n = 0
    last: Any = None
    start = time.perf_counter()
    deadline = start + seconds
    while offset < total and time.perf_counter() < deadline:
        got = reader(offset, step)
        count = _count(got)
        if count == 0:
            break
        last = got
        offset += count
        n += count
    elapsed = time.perf_counter() - start
    return Sample(n, n * size, elapsed), last


def filled_records(size: int, budget: Budget) -> int:
    """How many records ``EmbeddedLog.filled`` puts in a log for this budget."""
    buf, per_buf = data.batch_buffer(size)
    return per_buf * max(1, budget.max_bytes // len(buf))


class EmbeddedLog:
    """One fresh ``edplog.Log`` per timed run, in its own directory under the work dir."""

    def __init__(self, workdir: str) -> None:
        from edplog import Log

        self._log_cls: Any = Log
        self.workdir = workdir
        self._serial = 0

    def open(self) -> Any:
        self._serial += 1
        path = os.path.join(self.workdir, f"log-{self._serial}")
        try:
            from edplog.config import LONG_MAX
        except ImportError:
            return self._log_cls(path)
        return self._log_cls(path, config=dict.fromkeys(NO_FSYNC_KEYS, LONG_MAX))

    def discard(self, log: Any) -> None:
        close = getattr(log, "close", None)
        if close is not None:
            close()
        path = os.path.join(self.workdir, f"log-{self._serial}")
        shutil.rmtree(path, ignore_errors=True)

    def append(self, size: int, budget: Budget) -> Sample:
        """One ``Log.append(value)`` call per record."""
        log = self.open()
        try:
            return append_records(log, data.payloads(size), budget.records(size), budget.seconds)
        finally:
            self.discard(log)

    def append_batches(self, size: int, budget: Budget) -> Sample:
        """``Log.append_batches`` of the same 1 MiB batch buffer the raw os.write limit uses."""
        frozen, per_buf = data.batch_buffer(size)
        # Writable, as a broker's receive buffer is: offsets are then assigned in place.
        buf = bytearray(frozen)
        log = self.open()
        try:
            return append_buffers(log, buf, per_buf, budget.max_bytes, budget.seconds)
        finally:
            self.discard(log)

    def filled(self, size: int, budget: Budget) -> tuple[Any, int]:
        """A log holding about one budget's worth of records (appended as batches)."""
        buf, per_buf = data.batch_buffer(size)
        log = self.open()
        n = 0
        for _ in range(max(1, budget.max_bytes // len(buf))):
            log.append_batches(buf)
            n += per_buf
        return log, n

    def read(self, size: int, budget: Budget, numpy: bool = False) -> Sample:
        """Read the whole log from offset 0: ``Log.read`` (Record objects) or ``read_numpy``."""
        log, total = self.filled(size, budget)
        try:
            sample, _ = read_records(log, total, size, budget.seconds, numpy)
        finally:
            self.discard(log)
        return sample


def _count(result: Any) -> int:
    """Records in a read result: a list, a NumPy array, or a tuple/object carrying them."""
    if isinstance(result, tuple):
        for part in result:
            if hasattr(part, "__len__"):
                return len(part)
        return 0
    for attr in ("offsets", "offset", "values"):
        inner = getattr(result, attr, None)
        if inner is not None and hasattr(inner, "__len__"):
            return len(inner)
    return len(result)


def run(ctx: Context) -> None:
    """The baselines, then edplog's four embedded workloads, at each record size."""
    try:
        engine: EmbeddedLog | None = EmbeddedLog(ctx.workdir)
        why = ""
    except ImportError as exc:
        engine, why = None, f"edplog.Log is not available yet ({exc})"
    for size in ctx.record_sizes:
        ctx.measure(
            Spec(
                "naive.struct",
                "embedded",
                "naive struct loop",
                size,
                "one write per record (buffered)",
                "no fsync",
                "Python file",
            ),
            lambda b, s=size: struct_loop(ctx.workdir, s, b),
        )
        ctx.measure(
            Spec(
                "naive.sqlite",
                "embedded",
                "SQLite WAL executemany",
                size,
                "4096 rows per executemany",
                "synchronous=NORMAL",
                "sqlite3",
            ),
            lambda b, s=size: sqlite_wal(ctx.workdir, s, b),
        )
        specs = [
            (
                Spec(
                    "embedded.append",
                    "embedded",
                    "Log.append",
                    size,
                    "one call per record",
                    "no fsync",
                    "edplog.Log",
                ),
                "append",
            ),
            (
                Spec(
                    "embedded.append_batches",
                    "embedded",
                    "Log.append_batches",
                    size,
                    "1 MiB of 256 KiB v2 batches per call",
                    "no fsync",
                    "edplog.Log",
                ),
                "append_batches",
            ),
            (
                Spec(
                    "embedded.read",
                    "embedded",
                    "Log.read",
                    size,
                    "4096 records per call",
                    "page cache",
                    "edplog.Log",
                ),
                "read",
            ),
            (
                Spec(
                    "embedded.read_numpy",
                    "embedded",
                    "Log.read_numpy",
                    size,
                    "65536 records per call",
                    "page cache",
                    "edplog.Log",
                ),
                "read_numpy",
            ),
        ]
        for spec, name in specs:
            if engine is None:
                ctx.skip(spec, why)
            elif name == "read_numpy":
                ctx.measure(spec, partial(engine.read, size, numpy=True))
            else:
                ctx.measure(spec, partial(getattr(engine, name), size))
    if engine is None:
        ctx.progress.say(f"embedded: edplog figures skipped: {why}")
