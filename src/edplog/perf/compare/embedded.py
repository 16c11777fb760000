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


def struct_loop(workdir: str, size: int, budget: Budget) -> Sample:
    """Buffered file, ``struct.pack('>I', len) + record`` per record (perf.md B5 'struct')."""
    pool = data.payloads(size)
    cap = budget.records(size)
    path = os.path.join(workdir, "naive-struct.bin")
    pack = struct.Struct(">I").pack
    n = 0
    with open(path, "wb") as f:
        write = f.write
        start = time.perf_counter()
        deadline = start + budget.seconds
        while n < cap and time.perf_counter() < deadline:
            for i in range(CHECK_EVERY):
                rec = pool[i]
                write(pack(len(rec)) + rec)
            n += CHECK_EVERY
        f.flush()
        elapsed = time.perf_counter() - start
    os.unlink(path)
    return Sample(n, n * size, elapsed)


def sqlite_wal(workdir: str, size: int, budget: Budget) -> Sample:
    """SQLite WAL, synchronous=NORMAL, executemany of 4096-row chunks in one transaction."""
    pool = data.payloads(size)
    cap = budget.records(size)
    path = os.path.join(workdir, "naive.sqlite")
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, payload BLOB)")
        rows = [(p,) for p in pool]
        n = 0
        start = time.perf_counter()
        deadline = start + budget.seconds
        with db:
            while n < cap and time.perf_counter() < deadline:
                db.executemany("INSERT INTO log (payload) VALUES (?)", rows)
                n += len(rows)
        elapsed = time.perf_counter() - start
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
    return Sample(n, n * size, elapsed)


class EmbeddedLog:
    """One fresh ``edplog.Log`` per timed run, in its own directory under the work dir."""

    def __init__(self, workdir: str) -> None:
        try:
            from edplog import Log
        except ImportError:  # not re-exported at the top level yet
            from edplog.log import Log

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
        pool = data.payloads(size)
        cap = budget.records(size)
        log = self.open()
        try:
            append = log.append
            n = 0
            start = time.perf_counter()
            deadline = start + budget.seconds
            while n < cap and time.perf_counter() < deadline:
                for i in range(CHECK_EVERY):
                    append(pool[i])
                n += CHECK_EVERY
            flush = getattr(log, "flush", None)
            if flush is not None:
                flush()
            elapsed = time.perf_counter() - start
        finally:
            self.discard(log)
        return Sample(n, n * size, elapsed)

    def append_batches(self, size: int, budget: Budget) -> Sample:
        """``Log.append_batches`` of the same 1 MiB batch buffer the raw os.write limit uses."""
        frozen, per_buf = data.batch_buffer(size)
        # Writable, as a broker's receive buffer is: offsets are then assigned in place.
        buf = bytearray(frozen)
        log = self.open()
        try:
            n = written = 0
            start = time.perf_counter()
            deadline = start + budget.seconds
            while written < budget.max_bytes and time.perf_counter() < deadline:
                log.append_batches(buf)
                written += len(buf)
                n += per_buf
            elapsed = time.perf_counter() - start
        finally:
            self.discard(log)
        return Sample(n, written, elapsed)

    def _filled(self, size: int, budget: Budget) -> tuple[Any, int]:
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
        log, total = self._filled(size, budget)
        try:
            reader = log.read_numpy if numpy else log.read
            step = 65536 if numpy else 4096
            offset = n = 0
            start = time.perf_counter()
            deadline = start + budget.seconds
            while offset < total and time.perf_counter() < deadline:
                got = reader(offset, step)
                count = _count(got)
                if count == 0:
                    break
                offset += count
                n += count
            elapsed = time.perf_counter() - start
        finally:
            self.discard(log)
        return Sample(n, n * size, elapsed)


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
