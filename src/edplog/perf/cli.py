"""``edplog perf compare``: edplog side by side with the machine's limits and peer systems.

The harness itself lives in ``edplog.perf.compare``; this module only declares the command,
so ``edplog --help`` stays fast (nothing heavy is imported until the command runs).
"""

from __future__ import annotations

import argparse
from typing import Any

FAMILY_NAMES = "limits, embedded, redis, nats, broker"


def _compare(args: argparse.Namespace) -> int:
    from .compare.runner import run_compare

    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else (100, 1024)
    mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    argv = []
    if args.quick:
        argv.append("--quick")
    if args.only:
        argv += ["--only", args.only]
    if args.runs != 3:
        argv += ["--runs", str(args.runs)]
    try:
        return run_compare(
            args.out,
            mode=mode,
            runs=args.runs,
            only=args.only,
            install=args.install_peers,
            data_dir=args.data_dir,
            record_sizes=sizes,
            show_progress=not args.no_progress,
            argv=argv,
        )
    except ValueError as exc:
        print(f"edplog perf compare: {exc}")
        return 2


def register(commands: Any, perf: Any) -> None:
    """Add ``compare`` to the ``edplog perf`` subcommands."""
    p = perf.add_parser(
        "compare",
        help="edplog vs machine limits, Redis Streams and NATS JetStream, as ratios",
        description="Run the same workloads on the machine's raw limits, edplog (embedded and "
        "broker), Redis Streams and NATS JetStream; write a Markdown report, a PNG "
        "chart and the raw samples to --out.",
    )
    p.add_argument("--quick", action="store_true", help="small counts (about 2 minutes)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # for the tests
    p.add_argument(
        "--install-peers",
        action="store_true",
        help="apt-get install missing redis-server/nats-server (needs root)",
    )
    p.add_argument(
        "--out",
        default="./perf-results",
        metavar="DIR",
        help="where report.md, chart.png and results.json go (default %(default)s)",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=3,
        metavar="N",
        help="timed runs per figure; the median and min-max are reported",
    )
    p.add_argument("--only", metavar="FAMILIES", help=f"comma-separated subset of: {FAMILY_NAMES}")
    p.add_argument("--sizes", metavar="BYTES", help="record sizes (default 100,1024)")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where servers and logs keep data (default: the system temp dir)",
    )
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.set_defaults(func=_compare)
