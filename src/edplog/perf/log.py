"""``edplog perf log``: the embedded library against the naive ways of logging records.

Every goal of the storage issue is a ratio to a baseline measured in the same process, a few
seconds apart, on the same filesystem:

=====================================  ======================================  ==========
edplog workload                        baseline                                goal
=====================================  ======================================  ==========
``Log.append`` one record per call     struct loop into a buffered file        >= 2x
``Log.append`` one record per call     sqlite3 ``executemany``, WAL            >= 10x
``Log.append_batches`` 1 MiB buffers   ``os.write`` of the same bytes          >= 0.8x
``Log.read`` to Record objects         struct-unpack read loop                 >= 1.5x
``Log.read_numpy``                     ``Log.read``                            >= 10x
reopen after SIGKILL of a writer       (1 GiB unflushed active segment)        <= 2 s
=====================================  ======================================  ==========

The workloads themselves live in ``edplog.perf.compare.embedded`` and ``limits`` (shared with
``edplog perf compare`` and ``bench/bench_log.py``); this module adds the SIGKILL reopen, runs
them with a progress line and prints the table. Each figure is the median of ``--runs`` timed
runs after a shorter warm-up, interleaved in rounds (see ``measure_rounds``). Timings never
make the command fail; a workload that raises does.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .compare import data, embedded, limits
from .compare.model import (
    Budget,
    Context,
    CpuProbe,
    Figure,
    Progress,
    Sample,
    Spec,
    human_rate,
)

GIB = 1 << 30
REOPEN_GOAL_SECONDS = 2.0
REOPEN_GOAL_BYTES = GIB  # the goal is stated for a 1 GiB unflushed active segment
INT32_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
# The writer never fsyncs (the segment stays unflushed) and never rolls (one active segment).
REOPEN_CONFIG = {
    "segment.bytes": INT32_MAX,
    "flush.messages": LONG_MAX,
    "flush.ms": LONG_MAX,
}
WRITER_READY_SECONDS = 120.0  # upper bound for the writer to start and write its bytes


# ---- reopen after SIGKILL -------------------------------------------------------------------


def _writer_main(path: str, nbytes: int, size: int) -> None:
    """Child process: append 1 MiB batch buffers until ``nbytes``, report, then wait to die."""
    from edplog import Log

    frozen, per_buf = data.batch_buffer(size)
    buf = bytearray(frozen)
    log = Log(path, config=REOPEN_CONFIG)
    written = records = 0
    while written < nbytes:
        log.append_batches(buf)
        written += len(buf)
        records += per_buf
    sys.stdout.write(f"ready {log.log_end_offset} {written} {log.recovery_point}\n")
    sys.stdout.flush()
    sys.stdin.read()  # blocks until the parent kills us (or exits, closing the pipe)
    os._exit(3)  # never a clean close: the point is an unflushed segment


def kill_writer(path: str, nbytes: int, size: int) -> tuple[int, int]:
    """Run a writer process that appends ``nbytes`` to a new log at ``path`` without flushing,
    then SIGKILL it. Returns (records, bytes) it appended."""
    cmd = [sys.executable, "-m", "edplog.perf.log", "--writer", path, str(nbytes), str(size)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], WRITER_READY_SECONDS)
        line = proc.stdout.readline().decode() if ready else ""
        parts = line.split()
        if len(parts) != 4 or parts[0] != "ready":
            raise RuntimeError(f"the writer process did not report ready (got {line!r})")
        records, written, recovery_point = (int(p) for p in parts[1:])
        if recovery_point >= records:
            raise RuntimeError("the writer's segment was flushed; reopen would not recover it")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        if proc.returncode != -signal.SIGKILL:
            raise RuntimeError(f"the writer exited with {proc.returncode}, not by SIGKILL")
        return records, written
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def reopen(path: str, records: int, nbytes: int) -> tuple[Sample, Any]:
    """Time ``Log(path)`` on a killed writer's log: recovery of the whole unflushed segment.
    Returns the sample (records and bytes recovered) and the open log."""
    from edplog import Log

    start = time.perf_counter()
    log = Log(path, config=REOPEN_CONFIG)
    elapsed = time.perf_counter() - start
    return Sample(records, nbytes, elapsed), log


def check_reopened(log: Any, records: int) -> None:
    """Every record the killed writer appended is there and the last one reads back."""
    if log.log_end_offset != records:
        raise RuntimeError(
            f"reopened log ends at offset {log.log_end_offset}, the writer appended {records}"
        )
    last = log.read(records - 1, 1)
    if len(last) != 1 or last[0].offset != records - 1:
        raise RuntimeError(f"record {records - 1} does not read back after reopen")


def reopen_after_kill(workdir: str, nbytes: int, size: int) -> Sample:
    """One run: a writer appends ``nbytes`` unflushed and is killed; the reopen is timed."""
    path = tempfile.mkdtemp(prefix="reopen-", dir=workdir)
    try:
        records, written = kill_writer(path, nbytes, size)
        sample, log = reopen(path, records, written)
        try:
            check_reopened(log, records)
        finally:
            log.close()
        return sample
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---- the run --------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the result table: a figure against its baseline and the goal."""

    workload: str
    figure: Figure
    baseline: Figure | None
    baseline_name: str
    goal: float  # minimum ratio, or for the reopen row the maximum seconds
    by_bytes: bool = False  # compare bytes/s (same bytes on both sides) instead of records/s
    reopen_bytes: int = 0  # set on the reopen row only

    def ratio(self) -> float | None:
        if not self.figure.ok:
            return None
        if self.reopen_bytes:
            return statistics.median(s.seconds for s in self.figure.samples)
        if self.baseline is None or not self.baseline.ok:
            return None
        if self.by_bytes:
            base = self.baseline.bytes_per_s()[0]
            return self.figure.bytes_per_s()[0] / base if base else None
        base = self.baseline.records_per_s()[0]
        return self.figure.records_per_s()[0] / base if base else None

    def projected_seconds(self) -> float | None:
        """Reopen time scaled linearly to the goal's 1 GiB (recovery scans every byte)."""
        seconds = self.ratio()
        if seconds is None or not self.reopen_bytes:
            return None
        return seconds * REOPEN_GOAL_BYTES / self.reopen_bytes

    def met(self) -> bool | None:
        value = self.ratio()
        if value is None:
            return None
        if self.reopen_bytes:
            projected = self.projected_seconds()
            return projected is not None and projected <= self.goal
        return value >= self.goal

    def cells(self) -> list[str]:
        fig = self.figure
        if not fig.ok:
            reason = fig.skipped or "no samples"
            return [self.workload, "-", "-", self.baseline_name, "-", self._goal(), reason]
        rec = human_rate(fig.records_per_s()[0])
        mbs = f"{fig.bytes_per_s()[0] / 1e6:,.0f}"
        if self.reopen_bytes:
            base = "-"
        elif self.baseline is None or not self.baseline.ok:
            base = f"{self.baseline_name}: {self.baseline.skipped if self.baseline else 'none'}"
        elif self.by_bytes:
            base = f"{self.baseline_name} {self.baseline.bytes_per_s()[0] / 1e6:,.0f} MB/s"
        else:
            base = f"{self.baseline_name} {human_rate(self.baseline.records_per_s()[0])} rec/s"
        value = self.ratio()
        if value is None:
            ratio = "-"
        elif self.reopen_bytes:
            ratio = f"{value:.3f} s"
        else:
            ratio = f"{value:.2f}x"
        met = self.met()
        verdict = "-" if met is None else ("yes" if met else "NO")
        if self.reopen_bytes and self.reopen_bytes < REOPEN_GOAL_BYTES and met is not None:
            verdict += f" ({self.projected_seconds():.2f} s at 1 GiB, projected)"
        return [self.workload, rec, mbs, base, ratio, self._goal(), verdict]

    def _goal(self) -> str:
        if self.reopen_bytes:
            return f"<= {self.goal:g} s at 1 GiB"
        return f">= {self.goal:g}x"


