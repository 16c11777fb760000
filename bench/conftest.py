"""Shared pieces of the benchmarks: sizes from the environment, a scratch directory, and a
``timed`` helper that runs a workload under pytest-benchmark while keeping the workload's own
throughput, so the session can end with the goal ratios measured side by side in this run.

Environment (all optional):

- ``EDPLOG_BENCH_RECORDS`` records per timed call (default 200000);
- ``EDPLOG_BENCH_VALUE_BYTES`` value size (default 100);
- ``EDPLOG_BENCH_REOPEN_BYTES`` unflushed segment for the SIGKILL reopen (default 1G);
- ``EDPLOG_BENCH_DIR`` filesystem to measure on (default pytest's temporary directory).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edplog.cli.perf import parse_bytes
from edplog.perf.compare.model import Sample

RECORDS = int(os.environ.get("EDPLOG_BENCH_RECORDS", "200000"))
VALUE_BYTES = int(os.environ.get("EDPLOG_BENCH_VALUE_BYTES", "100"))
REOPEN_BYTES = parse_bytes(os.environ.get("EDPLOG_BENCH_REOPEN_BYTES", "1G"))

# (edplog benchmark, baseline benchmark, compare by, goal) -- the storage issue's goals.
GOALS = [
    ("test_append_edplog", "test_append_struct_loop", "records", 2.0),
    ("test_append_edplog", "test_append_sqlite_wal", "records", 10.0),
    ("test_append_batches_edplog", "test_append_batches_os_write", "bytes", 0.8),
    ("test_read_edplog", "test_read_struct_loop", "records", 1.5),
    ("test_read_numpy_edplog", "test_read_edplog", "records", 10.0),
]
REOPEN_GOAL_SECONDS = 2.0

# test name -> (median records/s, median bytes/s, median seconds) of its timed calls
_THROUGHPUT: dict[str, tuple[float, float, float]] = {}


@pytest.fixture
def bench_dir(tmp_path: Any) -> Iterator[str]:
    """A scratch directory on the filesystem under test, removed afterwards."""
    parent = os.environ.get("EDPLOG_BENCH_DIR")
    if not parent:
        yield str(tmp_path)
        return
    os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(prefix="edplog-bench-", dir=parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def timed(benchmark: Any, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``timed(target, setup=None, rounds=5)``: benchmark ``target`` (which returns a Sample,
    or a tuple whose first item is one), put the median throughput of the timed calls in
    ``extra_info`` and return the last call's result for the test to check."""

    def run(target: Callable[..., Any], setup: Callable[[], Any] | None = None, rounds: int = 5):
        samples: list[Sample] = []

        def call(*args: Any) -> Any:
            result = target(*args)
            samples.append(result[0] if isinstance(result, tuple) else result)
            return result

        def wrapped_setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return ((setup(),) if setup else ()), {}

        result = benchmark.pedantic(
            call, setup=wrapped_setup, rounds=rounds, iterations=1, warmup_rounds=1
        )
        timed_samples = samples[1:] or samples  # the first call was the warm-up round
        rec = statistics.median(s.records_per_s for s in timed_samples)
        bps = statistics.median(s.bytes_per_s for s in timed_samples)
        sec = statistics.median(s.seconds for s in timed_samples)
        benchmark.extra_info.update(
            records=timed_samples[-1].records,
            records_per_s=round(rec),
            MB_per_s=round(bps / 1e6, 1),
        )
        _THROUGHPUT[request.node.originalname] = (rec, bps, sec)
        return result

    return run


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The goal ratios, each from two benchmarks of this session (medians of timed calls)."""
    if not _THROUGHPUT:
        return
    write = terminalreporter.write_line
    terminalreporter.section("edplog goal ratios (this run, medians)")
    for name, base, by, goal in GOALS:
        if name in _THROUGHPUT and base in _THROUGHPUT:
            i = 0 if by == "records" else 1
            ratio = _THROUGHPUT[name][i] / _THROUGHPUT[base][i]
            verdict = "met" if ratio >= goal else "NOT met"
            write(f"{name} / {base} ({by}/s): {ratio:.2f}x  goal >= {goal:g}x  {verdict}")
    if "test_reopen_after_sigkill" in _THROUGHPUT:
        seconds = _THROUGHPUT["test_reopen_after_sigkill"][2]
        verdict = "met" if seconds <= REOPEN_GOAL_SECONDS else "NOT met"
        if REOPEN_BYTES < 1 << 30:
            verdict = "(the goal is for 1 GiB: EDPLOG_BENCH_REOPEN_BYTES=1G)"
        write(
            f"test_reopen_after_sigkill ({REOPEN_BYTES >> 20} MiB unflushed): {seconds:.3f} s  "
            f"goal <= {REOPEN_GOAL_SECONDS:g} s at 1 GiB  {verdict}"
        )
