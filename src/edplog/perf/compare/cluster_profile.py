"""The cluster family's profiled produce pass: leader and one follower under cProfile.

It runs (outside the tiny mode) when the acks=all produce misses its goal; the report's notes
then list what took the brokers' time. ``EDPLOG_CLUSTER_PROFILE_DIR`` keeps the raw profiles.
"""

from __future__ import annotations

import os
import pstats
import shutil
from pathlib import Path

from . import broker
from .cluster_run import BROKERS, PROPERTIES, SESSION_TIMEOUT_MS, SIZE, ClusterRun
from .model import Budget, Context

PROFILE_TOP = 12


class ProfiledCluster:
    """A :class:`LocalCluster` whose chosen brokers run under ``python -m cProfile``.

    The launcher starts ``python -m edplog broker``; the chosen brokers get the interpreter
    options ``-m cProfile -o FILE`` before it, and the rest of the cluster's lifetime (signals
    by PID, readiness, stop order) stays the launcher's. A broker writes its profile when it
    exits from SIGTERM (the broker returns from its serve loop; cProfile then dumps the stats).
    """

    def __init__(self, base_dir: Path, profiled: dict[int, Path] | None = None) -> None:
        from ...cluster.launcher import LocalCluster

        self.cluster = LocalCluster(
            base_dir, BROKERS, properties=PROPERTIES, session_timeout_ms=SESSION_TIMEOUT_MS
        )
        for broker_id, out in (profiled or {}).items():
            proc = self.cluster._brokers[broker_id]  # noqa: SLF001 - the launcher is not ours
            proc.python_options = ("-m", "cProfile", "-o", str(out))


def profile(ctx: Context, count_budget: Budget) -> None:
    """One acks=all produce pass with brokers 1 (leader) and 2 (follower) under cProfile."""
    base = Path(ctx.workdir) / "cluster-profiled"
    outs = {1: base / "broker-1.prof", 2: base / "broker-2.prof"}
    base.mkdir(parents=True, exist_ok=True)
    wrapper = ProfiledCluster(base, outs)
    cluster = wrapper.cluster
    ctx.progress.show("cluster: profiled produce pass (brokers 1 and 2 under cProfile)")
    try:
        cluster.start()
        run = ClusterRun(ctx, cluster)
        try:
            run.create_topic("perf-profiled", (1, 2, 3))
            sample = broker.produce(cluster.bootstrap, "perf-profiled", "all", SIZE, count_budget)
        finally:
            run.close()
    finally:
        cluster.stop()
    rate = sample.bytes_per_s / 1e6
    ctx.notes.append(
        f"cluster profile: acks=all produce under cProfile ran at {rate:.1f} MB/s "
        "(the profiler slows the brokers; read the shares, not the rate)."
    )
    keep = os.environ.get("EDPLOG_CLUSTER_PROFILE_DIR")
    for broker_id, path in outs.items():
        role = "leader" if broker_id == 1 else "follower"
        if not path.exists():
            ctx.notes.append(f"cluster profile: broker {broker_id} wrote no profile")
            continue
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(path, os.path.join(keep, path.name))
        ctx.notes.append(f"cluster profile, broker {broker_id} ({role}): " + summarize(path))


def summarize(path: Path, top: int = PROFILE_TOP) -> str:
    """The functions with the most own time in a cProfile dump, as one line of text."""
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    parts = []
    for (filename, line, name), (_, calls, own, _cum, _) in rows[:top]:
        where = f"{Path(filename).name}:{line}" if line else filename
        parts.append(f"{name} ({where}) {own / total * 100:.1f} % [{calls} calls]")
    return f"main thread {total:.1f} s; most own time: " + "; ".join(parts)
