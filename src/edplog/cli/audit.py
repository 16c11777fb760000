"""``edplog audit verify``: check an audit log's chain of hashes.

An audit file is worth what its reader can check without trusting the broker that wrote it,
so the check is a command of its own that needs nothing but the file (and, for a keyed log,
the HMAC key). Exit 0 with a summary when the chain is intact; exit 1 naming the first bad
line (edited, removed, reordered, or a torn last line left by a crash); exit 2 when the file
cannot be checked (unreadable, or keyed and no key given).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..security.audit_settings import AuditError, read_key
from ..security.audit_verify import verify


def register(commands: Any, perf: Any) -> None:
    """Add ``audit verify``."""
    p = commands.add_parser("audit", help="the broker's audit log")
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _usage(p))
    v = sub.add_parser("verify", help="check an audit log's chain of hashes")
    v.add_argument("file", help="the audit log (audit.log.file)")
    v.add_argument(
        "--hmac-key-file", help="the key of a keyed log (audit.log.hmac.key.file)", default=None
    )
    v.set_defaults(func=run_verify)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_verify(args: argparse.Namespace) -> int:
    try:
        key = read_key(args.hmac_key_file) if args.hmac_key_file else None
        verdict = verify(args.file, key)
    except (AuditError, OSError) as exc:
        print(f"edplog audit verify: {exc}", file=sys.stderr)
        return 2
    if verdict.kind == "unkeyed":
        print(f"{args.file}: {verdict.problem}", file=sys.stderr)
        return 2
    if verdict.problem is not None:
        print(f"{args.file}: {verdict.kind}: {verdict.problem}", file=sys.stderr)
        print(f"{verdict.records} record(s) before it are intact", file=sys.stderr)
        return 1
    print(f"{args.file}: intact, {verdict.records} record(s)")
    if verdict.records:
        print(f"first {verdict.first_time}, last {verdict.last_time}")
        print(f"last sequence {verdict.last_sequence}, hash {verdict.last_hash}")
    for line in verdict.recovered_torn:
        print(f"line {line}: a torn line a restart recovered from (a crash mid-write)")
    return 0
