"""The ``cluster`` family of ``edplog perf compare`` in its tiny mode: a real ZooKeeper, three
real broker processes on loopback aliases and confluent-kafka clients.

Only the shape and sanity of the results are checked (every figure measured, counts and byte
totals that add up, every event timed, the report naming each goal); timings never decide pass
or fail, because the machine is shared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edplog.cli import main
from edplog.cluster import zookeeper_server
from edplog.perf.compare import cluster
from edplog.perf.compare.runner import REPORT, RESULTS

pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)

KEYS = {
    "cluster.produce.single_acks1",
    "cluster.produce.acks_all",
    "cluster.failover.kill",
    "cluster.failover.term",
    "cluster.sendfile",
    "cluster.write",
    "cluster.catch_up",
}


@pytest.fixture(scope="module")
def tiny_cluster_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare-cluster")
    status = main(
        [
            "perf",
            "compare",
            "--tiny",
            "--runs",
            "1",
            "--only",
            "cluster",
            "--out",
            str(out),
            "--data-dir",
            str(out / "data"),
            "--no-progress",
        ]
    )
    assert status == 0
    return out


def _figures(out: Path) -> dict[str, dict[str, Any]]:
    results = json.loads((out / RESULTS).read_text())
    return {f["spec"]["key"]: f for f in results["figures"]}


@pytest.mark.timeout(300)
def test_every_cluster_figure_is_measured(tiny_cluster_run: Path) -> None:
    """Tried: the whole family once (single-broker baseline, cluster produce, one SIGKILL and
    one SIGTERM of the leader, sendfile and one follower catch-up). Must hold: each figure
    exists at 1 KiB, none is skipped, and each has its samples (one per timed run or event)."""
    figures = _figures(tiny_cluster_run)
    assert KEYS <= set(figures)
    for key in KEYS:
        figure = figures[key]
        assert figure["skipped"] is None, (key, figure["skipped"])
        assert figure["spec"]["record_size"] == cluster.SIZE
        assert figure["samples"], key
    assert len(figures["cluster.failover.kill"]["samples"]) == cluster.KILLS["tiny"]
    assert len(figures["cluster.failover.term"]["samples"]) == cluster.TERMS["tiny"]


def test_produce_figures_move_the_same_records(tiny_cluster_run: Path) -> None:
    """Tried: acks=1 to one broker and acks=all to the cluster from the same budget. Must hold:
    both acknowledged the same record count (the ratio compares equal work), of 1 KiB each."""
    figures = _figures(tiny_cluster_run)
    single = figures["cluster.produce.single_acks1"]["samples"][0]
    three = figures["cluster.produce.acks_all"]["samples"][0]
    assert single["records"] == three["records"] > 0
    assert single["bytes"] == three["bytes"] == three["records"] * cluster.SIZE
    assert single["seconds"] > 0 and three["seconds"] > 0


def test_failover_events_are_timed_in_order(tiny_cluster_run: Path) -> None:
    """Tried: SIGKILL and SIGTERM of the partition's leader under a continuous idempotent
    acks=all producer. Must hold: every event saw a new leader elected and a later record
    acknowledged; the first acknowledgement comes after the signal, the longest stall is no
    longer than the window, and acknowledgements went on through it."""
    figures = _figures(tiny_cluster_run)
    for key in ("cluster.failover.kill", "cluster.failover.term"):
        for sample in figures[key]["samples"]:
            lat = sample["latency_ms"]
            assert 0 < lat["failover"] <= sample["seconds"] * 1000, (key, lat)
            assert 0 < lat["elected"], (key, lat)
            assert 0 < lat["stall"] <= sample["seconds"] * 1000, (key, lat)
            assert lat["errors"] >= 0
            assert sample["records"] > 0


def test_catch_up_copies_what_the_leader_got(tiny_cluster_run: Path) -> None:
    """Tried: a follower stopped while the leader took CATCH_UP_BYTES at acks=1, then
    started. Must hold: the follower's log grew by at least the payload (1 KiB records, no
    compression, plus batch headers), it rejoined the ISR, and the sendfile and write
    references moved the same byte count."""
    figures = _figures(tiny_cluster_run)
    nbytes = cluster.CATCH_UP_BYTES["tiny"]
    sample = figures["cluster.catch_up"]["samples"][0]
    assert sample["records"] == nbytes // cluster.SIZE
    assert sample["bytes"] >= nbytes
    lat = sample["latency_ms"]
    assert lat["start_to_isr"] > 0 and lat["catch-up"] > 0
    sent = figures["cluster.sendfile"]["samples"][0]
    assert sent["bytes"] >= nbytes
    written = figures["cluster.write"]["samples"][0]
    assert written["bytes"] >= nbytes


def test_report_names_the_cluster_goals(tiny_cluster_run: Path) -> None:
    """Tried: rendering the report of the run. Must hold: the cluster section and each cluster
    goal row are there with a verdict (met or short, never 'not measured')."""
    text = (tiny_cluster_run / REPORT).read_text()
    assert "### edplog cluster" in text
    goals = text.split("## Goals", 1)[1].split("### Where edplog falls short", 1)[0]
    rows = [line for line in goals.splitlines() if line.startswith("| ")]
    for goal in (
        "cluster produce (acks=all, RF 3, min ISR 2)",
        "leader failover (SIGKILL) p50",
        "leader failover (SIGKILL) max",
        "controlled shutdown (SIGTERM)",
        "follower catch-up >= 0.5x raw sendfile",
        "follower catch-up >= 0.5x os.write",
    ):
        (row,) = [r for r in rows if r.startswith(f"| {goal}")]
        assert row.rstrip().endswith(("| met |", "| short |")), row