def _human_bytes(n: int) -> str:
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def render_table(rows: Sequence[Row]) -> str:
    header = ["workload", "records/s", "MB/s", "baseline (same run)", "ratio", "goal", "met?"]
    table = [header] + [row.cells() for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    right = {1, 2, 4}
    lines = []
    for n, r in enumerate(table):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def measure_rounds(
    ctx: Context, items: Sequence[tuple[Spec, Callable[[Budget], Sample], bool]]
) -> list[Figure]:
    """Warm every workload up, then run ``ctx.runs`` rounds of every workload in turn.

    Interleaving (A B C, A B C, ...) rather than repeating each workload back to back keeps
    a baseline and its edplog figure seconds apart in every round, so a change in the shared
    machine's load shifts both sides of a ratio alike. A workload that raises becomes a
    skip carrying the error and is not run again; the others go on.
    """
    budget = ctx.budget
    small = Budget(budget.name, budget.seconds / 4, budget.max_bytes // 4, 0.0)
    figures = []
    for spec, _, _ in items:
        figures.append(Figure(spec))
        ctx.figures.append(figures[-1])

    def attempt(figure: Figure, label: str, call: Callable[[], Sample]) -> Sample | None:
        try:
            return call()
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - shown in the table, never hidden
            figure.samples.clear()
            figure.skipped = f"failed: {type(exc).__name__}: {exc}"
            ctx.progress.say(f"  {label}: {figure.skipped}")
            return None

    def label(spec: Spec) -> str:
        return f"{spec.title} [{spec.batching}]"

    for figure, (spec, run, warmup) in zip(figures, items, strict=True):
        if warmup:
            ctx.progress.show(f"warm-up: {label(spec)}")
            attempt(figure, label(spec), lambda run=run: run(small))
    for i in range(ctx.runs):
        for figure, (spec, run, _) in zip(figures, items, strict=True):
            if figure.skipped:
                continue
            ctx.progress.show(f"round {i + 1}/{ctx.runs}: {label(spec)}")
            probe = CpuProbe(ctx.server_pids)
            probe.start()
            sample = attempt(figure, label(spec), lambda run=run: run(budget))
            if sample is None:
                continue
            probe.stop(sample)
            figure.samples.append(sample)
            ctx.progress.show(
                f"round {i + 1}/{ctx.runs}: {label(spec)} {human_rate(sample.records_per_s)}rec/s"
                f" {human_rate(sample.bytes_per_s, 'B/s')}"
            )
    return figures


def run_workloads(ctx: Context, size: int, reopen_bytes: int) -> list[Row]:
    """Measure every baseline and workload, each baseline right before its edplog figure."""
    workdir, budget = ctx.workdir, ctx.budget
    engine = embedded.EmbeddedLog(workdir)
    naive_path = os.path.join(workdir, "naive-read.bin")

    def spec(key: str, title: str, batching: str, durability: str, client: str) -> Spec:
        return Spec(key, "log", title, size, batching, durability, client)

    def naive_read(b: Budget) -> Sample:
        if not os.path.exists(naive_path):  # written once, read by every run
            total = embedded.filled_records(size, budget)
            embedded.write_struct(naive_path, data.payloads(size), total, float("inf"))
        return embedded.read_struct(naive_path, b.seconds)[0]

    items: list[tuple[Spec, Callable[[Budget], Sample], bool]] = [
        (
            spec("naive.struct", "struct loop", "one write per record", "no fsync", "Python file"),
            lambda b: embedded.struct_loop(workdir, size, b),
            True,
        ),
        (
            spec("naive.sqlite", "sqlite3 WAL", "4096 rows per executemany", "NORMAL", "sqlite3"),
            lambda b: embedded.sqlite_wal(workdir, size, b),
            True,
        ),
        (
            spec("log.append", "Log.append", "one call per record", "no fsync", "edplog.Log"),
            lambda b: engine.append(size, b),
            True,
        ),
        (
            spec("limits.write", "os.write", "1 MiB per call", "page cache", "os"),
            lambda b: limits.write_new_file(workdir, size, b),
            True,
        ),
        (
            spec("log.append_batches", "Log.append_batches", "1 MiB per call", "no fsync", "Log"),
            lambda b: engine.append_batches(size, b),
            True,
        ),
        (
            spec("naive.read", "struct unpack loop", "1 MiB reads", "page cache", "Python file"),
            naive_read,
            True,
        ),
        (
            spec("log.read", "Log.read", "4096 records per call", "page cache", "edplog.Log"),
            lambda b: engine.read(size, b),
            True,
        ),
        (
            spec("log.read_numpy", "Log.read_numpy", "65536 per call", "page cache", "edplog.Log"),
            lambda b: engine.read(size, b, numpy=True),
            True,
        ),
        (
            spec(
                "log.reopen",
                "reopen after SIGKILL",
                f"{_human_bytes(reopen_bytes)} unflushed",
                "none",
                "edplog.Log",
            ),
            lambda b: reopen_after_kill(workdir, reopen_bytes, size),
            False,
        ),
    ]
    try:
        figures = measure_rounds(ctx, items)
    finally:
        if os.path.exists(naive_path):
            os.unlink(naive_path)
    (
        struct_fig,
        sqlite_fig,
        append_fig,
        write_fig,
        batches_fig,
        naive_fig,
        read_fig,
        numpy_fig,
        reopen_fig,
    ) = figures
    return [
        Row("Log.append (1 record/call)", append_fig, struct_fig, "struct loop", 2.0),
        Row("Log.append (1 record/call)", append_fig, sqlite_fig, "sqlite3 WAL", 10.0),
        Row(
            "Log.append_batches (1 MiB)",
            batches_fig,
            write_fig,
            "os.write",
            0.8,
            by_bytes=True,
        ),
        Row("Log.read -> Record", read_fig, naive_fig, "struct unpack loop", 1.5),
        Row("Log.read_numpy", numpy_fig, read_fig, "Log.read", 10.0),
        Row(
            f"reopen after SIGKILL ({_human_bytes(reopen_bytes)})",
            reopen_fig,
            None,
            "-",
            REOPEN_GOAL_SECONDS,
            reopen_bytes=reopen_bytes,
        ),
    ]


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_perf_log(
    records: int = 1_000_000,
    value_bytes: int = 100,
    runs: int = 3,
    seconds: float = 0.5,
    reopen_bytes: int = 64 << 20,
    parent_dir: str | None = None,
    show_progress: bool = True,
    json_path: str | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Run every workload in a temporary directory, print the table; 1 if a workload failed."""
    budget = Budget("log", seconds, records * value_bytes, 0.0)
    progress = Progress(show_progress)
    if parent_dir:
        os.makedirs(parent_dir, exist_ok=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="edplog-perf-log-", dir=parent_dir) as workdir:
            ctx = Context(budget, runs, workdir, progress, (value_bytes,))
            try:
                rows = run_workloads(ctx, value_bytes, reopen_bytes)
            finally:
                progress.done()
    finally:
        signal.signal(signal.SIGTERM, previous)
    elapsed = time.monotonic() - started
    out(
        f"edplog perf log: up to {records:,} records of {value_bytes} B or {seconds:g} s per run, "
        f"median of {runs} run{'s' if runs != 1 else ''}, on {parent_dir or tempfile.gettempdir()}"
        f" ({elapsed:.1f} s)"
    )
    out("")
    out(render_table(rows))
    out("")
    verdicts = [row.met() for row in rows]
    met = sum(1 for v in verdicts if v)
    failed = [f for f in ctx.figures if not f.ok]
    out(f"goals met: {met} of {len(rows)} (ratios of medians measured side by side in this run)")
    # Ticks are 10 ms: below about half a second of CPU the share is too coarse to report.
    busy = [
        f
        for f in ctx.figures
        if (f.foreign_cpu() or 0.0) > 0.10 and sum(s.total_jiffies for s in f.samples) >= 100
    ]
    if busy:
        names = ", ".join(f"{f.spec.title} {f.foreign_cpu():.0%}" for f in busy)
        out(f"note: other processes used the CPU during: {names}; those figures are noisy")
    for f in failed:
        out(f"failed: {f.spec.title}: {f.skipped}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "records": records,
                    "value_bytes": value_bytes,
                    "runs": runs,
                    "seconds": seconds,
                    "reopen_bytes": reopen_bytes,
                    "figures": [f.to_json() for f in ctx.figures],
                    "rows": [
                        {
                            "workload": r.workload,
                            "baseline": r.baseline_name,
                            "ratio": r.ratio(),
                            "goal": r.goal,
                            "met": r.met(),
                        }
                        for r in rows
                    ],
                },
                fh,
                indent=1,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--writer":
        with contextlib.suppress(KeyboardInterrupt):
            _writer_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("usage: edplog perf log (this module is not meant to be run directly)")
