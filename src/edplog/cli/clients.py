"""Client commands: ``edplog topics|produce|consume|groups`` against any Kafka-protocol broker.

They use confluent-kafka (librdkafka), imported only when a command runs, so the broker
itself never depends on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

ADMIN_TIMEOUT_S = 30.0


def register(commands: Any, default_bootstrap: str) -> None:
    def bootstrap(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap-server", "-b", default=default_bootstrap, help="HOST:PORT")

    topics = commands.add_parser("topics", help="create, list, describe or delete topics")
    tsub = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    p = tsub.add_parser("create", help="create a topic")
    bootstrap(p)
    p.add_argument("topic")
    p.add_argument("--partitions", type=int, default=-1, help="default: the broker's")
    p.add_argument("--replication-factor", type=int, default=-1)
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=topics_create)
    p = tsub.add_parser("list", help="list topics")
    bootstrap(p)
    p.set_defaults(func=topics_list)
    p = tsub.add_parser("describe", help="partitions and configs of topics")
    bootstrap(p)
    p.add_argument("topic", nargs="*")
    p.set_defaults(func=topics_describe)
    p = tsub.add_parser("delete", help="delete topics")
    bootstrap(p)
    p.add_argument("topic", nargs="+")
    p.set_defaults(func=topics_delete)

    p = commands.add_parser("produce", help="produce lines from stdin to a topic")
    bootstrap(p)
    p.add_argument("topic")
    p.add_argument("--key-separator", "-K", default=None, help="split KEY<sep>VALUE per line")
    p.add_argument("--partition", "-p", type=int, default=None)
    p.add_argument("--acks", default="all", choices=["0", "1", "all", "-1"])
    p.add_argument("--compression", default="none")
    p.set_defaults(func=produce)

    p = commands.add_parser("consume", help="print records of a topic to stdout")
    bootstrap(p)
    p.add_argument("topic")
    p.add_argument("--group", "-g", default=None, help="consume in a group, committing offsets")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=None, help="stop after N records")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop after S idle seconds")
    p.add_argument("--key-separator", "-K", default=None, help="print KEY<sep>VALUE")
    p.set_defaults(func=consume)

    groups = commands.add_parser("groups", help="list or describe consumer groups")
    gsub = groups.add_subparsers(dest="groups_command", metavar="ACTION", required=True)
    p = gsub.add_parser("list", help="list consumer groups")
    bootstrap(p)
    p.set_defaults(func=groups_list)
    p = gsub.add_parser("describe", help="members, assignments and committed offsets")
    bootstrap(p)
    p.add_argument("group", nargs="+")
    p.set_defaults(func=groups_describe)


def _admin(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": args.bootstrap_server})


def _wait(futures: dict[Any, Any], verb: str) -> int:
    status = 0
    for name, fut in futures.items():
        try:
            fut.result(timeout=ADMIN_TIMEOUT_S)
            print(f"{verb} {name}")
        except Exception as exc:
            print(f"edplog: {name}: {exc}", file=sys.stderr)
            status = 1
    return status


def topics_create(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import NewTopic

    config = dict(item.split("=", 1) for item in args.config)
    topic = NewTopic(args.topic, args.partitions, args.replication_factor, config=config)
    admin = _admin(args)  # must outlive the futures: destroying it cancels them
    return _wait(admin.create_topics([topic]), "created topic")


def topics_list(args: argparse.Namespace) -> int:
    meta = _admin(args).list_topics(timeout=ADMIN_TIMEOUT_S)
    for name in sorted(meta.topics):
        print(name)
    return 0


def topics_describe(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import ConfigResource

    admin = _admin(args)
    meta = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
    names = args.topic or sorted(meta.topics)
    status = 0
    for name in names:
        topic = meta.topics.get(name)
        if topic is None or topic.error is not None:
            print(f"edplog: {name}: {topic.error if topic else 'no such topic'}", file=sys.stderr)
            status = 1
            continue
        print(f"Topic: {name}\tPartitionCount: {len(topic.partitions)}")
        for pid in sorted(topic.partitions):
            p = topic.partitions[pid]
            print(f"\tPartition: {pid}\tLeader: {p.leader}\tReplicas: {p.replicas}\tIsr: {p.isrs}")
        futures = admin.describe_configs([ConfigResource("topic", name)])
        for fut in futures.values():
            configs = fut.result(timeout=ADMIN_TIMEOUT_S)
            overrides = {k: v.value for k, v in configs.items() if not v.is_default}
            print("\tConfigs: " + ",".join(f"{k}={v}" for k, v in sorted(overrides.items())))
    return status


def topics_delete(args: argparse.Namespace) -> int:
    admin = _admin(args)
    return _wait(admin.delete_topics(args.topic), "deleted topic")


def produce(args: argparse.Namespace) -> int:
    """One record per stdin line; acknowledged (or failed) before the command exits."""
    from confluent_kafka import Producer

    acks = "all" if args.acks in ("all", "-1") else args.acks
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap_server,
            "acks": acks,
            "compression.type": args.compression,
            "linger.ms": 5,
        }
    )
    failures: list[str] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    sent = 0
    for raw in sys.stdin.buffer:
        line = raw.rstrip(b"\r\n")
        key = None
        if args.key_separator is not None:
            key, sep, value = line.partition(args.key_separator.encode())
            if not sep:
                key, value = None, line
        else:
            value = line
        kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": report}
        if args.partition is not None:
            kwargs["partition"] = args.partition
        while True:
            try:
                producer.produce(args.topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        sent += 1
        producer.poll(0)
    remaining = producer.flush(ADMIN_TIMEOUT_S)
    if failures or remaining:
        print(f"edplog: {len(failures) + remaining} of {sent} records failed", file=sys.stderr)
        for message in failures[:5]:
            print(f"edplog: {message}", file=sys.stderr)
        return 1
    return 0


def consume(args: argparse.Namespace) -> int:
    """Print values (or KEY<sep>VALUE) one per line, in a group or by assignment."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    group = args.group or f"edplog-consume-{int(time.time() * 1000)}"
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_server,
            "group.id": group,
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            "enable.auto.commit": args.group is not None,
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        if args.group is not None:
            consumer.subscribe([args.topic])
        else:
            meta = consumer.list_topics(args.topic, timeout=ADMIN_TIMEOUT_S)
            topic = meta.topics.get(args.topic)
            if topic is None or topic.error is not None:
                print(f"edplog: {args.topic}: no such topic", file=sys.stderr)
                return 1
            start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
            consumer.assign([TopicPartition(args.topic, p, start) for p in topic.partitions])
        count = 0
        idle_since = time.monotonic()
        out = sys.stdout.buffer
        sep = args.key_separator.encode() if args.key_separator is not None else None
        while args.max is None or count < args.max:
            msg = consumer.poll(0.5)
            if msg is None:
                if (
                    args.idle_timeout is not None
                    and time.monotonic() - idle_since > args.idle_timeout
                ):
                    break
                continue
            if msg.error() is not None:
                print(f"edplog: {msg.error()}", file=sys.stderr)
                continue
            idle_since = time.monotonic()
            value = msg.value() or b""
            if sep is not None:
                out.write((msg.key() or b"") + sep + value + b"\n")
            else:
                out.write(value + b"\n")
            out.flush()
            count += 1
    finally:
        consumer.close()
    return 0


def groups_list(args: argparse.Namespace) -> int:
    admin = _admin(args)
    result = admin.list_consumer_groups().result(timeout=ADMIN_TIMEOUT_S)
    for group in sorted(result.valid, key=lambda g: g.group_id):
        print(f"{group.group_id}\t{group.state.name if group.state else ''}")
    return 0


def groups_describe(args: argparse.Namespace) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = _admin(args)
    status = 0
    for group_id, fut in admin.describe_consumer_groups(args.group).items():
        try:
            desc = fut.result(timeout=ADMIN_TIMEOUT_S)
        except Exception as exc:
            print(f"edplog: {group_id}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"Group: {group_id}\tState: {desc.state.name}\tProtocol: {desc.partition_assignor}")
        for member in desc.members:
            parts = ",".join(
                f"{tp.topic}-{tp.partition}" for tp in member.assignment.topic_partitions
            )
            print(f"\tMember: {member.member_id}\tClient: {member.client_id}\t{parts}")
        offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])
        for fut2 in offsets.values():
            for tp in fut2.result(timeout=ADMIN_TIMEOUT_S).topic_partitions:
                print(f"\tOffset: {tp.topic}-{tp.partition}\t{tp.offset}")
    return status
