"""``edplog perf log|compare|produce|consume``: edplog against baselines, as ratios.

The harnesses live in ``edplog.perf`` (``log``, ``compare``, ``broker_load``); this module only
declares the commands, so ``edplog --help`` stays fast (nothing heavy is imported until the
command runs).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

FAMILY_NAMES = "limits, embedded, redis, nats, broker, security, cluster"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def _compare(args: argparse.Namespace) -> int:
    from ..perf.compare.runner import run_compare

    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else (100, 1024)
    mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    # The command line the report shows, so a reader can run the same thing again.
    argv = ["--quick"] if args.quick else []
    argv += ["--runs", str(args.runs), "--out", str(args.out)]
    if args.only:
        argv += ["--only", args.only]
    if args.sizes:
        argv += ["--sizes", args.sizes]
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


def parse_bytes(text: str) -> int:
    """'64M', '1GiB', '1g', '4096' -> bytes (binary multiples)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64M, 1G, 1048576)")
    return int(m.group(1)) << (10 * " kmgt".index(m.group(2) or " "))


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value

    return parse


def _log(args: argparse.Namespace) -> int:
    from ..perf.log import run_perf_log

    return run_perf_log(
        records=args.records,
        value_bytes=args.value_bytes,
        runs=args.runs,
        seconds=args.seconds,
        reopen_bytes=args.reopen_bytes,
        parent_dir=args.dir,
        show_progress=not args.no_progress,
        json_path=args.json,
    )


def _register_log(perf: Any) -> None:
    p = perf.add_parser(
        "log",
        help="the embedded Log against a struct loop, SQLite and os.write, as ratios",
        description="Measure edplog.Log in-process (append, append_batches, read, read_numpy, "
        "reopen after SIGKILL) against naive baselines run side by side, and print each ratio "
        "with its goal. Runs in a temporary directory that is removed afterwards.",
    )
    p.add_argument(
        "--records",
        type=_positive(int),
        default=1_000_000,
        metavar="N",
        help="record cap of one timed run (default %(default)s)",
    )
    p.add_argument(
        "--value-bytes",
        type=_positive(int),
        default=100,
        metavar="B",
        help="value size in bytes (default %(default)s)",
    )
    p.add_argument(
        "--seconds",
        type=_positive(float),
        default=0.5,
        metavar="S",
        help="time cap of one timed run (default %(default)s)",
    )
    p.add_argument(
        "--runs",
        type=_positive(int),
        default=3,
        metavar="N",
        help="timed runs per figure; the median is reported (default %(default)s)",
    )
    p.add_argument(
        "--reopen-bytes",
        type=parse_bytes,
        default=64 << 20,
        metavar="SIZE",
        help="unflushed segment size for the SIGKILL reopen, e.g. 1G for the goal's size "
        "(default 64M; smaller sizes are projected linearly to 1 GiB)",
    )
    p.add_argument(
        "--dir",
        metavar="DIR",
        help="filesystem to measure on: a temporary directory is made there and removed "
        "(default: the system temp dir)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the raw samples and ratios here")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.set_defaults(func=_log)


def register(commands: Any, perf: Any) -> None:
    """Add ``log``, ``compare``, ``produce`` and ``consume`` to the ``edplog perf`` commands."""
    from ..perf import broker_load

    _register_log(perf)
    broker_load.register(perf, DEFAULT_BOOTSTRAP)
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
