"""``edplog broker``, and (through :mod:`.clients`) the client commands in the spirit of
Kafka's scripts and kcat: ``topics``, ``produce``, ``consume`` and ``groups``.

The client commands speak the Kafka protocol to any broker (edplog's or Kafka's) through
confluent-kafka, imported only when one runs, so the broker starts without loading it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def register(commands: Any, perf: Any) -> None:
    """Add ``broker``, ``topics``, ``produce``, ``consume`` and ``groups`` to ``edplog``."""
    from . import clients

    p = commands.add_parser("broker", help="run a Kafka-compatible broker")
    p.add_argument(
        "--data-dir",
        default=None,
        help="log directories, comma-separated like log.dirs, which it replaces "
        "(default ./edplog-data)",
    )
    p.add_argument(
        "--listen",
        default=None,
        metavar="[HOST:]PORT",
        help="where to listen (default 127.0.0.1:9092; a bare PORT means 127.0.0.1:PORT, "
        "and port 0 picks a free one)",
    )
    p.add_argument("--config", default=None, help="server.properties with Kafka property names")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker property, as in kafka-server-start --override",
    )
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    p.set_defaults(func=run_broker)
    clients.register(commands, DEFAULT_BOOTSTRAP)


def _usage_error(message: str) -> int:
    """A mistake in the command line or the configuration: a message and exit code 2, as
    argparse gives for its own usage errors."""
    print(f"edplog broker: {message}", file=sys.stderr)
    return 2


def run_broker(args: argparse.Namespace) -> int:
    """Start the broker and serve until SIGTERM/SIGINT; print one ready line."""
    from ..broker.config import BrokerConfig, parse_properties
    from ..broker.listeners import parse_listen_flag
    from ..broker.runner import serve
    from ..errors import EdplogError
    from ..security.tls import build_context

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    props: dict[str, str] = {}
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as f:
                props.update(parse_properties(f.read()))
        except OSError as exc:
            return _usage_error(f"cannot read --config {args.config}: {exc.strerror or exc}")
        except UnicodeDecodeError as exc:
            return _usage_error(f"--config {args.config} is not text: {exc}")
    for item in args.override:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            return _usage_error(f"--override needs KEY=VALUE, got {item!r}")
        props[key.strip()] = value.strip()
    try:
        config = BrokerConfig.from_properties(props)
        if args.data_dir is not None:  # replaces log.dirs; comma-separated like it
            dirs = [d.strip() for d in args.data_dir.split(",") if d.strip()]
            if not dirs:
                return _usage_error("--data-dir names no directory")
            config.data_dir, config.log_dirs = dirs[0], dirs
        if args.listen is not None:
            config.host, config.port = parse_listen_flag(args.listen)
        elif "listeners" not in props:
            config.host, config.port = "127.0.0.1", 9092
        config.store_defaults()  # every log default is checked before anything starts
        for listener in config.client_listeners():
            if listener.tls is not None:
                build_context(listener.tls)  # a key or trust store that does not load
    except (EdplogError, ValueError) as exc:
        return _usage_error(str(exc))

    def ready(host: str, port: int) -> None:
        adv_host, adv_port = config.advertised
        others = "".join(
            f"; {lc.name} ({lc.protocol}) on {':'.join(map(str, config.advertised_for(lc.name)))}"
            for lc in config.client_listeners()[1:]
        )
        print(
            f"edplog broker ready on {adv_host}:{adv_port} "
            f"(listening {host}:{port}, data {config.data_dir}, node {config.node_id}{others})",
            flush=True,
        )

    try:
        return asyncio.run(serve(config, ready))
    except OSError as exc:
        print(f"edplog broker: {exc}", file=sys.stderr)
        return 1
