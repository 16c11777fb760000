"""``edplog audit verify``: check an audit log's chain of hashes.

An audit file is worth what its reader can check without trusting the broker that wrote it,
so the check is a command of its own that needs nothing but the file (and, for a keyed log,
the HMAC key). Exit 0 with a summary when the chain is intact; exit 1 naming the first bad
line (edited, removed, reordered, or a torn last line left by a crash); exit 2 when the file
cannot be checked (unreadable, or keyed and no key given).

With ``--topic`` it reads partition 0 of an audit topic (``audit.log.topic``) instead, with
confluent-kafka (``--command-config`` holds the client's security settings), and checks each
broker's chain in it apart.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..broker.audit_topic import PARTITION
from ..security.audit_settings import AuditError, read_key
from ..security.audit_verify import Verdict, verify, verify_records


def register(commands: Any, perf: Any) -> None:
    """Add ``audit verify``."""
    p = commands.add_parser("audit", help="the broker's audit log")
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _usage(p))
    v = sub.add_parser("verify", help="check an audit log's chain of hashes")
    v.add_argument("file", nargs="?", help="the audit log (audit.log.file)")
    v.add_argument(
        "--hmac-key-file", help="the key of a keyed log (audit.log.hmac.key.file)", default=None
    )
    v.add_argument("--topic", help="check an audit topic (audit.log.topic) instead of a file")
    v.add_argument("--bootstrap-server", metavar="HOST:PORT", help="the cluster of --topic")
    v.add_argument(
        "--command-config",
        metavar="FILE",
        help="client properties (security.protocol, sasl.*, ssl.*) for --topic's connection",
    )
    v.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    v.set_defaults(func=run_verify)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_verify(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.topic is None):
        print("edplog audit verify: give a FILE or --topic (one of them)", file=sys.stderr)
        return 2
    if args.topic is not None:
        return _verify_topic(args)
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


def _verify_topic(args: argparse.Namespace) -> int:
    if not args.bootstrap_server:
        print("edplog audit verify: --topic needs --bootstrap-server", file=sys.stderr)
        return 2
    try:
        key = read_key(args.hmac_key_file) if args.hmac_key_file else None
        chains, start = _read_topic(args)
    except (AuditError, OSError, RuntimeError) as exc:
        print(f"edplog audit verify: {exc}", file=sys.stderr)
        return 2
    name = f"{args.topic}-{PARTITION}"
    verdicts = {
        source: verify_records(records, key, may_start_late=start > 0)
        for source, records in sorted(chains.items())
    }
    total = sum(len(r) for r in chains.values())
    print(f"{name}: {len(chains)} writer(s), {total} record(s) from offset {start}")
    worst = 0
    for source, verdict in verdicts.items():
        if verdict.kind == "unkeyed":
            print(f"{source}: {verdict.problem}", file=sys.stderr)
            worst = max(worst, 2)
        elif verdict.problem is not None:
            print(f"{source}: {verdict.kind}: {verdict.problem}", file=sys.stderr)
            print(f"{verdict.records} record(s) of it before that are intact", file=sys.stderr)
            worst = max(worst, 1)
        else:
            _summary(source, verdict)
    return worst


def _summary(source: str, verdict: Verdict) -> None:
    print(
        f"{source}: intact, {verdict.records} record(s), sequence "
        f"{verdict.first_sequence}..{verdict.last_sequence}"
        + (f" ({verdict.repeated} sent twice)" if verdict.repeated else "")
    )
    if verdict.first_sequence:
        print(f"  starts at sequence {verdict.first_sequence}: retention deleted the older ones")
    print(f"  first {verdict.first_time}, last {verdict.last_time}, hash {verdict.last_hash}")


def _read_topic(args: argparse.Namespace) -> tuple[dict[str, list[tuple[str, bytes]]], int]:
    """Every record of the topic's partition 0, by writer (its key), in offset order, and the
    partition's first offset."""
    import time

    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    conf: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap_server,
        "group.id": "edplog-audit-verify",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }
    if args.command_config:
        from ..broker.config import parse_properties

        with open(args.command_config) as f:
            conf.update(parse_properties(f.read()))
    consumer = Consumer(conf)
    chains: dict[str, list[tuple[str, bytes]]] = {}
    try:
        try:
            listed = consumer.list_topics(args.topic, timeout=args.timeout).topics.get(args.topic)
            if listed is None or listed.error is not None or PARTITION not in listed.partitions:
                why = listed.error if listed is not None and listed.error else "no such topic"
                raise RuntimeError(f"topic {args.topic}: {why}")
            tp = TopicPartition(args.topic, PARTITION)
            low, high = consumer.get_watermark_offsets(tp, timeout=args.timeout)
            consumer.assign([TopicPartition(args.topic, PARTITION, low)])
            position, deadline = low, time.monotonic() + args.timeout
            while position < high:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"read {position - low} of {high - low} records in {args.timeout:g} s"
                    )
                for m in consumer.consume(1000, timeout=1.0):
                    if m.error() is not None:
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        raise RuntimeError(str(m.error()))
                    if m.offset() >= high:
                        continue
                    source = (m.key() or b"").decode(errors="replace")
                    chains.setdefault(source, []).append((f"offset {m.offset()}", m.value() or b""))
                    position = m.offset() + 1
        except KafkaException as exc:
            raise RuntimeError(str(exc.args[0])) from None
    finally:
        consumer.close()
    return chains, low
