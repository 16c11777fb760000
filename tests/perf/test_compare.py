"""``edplog perf compare`` end to end in its tiny mode, plus the pieces that must never regress:
skipping a missing peer with a reason, stopping servers by PID, rejecting unknown families.

Timings never decide pass or fail here: the machine is shared, so only the shape of the
output (files, sections, named figures, goal rows) is checked.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

from edplog.cli import main
from edplog.perf.compare import model, procs, redis
from edplog.perf.compare.runner import CHART, REPORT, RESULTS, parse_only, run_compare


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    status = main(
        [
            "perf",
            "compare",
            "--tiny",
            "--runs",
            "1",
            "--only",
            "limits,embedded",
            "--out",
            str(out),
            "--data-dir",
            str(out / "data"),
            "--no-progress",
        ]
    )
    assert status == 0
    return out


@pytest.mark.timeout(60)
def test_tiny_run_writes_report_chart_and_results(tiny_run: Path) -> None:
    assert (tiny_run / REPORT).stat().st_size > 0
    assert (tiny_run / RESULTS).stat().st_size > 0
    png = (tiny_run / CHART).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_report_has_machine_versions_goals_and_results_sections(tiny_run: Path) -> None:
    text = (tiny_run / REPORT).read_text()
    for heading in (
        "## Machine",
        "## Versions",
        "## Goals (ratios measured in this run)",
        "### Where edplog falls short",
        "## Results",
        "### Machine limits",
        "### edplog embedded (in-process) and naive baselines",
        "## Skipped",
    ):
        assert heading in text, heading
    for item in ("| cores |", "| memory |", "| kernel |", "| filesystem |"):
        assert item in text
    assert "| redis-server |" in text and "| nats-server |" in text
    assert "embedded per-record append >= 2x the naive struct loop" in text
    assert "![records per second](chart.png)" in text


def test_results_name_every_figure_with_its_settings(tiny_run: Path) -> None:
    results = json.loads((tiny_run / RESULTS).read_text())
    ids = {(f["spec"]["key"], f["spec"]["record_size"]) for f in results["figures"]}
    for key in ("limits.write", "limits.sendfile", "limits.fdatasync", "naive.struct"):
        assert (key, 100) in ids and (key, 1024) in ids
    for figure in results["figures"]:
        spec = figure["spec"]
        assert spec["batching"] and spec["durability"] and spec["client"]
        assert figure["skipped"] or len(figure["samples"]) == 1


def test_missing_peer_is_skipped_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis.shutil, "which", lambda exe: None)
    with tempfile.TemporaryDirectory() as workdir:
        ctx = model.Context(model.BUDGETS["tiny"], 1, workdir, model.Progress(False), (100,))
        redis.run(ctx)
    assert ctx.figures and all(not f.ok for f in ctx.figures)
    assert all("not installed" in (f.skipped or "") for f in ctx.figures)


def test_server_is_stopped_by_pid_on_exit() -> None:
    port = procs.free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with tempfile.TemporaryDirectory() as cwd, procs.Server(argv, "http", port, cwd=cwd) as srv:
        pid = srv.pid
        os.kill(pid, 0)  # alive while inside the block
    assert srv.proc is not None and srv.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_server_that_exits_early_raises_with_its_output() -> None:
    argv = [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]
    with pytest.raises(procs.ServerError, match="boom"):
        with procs.Server(argv, "early", ready_pattern=r"never", timeout_s=5):
            pass


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown workload family"):
        parse_only("limits,kafka")
    assert parse_only("broker,limits") == ["limits", "broker"]


def test_interrupted_run_still_writes_a_partial_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edplog.perf.compare import runner

    def interrupted(ctx: model.Context) -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(runner.FAMILIES, "limits", interrupted)
    status = run_compare(str(tmp_path), mode="tiny", runs=1, only="limits", show_progress=False)
    assert status == 130
    assert "Interrupted: this report is partial." in (tmp_path / REPORT).read_text()
