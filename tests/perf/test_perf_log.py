"""``edplog perf log`` through the real command line, in a configuration small enough for CI.

Only the shape of the output is checked (every workload row, its baseline and goal, and that
the temporary directory is gone afterwards); timings never decide pass or fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edplog.cli.perf import parse_bytes

TINY = [
    "--records",
    "5000",
    "--runs",
    "1",
    "--seconds",
    "0.05",
    "--reopen-bytes",
    "2M",
]
ROWS = [
    ("Log.append (1 record/call)", "struct loop", ">= 2x"),
    ("Log.append (1 record/call)", "sqlite3 WAL", ">= 10x"),
    ("Log.append_batches (1 MiB)", "os.write", ">= 0.8x"),
    ("Log.read -> Record", "struct unpack loop", ">= 1.5x"),
    ("Log.read_numpy", "Log.read", ">= 10x"),
    ("reopen after SIGKILL (2 MiB)", "-", "<= 2 s at 1 GiB"),
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    where = tmp_path_factory.mktemp("perf-log")
    cmd = [sys.executable, "-m", "edplog", "perf", "log", *TINY, "--dir", str(where)]
    cmd += ["--json", str(where / "results.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return proc, where


@pytest.mark.timeout(60)
def test_tiny_run_prints_every_workload_row_with_baseline_and_goal(tiny_run) -> None:
    proc, _ = tiny_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("workload"))
    for column in ("records/s", "MB/s", "baseline", "ratio", "goal", "met?"):
        assert column in header
    for workload, baseline, goal in ROWS:
        matching = [
            line
            for line in lines
            if line.startswith(workload) and goal in line and f"  {baseline}" in line
        ]
        assert matching, f"no row for {workload} vs {baseline}:\n{proc.stdout}"
        assert not any("failed" in line for line in matching)
    assert any(line.startswith("goals met: ") for line in lines)


def test_tiny_run_shows_progress_on_stderr(tiny_run) -> None:
    proc, _ = tiny_run
    assert "round 1/1: Log.append" in proc.stderr


def test_tiny_run_removes_its_temporary_directory(tiny_run) -> None:
    _, where = tiny_run
    assert sorted(os.listdir(where)) == ["results.json"]


def test_tiny_run_json_has_a_ratio_per_row(tiny_run) -> None:
    _, where = tiny_run
    result = json.loads((where / "results.json").read_text())
    assert [r["workload"] for r in result["rows"]] == [w for w, _, _ in ROWS]
    assert all(r["ratio"] is not None for r in result["rows"])
    assert all(f["samples"] and f["skipped"] is None for f in result["figures"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("64M", 64 << 20), ("1G", 1 << 30), ("1GiB", 1 << 30), ("2k", 2048)],
)
def test_reopen_bytes_accepts_binary_suffixes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


def test_bad_arguments_exit_with_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edplog", "perf", "log", "--reopen-bytes", "lots"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "not a size" in proc.stderr
