"""``edplog perf produce|consume``: load tests in the spirit of kafka-producer-perf-test.

Produce and consume use confluent-kafka and report records/s, MB/s and (for produce)
delivery-latency percentiles, with a live progress line on stderr. ``consume --raw`` sends
Fetch requests with :mod:`edplog.client` and reads the responses into one reusable buffer
without decoding records (only batch headers are scanned, natively, to find the next
offset), to measure the broker alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..client import Client, ClientError, FetchPosition, ReceiveBuffer, scan_records

PROGRESS_EVERY_S = 1.0


def register(perf: Any, default_bootstrap: str) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap-server", "-b", default=default_bootstrap)
        p.add_argument("--topic", default="edplog-perf")
        p.add_argument("--records", type=int, default=1_000_000)

    p = perf.add_parser("produce", help="producer throughput and latency (confluent-kafka)")
    common(p)
    p.add_argument("--record-size", type=int, default=100)
    p.add_argument("--acks", default="1", choices=["0", "1", "all", "-1"])
    p.add_argument("--compression", default="lz4")
    p.add_argument("--linger-ms", type=float, default=5)
    p.add_argument("--batch-size", type=int, default=1_000_000)
    p.set_defaults(func=perf_produce)
    p = perf.add_parser("consume", help="consumer throughput (confluent-kafka or raw Fetch)")
    common(p)
    p.add_argument("--raw", action="store_true", help="raw Fetch requests, records undecoded")
    p.add_argument("--fetch-bytes", type=int, default=8 << 20)
    p.set_defaults(func=perf_consume)


class _Progress:
    def __init__(self, what: str) -> None:
        self.what = what
        self.start = time.perf_counter()
        self._next = self.start + PROGRESS_EVERY_S

    def tick(self, records: int, nbytes: int, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now >= self._next:
            self._next = now + PROGRESS_EVERY_S
            secs = max(now - self.start, 1e-9)
            print(
                f"\r{self.what}: {records:,} records, {records / secs:,.0f} rec/s, "
                f"{nbytes / secs / 1e6:,.1f} MB/s",
                end="",
                file=sys.stderr,
                flush=True,
            )


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def perf_produce(args: argparse.Namespace) -> int:
    from confluent_kafka import Producer

    acks = "all" if args.acks in ("all", "-1") else args.acks
    payload = bytes(args.record_size)
    latencies: list[float] = []
    failed = [0]
    now = time.perf_counter

    # One producer-level callback and librdkafka's own per-message latency: no Python
    # closure per record, so the tool measures the broker more than itself.
    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failed[0] += 1
        else:
            latencies.append(msg.latency() or 0.0)

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap_server,
            "acks": acks,
            "compression.type": args.compression,
            "linger.ms": args.linger_ms,
            "batch.size": args.batch_size,
            "queue.buffering.max.messages": 1_000_000,
            "on_delivery": delivered,
        }
    )
    progress = _Progress("produce")
    produce = producer.produce
    for i in range(args.records):
        while True:
            try:
                produce(args.topic, payload)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
            progress.tick(i, i * args.record_size)
    producer.flush(120)
    elapsed = now() - progress.start
    progress.tick(args.records, args.records * args.record_size, force=True)
    lat = sorted(latencies)
    print(file=sys.stderr)
    print(
        f"{args.records:,} records in {elapsed:.2f} s: {args.records / elapsed:,.0f} records/s, "
        f"{args.records * args.record_size / elapsed / 1e6:,.1f} MB/s; latency ms "
        f"p50 {_percentile(lat, 0.5) * 1e3:.1f} p95 {_percentile(lat, 0.95) * 1e3:.1f} "
        f"p99 {_percentile(lat, 0.99) * 1e3:.1f} max {(lat[-1] if lat else 0) * 1e3:.1f}; "
        f"failed {failed[0]}"
    )
    return 1 if failed[0] else 0


def perf_consume(args: argparse.Namespace) -> int:
    return _consume_raw(args) if args.raw else _consume_client(args)


def _consume_client(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_server,
            "group.id": "edplog-perf",
            "enable.auto.commit": False,
            "fetch.max.bytes": args.fetch_bytes,
            # librdkafka >= 2.3 stops fetching for fetch.queue.backoff.ms (1 s by default)
            # whenever more than queued.min.messages (100,000) records are queued locally,
            # and does not resume early when the queue drains: with small records one fetch
            # passes that mark, so reading a backlog would run in one-second steps.
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.assign([TopicPartition(args.topic, 0, 0)])
    progress = _Progress("consume")
    count = nbytes = 0
    idle_deadline = time.monotonic() + 10
    while count < args.records and time.monotonic() < idle_deadline:
        for msg in consumer.consume(10_000, 0.5):
            if msg.error() is None:
                count += 1
                nbytes += len(msg.value() or b"")
                idle_deadline = time.monotonic() + 10
        progress.tick(count, nbytes)
    elapsed = time.perf_counter() - progress.start
    consumer.close()
    print(file=sys.stderr)
    print(
        f"{count:,} records in {elapsed:.2f} s: {count / elapsed:,.0f} records/s, "
        f"{nbytes / elapsed / 1e6:,.1f} MB/s"
    )
    return 0 if count >= args.records else 1


def _consume_raw(args: argparse.Namespace) -> int:
    """Fetch from offset 0 with one request in flight into one reused buffer; records stay
    undecoded (one native header scan per response finds the next offset and the count)."""
    buffer = ReceiveBuffer(args.fetch_bytes + 65536)
    offset = count = nbytes = 0
    progress = _Progress("raw fetch")
    empty = 0
    try:
        with Client(args.bootstrap_server, client_id="edplog-perf", timeout_s=30) as client:
            position = FetchPosition(args.topic, 0, 0, partition_max_bytes=args.fetch_bytes)
            while count < args.records and empty < 20:
                (part,) = client.fetch(
                    [position._replace(offset=offset)],
                    max_wait_ms=500,
                    max_bytes=args.fetch_bytes,
                    buffer=buffer,
                )
                part.raise_for_error()
                span = scan_records(part.records)
                if span.last_offset < offset:
                    empty += 1
                    continue
                empty = 0
                count += span.records
                nbytes += span.valid_bytes
                offset = span.last_offset + 1
                progress.tick(count, nbytes)
    except ClientError as exc:
        print(file=sys.stderr)
        print(f"raw fetch: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - progress.start
    print(file=sys.stderr)
    print(
        f"{count:,} records ({nbytes / 1e6:,.1f} MB) in {elapsed:.2f} s: "
        f"{count / elapsed:,.0f} records/s, {nbytes / elapsed / 1e6:,.1f} MB/s"
    )
    return 0 if count >= args.records else 1
