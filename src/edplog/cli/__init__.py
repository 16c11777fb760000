"""The ``edplog`` command.

Each family of subcommands lives beside the code it drives and registers itself here:
a module in ``COMMAND_MODULES`` defines ``register(commands, perf)``, where ``commands`` is
the top-level subparsers object and ``perf`` the subparsers of ``edplog perf``. Every
subcommand sets ``func`` (taking the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .._version import __version__

COMMAND_MODULES = [
    "edplog.cli.storage",  # dump, verify
    "edplog.cli.broker",  # broker, and (through edplog.cli.clients) topics, produce, ...
    "edplog.cli.perf",  # perf log, perf compare, perf produce, perf consume
    "edplog.cli.cluster",  # cluster up
    "edplog.cli.security",  # security roles, security role-bindings, security acls
    "edplog.cli.secrets",  # secrets keygen, secrets encrypt
    "edplog.cli.audit",  # audit verify
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edplog",
        description=(
            "Kafka-format partition logs: an embeddable library and a Kafka-compatible broker."
        ),
    )
    parser.add_argument("--version", action="version", version=f"edplog {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    perf_parser = commands.add_parser("perf", help="benchmarks: log, produce, consume, compare")
    perf = perf_parser.add_subparsers(dest="perf_command", metavar="WORKLOAD")
    perf_parser.set_defaults(func=lambda args: _usage(perf_parser))
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module: surface it
                raise
            continue
        module.register(commands, perf)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        return _usage(parser)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
