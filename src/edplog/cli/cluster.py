"""``edplog cluster up``: a development cluster (ZooKeeper and N brokers on 127.0.0.2, .3, ...)
in the foreground until Ctrl-C or SIGTERM, with everything under one data directory."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any


def register(commands: Any, perf: Any) -> None:
    """Add ``cluster up`` to ``edplog``."""
    p = commands.add_parser("cluster", help="run a local development cluster")
    sub = p.add_subparsers(dest="cluster_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _usage(p))
    up = sub.add_parser("up", help="start ZooKeeper and N brokers; stop them all on Ctrl-C")
    up.add_argument("--brokers", type=int, default=3, help="number of brokers (default 3)")
    up.add_argument(
        "--data-dir",
        default="./edplog-cluster",
        help="where everything is kept: broker-<id>/ and zookeeper/ (default ./edplog-cluster)",
    )
    up.add_argument(
        "--zookeeper",
        default=None,
        metavar="HOST:PORT/CHROOT",
        help="an existing ZooKeeper to use (default: start a private one under --data-dir)",
    )
    up.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker property for every broker (repeatable)",
    )
    up.add_argument(
        "--session-timeout-ms",
        type=int,
        default=6000,
        help="the brokers' zookeeper.session.timeout.ms (default 6000)",
    )
    up.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the start (default 120)"
    )
    up.set_defaults(func=run_up)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _error(message: str) -> int:
    print(f"edplog cluster: {message}", file=sys.stderr)
    return 2


def run_up(args: argparse.Namespace) -> int:
    from ..cluster import zookeeper_server
    from ..cluster.launcher import ClusterError, LocalCluster

    properties: dict[str, str] = {}
    for item in args.property:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            return _error(f"--property needs KEY=VALUE, got {item!r}")
        properties[key.strip()] = value.strip()
    if not 1 <= args.brokers <= 253:
        return _error("--brokers must be between 1 and 253")
    if args.zookeeper is None and not zookeeper_server.available():
        return _error(
            "ZooKeeper is not installed (apt-get install -y zookeeper), "
            "or pass --zookeeper HOST:PORT/CHROOT"
        )

    stop = threading.Event()
    starting = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if starting:  # abandon the start: LocalCluster.start stops what it started
            raise KeyboardInterrupt

    # Once running, Ctrl-C and SIGTERM only set the flag: the cluster is then stopped in
    # order (brokers, then ZooKeeper) by the code below.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    cluster = LocalCluster(
        Path(args.data_dir),
        args.brokers,
        zookeeper=args.zookeeper,
        properties=properties,
        session_timeout_ms=args.session_timeout_ms,
    )
    code = 0
    try:
        print(f"edplog cluster: starting {args.brokers} brokers in {args.data_dir}", flush=True)
        cluster.start(timeout_s=args.timeout)
        starting = False
        server = cluster.zookeeper
        zk_line = (
            f"zookeeper {cluster.zookeeper_connect} (pid {server.pid}, log {server.log_path})"
            if server is not None
            else f"zookeeper {cluster.zookeeper_connect} (external)"
        )
        print(zk_line)
        for broker_id in cluster.broker_ids:
            print(
                f"broker {broker_id} {cluster.address(broker_id)} "
                f"(pid {cluster.pid(broker_id)}, log {cluster.log_path(broker_id)})"
            )
        print(f"bootstrap.servers={cluster.bootstrap}")
        print("edplog cluster ready; Ctrl-C stops it", flush=True)
        reported: set[int] = set()
        while not stop.wait(1.0):
            # A broker that dies is reported once; the rest keep serving (a development
            # cluster is also where one kills a broker on purpose to watch the failover).
            for broker_id in cluster.exited():
                if broker_id not in reported:
                    reported.add(broker_id)
                    print(
                        f"edplog cluster: {cluster.exit_report(broker_id)}",
                        file=sys.stderr,
                        flush=True,
                    )
    except ClusterError as exc:
        print(f"edplog cluster: {exc}", file=sys.stderr, flush=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        starting = False
        print("edplog cluster: stopping", flush=True)
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("edplog cluster: stopped", flush=True)
    return code
