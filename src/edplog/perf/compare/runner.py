"""One comparison run: pick families, run them in a temporary directory, write the results.

Families run one after another, never side by side: on two cores, two servers competing
would measure the scheduler. Machine limits run first so every ratio divides by a ceiling
taken minutes, not hours, before. SIGTERM is turned into KeyboardInterrupt so that the
``finally`` blocks stop every server we started, and a partial report is still written.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from types import FrameType

from . import broker, cluster, embedded, limits, nats, redis, security
from .chart import write_chart
from .model import BUDGETS, RECORD_SIZES, Context, Progress
from .procs import install_peers, machine, peer_versions
from .report import render

FAMILIES: dict[str, Callable[[Context], None]] = {
    "limits": limits.run,
    "embedded": embedded.run,
    "redis": redis.run,
    "nats": nats.run,
    "broker": broker.run,
    "security": security.run,
    "cluster": cluster.run,
}
REPORT = "report.md"
CHART = "chart.png"
RESULTS = "results.json"


def parse_only(text: str | None) -> list[str]:
    """'limits,redis' -> ['limits', 'redis'] in run order; unknown names raise ValueError."""
    if not text:
        return list(FAMILIES)
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in FAMILIES]
    if unknown:
        raise ValueError(
            f"unknown workload family {', '.join(unknown)}; choose from {', '.join(FAMILIES)}"
        )
    return [name for name in FAMILIES if name in wanted]


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_compare(
    out_dir: str,
    mode: str = "full",
    runs: int = 3,
    only: str | None = None,
    install: bool = False,
    data_dir: str | None = None,
    record_sizes: Sequence[int] = RECORD_SIZES,
    show_progress: bool = True,
    argv: Sequence[str] | None = None,
) -> int:
    """Run the selected families and write report.md, chart.png and results.json to out_dir."""
    families = parse_only(only)
    budget = BUDGETS[mode]
    progress = Progress(show_progress)
    os.makedirs(out_dir, exist_ok=True)
    if data_dir:
        os.makedirs(data_dir, exist_ok=True)
    command = "edplog perf compare " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    status = 0
    with tempfile.TemporaryDirectory(prefix="edplog-compare-", dir=data_dir) as workdir:
        ctx = Context(budget, runs, workdir, progress, record_sizes)
        if install and any(f in families for f in ("redis", "nats")):
            reason = install_peers(progress.say)
            if reason:
                ctx.notes.append(f"--install-peers: {reason}")
                progress.say(f"--install-peers: {reason}")
        try:
            for name in families:
                progress.say(f"== {name}")
                FAMILIES[name](ctx)
        except KeyboardInterrupt:
            status = 130
            ctx.notes.append("Interrupted: this report is partial.")
            progress.say("interrupted: writing a partial report")
        finally:
            progress.done()
            signal.signal(signal.SIGTERM, previous)
        info = machine(workdir)
    versions = peer_versions()
    chart_path = os.path.join(out_dir, CHART)
    have_chart = write_chart(ctx, chart_path)
    text = render(
        ctx, info, versions, command, started, time.monotonic() - t0, CHART if have_chart else None
    )
    with open(os.path.join(out_dir, REPORT), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(out_dir, RESULTS), "w", encoding="utf-8") as f:
        json.dump(
            {
                "mode": mode,
                "runs": runs,
                "started": started,
                "machine": info,
                "versions": versions,
                "figures": [fig.to_json() for fig in ctx.figures],
            },
            f,
            indent=1,
        )
    progress.say(
        f"report: {os.path.join(out_dir, REPORT)}"
        + (f"  chart: {chart_path}" if have_chart else "")
    )
    return status
