"""edplog's broker over the Kafka wire, driven by the client a Kafka user already has.

The broker runs as a child process (``python -m edplog broker --listen 127.0.0.1:0``) and is
stopped by PID. Figures, per record size:

- produce with confluent-kafka (librdkafka) at acks=1 and at acks=-1 (the broker fsyncs before
  it acknowledges), lz4, linger.ms 5, 1 MiB batches: the setting perf.md goal 2 names;
- consume with confluent-kafka (``consume(num_messages=10000)``, partition assigned directly so
  no group rebalance is timed) with ``fetch.queue.backoff.ms`` 10: librdkafka >= 2.3 stops
  fetching for that long (1000 ms by default) whenever more than
  ``queued.min.messages`` (100,000) records wait in its local queue, which at 100 B held the
  consumer to ~125 k rec/s, measuring the client's pause rather than the broker;
- raw fetch: Fetch v4 requests from edplog's own client (:mod:`edplog.client`), responses
  read into one reused buffer and only their batch headers scanned (never a record decoded),
  to measure what the broker can serve;
- end-to-end latency (produce -> consume, send time carried in the payload) at half of the
  acks=1 rate measured just before, with linger.ms 1 so the batching delay does not dominate,
  and again at 10 % of that rate. The consumer runs in its own process: with producer and
  consumer in one Python process the tail measured that process being overloaded (~106 %
  CPU), not the broker. Both processes read CLOCK_MONOTONIC (``time.monotonic_ns``), which
  is system-wide on Linux.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from typing import Any

from ...client import Client, FetchPosition, ReceiveBuffer
from . import data
from .model import Budget, Context, Sample, Spec
from .procs import Server, ServerError

READY = r"(?:listening|ready|serving)\D*?(127\.0\.0\.1):(\d+)"
FETCH_PARTITION_MAX_BYTES = 8 << 20
FETCH_MAX_BYTES = 64 << 20
# The raw fetch figure has always been Fetch v4 (the first with RecordBatch v2); kept so runs
# stay comparable.
FETCH_VERSION = {"Fetch": 4}
LATENCY_LINGER_MS = 1
# librdkafka >= 2.3 pauses fetching for fetch.queue.backoff.ms (default 1000) whenever its
# local queue holds more than queued.min.messages; 10 ms keeps the fetcher busy.
FETCH_QUEUE_BACKOFF_MS = 10
LATENCY_FETCH_WAIT_MS = 100
# A second latency figure at light load: on a small machine the clients' own CPU at 50 % of
# the producer-alone peak can fill every core, and this one shows the broker's share.
LOW_LOAD = 0.1


def _producer(
    bootstrap: str, acks: str, linger_ms: int = 5, extra: dict[str, Any] | None = None
) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            **(extra or {}),
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "compression.type": "lz4",
            "linger.ms": linger_ms,
            "batch.size": 1 << 20,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1 << 20,
            "delivery.report.only.error": True,
            "on_delivery": _Errors.record,
            "message.timeout.ms": 30_000,
        }
    )


class _Errors:
    """Failed deliveries (the only delivery reports requested, so success costs nothing)."""

    count = 0
    last = ""

    @classmethod
    def record(cls, err: Any, msg: Any) -> None:
        if err is not None:
            cls.count += 1
            cls.last = str(err)


def create_topic(bootstrap: str, topic: str) -> None:
    """One partition, one replica; an existing topic is fine."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)
    try:
        futures[topic].result(15)
    except Exception as exc:  # noqa: BLE001 - TOPIC_ALREADY_EXISTS, or auto-create will do
        if "exist" not in str(exc).lower():
            raise RuntimeError(f"cannot create topic {topic}: {exc}") from exc


def produce(
    bootstrap: str,
    topic: str,
    acks: str,
    size: int,
    budget: Budget,
    extra: dict[str, Any] | None = None,
) -> Sample:
    """Produce from the payload pool until the cap, then flush; time includes the flush.
    ``extra`` adds client settings (the security family's TLS ones)."""
    pool = data.payloads(size)
    cap = budget.records(size)
    producer = _producer(bootstrap, acks, extra=extra)
    errors_before = _Errors.count
    n = 0
    start = time.perf_counter()
    deadline = start + budget.seconds
    send = producer.produce
    while n < cap and time.perf_counter() < deadline:
        for i in range(1024):
            value = pool[i]
            while True:
                try:
                    send(topic, value)
                    break
                except BufferError:
                    producer.poll(0.001)
        n += 1024
        producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - start
    failed = _Errors.count - errors_before
    if left or failed:
        raise RuntimeError(f"{left} undelivered and {failed} failed deliveries ({_Errors.last})")
    return Sample(n, n * size, elapsed)


def consume(bootstrap: str, topic: str, size: int, total: int, budget: Budget) -> Sample:
    """Read the topic from offset 0; the clock starts at the first non-empty batch."""
    from confluent_kafka import Consumer, TopicPartition

    cap = min(total, budget.records(size))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"perf-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 8 << 20,
            "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    n = 0
    start = 0.0
    give_up = time.perf_counter() + 30
    try:
        while n < cap:
            msgs = consumer.consume(num_messages=10_000, timeout=1.0)
            now = time.perf_counter()
            if not msgs:
                if now > give_up:
                    raise TimeoutError(f"consumer got {n} of {cap} records")
                continue
            bad = [m.error() for m in msgs if m.error()]
            if bad:
                raise RuntimeError(f"consume error: {bad[0]}")
            if not start:
                start = now
                deadline = start + budget.seconds
            n += len(msgs)
            if now > deadline:
                break
        elapsed = time.perf_counter() - start
    finally:
        consumer.close()
    return Sample(n, n * size, elapsed)


def raw_fetch(
    host: str,
    port: int,
    topic: str,
    size: int,
    budget: Budget,
    tls: ssl.SSLContext | None = None,
) -> Sample:
    """Fetch from offset 0 to the end (wrapping) until the byte or time cap.

    edplog's own client, held to Fetch v4 as before; one request in flight, every response
    read into one reused buffer, records never decoded (a native header scan finds the next
    offset). With ``tls`` the client's socket is wrapped in it (the security family).
    """
    buffer = ReceiveBuffer(80 << 20)
    moved = records = 0
    offset = 0
    sock = None
    if tls is not None:
        raw = socket.create_connection((host, port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = tls.wrap_socket(raw, server_hostname=host)
    client = Client(
        f"{host}:{port}",
        client_id="edplog-perf",
        timeout_s=30,
        max_versions=FETCH_VERSION,
        sock=sock,
    )
    with client:
        client.api_versions()  # negotiated before the clock starts
        position = FetchPosition(topic, 0, 0, partition_max_bytes=FETCH_PARTITION_MAX_BYTES)
        start = time.perf_counter()
        deadline = start + budget.seconds
        while moved < budget.max_bytes and time.perf_counter() < deadline:
            (part,) = client.fetch(
                [position._replace(offset=offset)],
                max_wait_ms=0,
                max_bytes=FETCH_MAX_BYTES,
                buffer=buffer,
            )
            if part.error_code:
                raise RuntimeError(f"fetch error code {part.error_code} at offset {offset}")
            nxt = part.next_offset()
            if nxt == offset:
                raise RuntimeError(f"fetch returned no complete batch at offset {offset}")
            records += nxt - offset
            moved += len(part.records)
            # At the end of the log start over (the data stays page-cached); the high
            # watermark says so, which saves an empty request per pass.
            offset = 0 if nxt >= part.high_watermark else nxt
        elapsed = time.perf_counter() - start
    return Sample(records, moved, elapsed)


def _latency_consumer(bootstrap: str, topic: str) -> None:
    """Child process: time every record from its embedded send stamp; report percentiles.

    Talks to the parent by lines: prints "ready" once positioned at the end of the partition,
    reads the number of records the parent sent from stdin, and prints one JSON object (the
    count and percentiles, or {"error": text}).
    """
    import json
    import select

    import numpy as np
    from confluent_kafka import Consumer, TopicPartition

    stamp = struct.Struct(">q")
    unpack = stamp.unpack_from
    clock = time.monotonic_ns
    stdin = sys.stdin.fileno()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lat-{time.time_ns()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": LATENCY_FETCH_WAIT_MS,
            "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
            "auto.offset.reset": "latest",
            "enable.partition.eof": False,
        }
    )
    result: dict[str, Any]
    try:
        # Start at the current end, as an explicit offset: a logical OFFSET_END stays
        # unresolved (position -1001) until the first record arrives.
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, high)])
        consumer.poll(0.05)  # connect and issue the first fetch before the parent starts
        print("ready", flush=True)
        samples: list[int] = []
        add = samples.append
        expected = -1
        give_up = time.monotonic() + 600  # hard bound; the parent's count normally ends it
        while time.monotonic() < give_up:
            if expected < 0 and select.select([stdin], [], [], 0)[0]:
                line = sys.stdin.readline()
                expected = int(line) if line.strip() else 0  # EOF: the parent gave up
                give_up = min(give_up, time.monotonic() + 10)
            if 0 <= expected <= len(samples):
                break
            # consume(n, timeout) waits for n messages or the timeout, which would add up to
            # the timeout to every latency; poll() wakes on the first message, then drain.
            first = consumer.poll(0.05)
            if first is None:
                continue
            for m in [first, *consumer.consume(num_messages=10_000, timeout=0)]:
                if not m.error():
                    add(clock() - unpack(m.value())[0])
        result = {"count": len(samples)}
        if samples:
            ms = np.asarray(samples, dtype=np.int64) / 1e6
            pct = np.percentile(ms, [50, 99, 99.9])
            result.update(p50=float(pct[0]), p99=float(pct[1]), **{"p99.9": float(pct[2])})
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        consumer.close()
    print(json.dumps(result), flush=True)


def _read_line(proc: subprocess.Popen[str], timeout_s: float, what: str) -> str:
    assert proc.stdout is not None
    import select

    if not select.select([proc.stdout], [], [], timeout_s)[0]:
        raise TimeoutError(f"the latency consumer did not {what} within {timeout_s:g} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the latency consumer exited (status {proc.wait()}) before {what}")
    return line.strip()


def latency(bootstrap: str, topic: str, size: int, rate: float, budget: Budget) -> Sample:
    """Paced produce at ``rate`` records/s; a consumer in its own process times each record."""
    import json

    pool = data.payloads(size)
    stamp = struct.Struct(">q")
    code = (
        "import sys; from edplog.perf.compare.broker import _latency_consumer; "
        "_latency_consumer(sys.argv[1], sys.argv[2])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, bootstrap, topic],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    try:
        ready = _read_line(proc, 60, "get ready")
        if ready != "ready":
            raise RuntimeError(f"latency consumer: {ready}")
        producer = _producer(bootstrap, "1", linger_ms=LATENCY_LINGER_MS)
        per_ms = max(1, int(rate / 1000))
        sent = 0
        start = time.perf_counter()
        end = start + budget.latency_seconds
        tick = start
        i = 0
        clock = time.monotonic_ns
        pack = stamp.pack
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            if now < tick:
                time.sleep(tick - now)
            for _ in range(per_ms):
                producer.produce(topic, pack(clock()) + pool[i & 4095][8:])
                i += 1
            sent += per_ms
            producer.poll(0)
            tick += 0.001
        left = producer.flush(30)
        duration = time.perf_counter() - start
        if left:
            raise RuntimeError(f"{left} records undelivered after the latency run")
        proc.stdin.write(f"{sent}\n")
        proc.stdin.flush()
        result = json.loads(_read_line(proc, 30, "report"))
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()  # by its own PID
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
    if "error" in result:
        raise RuntimeError(f"latency consumer: {result['error']}")
    got = int(result["count"])
    if got < sent * 0.99:
        raise RuntimeError(f"latency run received {got} of {sent} records")
    lat = {
        "p50": result["p50"],
        "p99": result["p99"],
        "p99.9": result["p99.9"],
        "target_rate": float(rate),
        "achieved_rate": sent / duration,
    }
    return Sample(got, got * size, duration, latency_ms=lat)


def _specs(size: int) -> dict[str, Spec]:
    client = "confluent-kafka (librdkafka)"
    batching = "lz4, linger.ms 5, batch.size 1 MiB"
    return {
        "produce1": Spec(
            "broker.produce.acks1",
            "broker",
            "produce",
            size,
            batching,
            "acks=1, page cache",
            client,
        ),
        "produce_all": Spec(
            "broker.produce.acks_all",
            "broker",
            "produce",
            size,
            batching,
            "acks=-1, fsync before ack",
            client,
        ),
        "consume": Spec(
            "broker.consume",
            "broker",
            "consume",
            size,
            "consume(num_messages=10000)",
            "page cache",
            client,
        ),
        "fetch": Spec(
            "broker.raw_fetch",
            "broker",
            "raw Fetch v4",
            size,
            "8 MiB per partition, 1 in flight",
            "page cache",
            "edplog.client, no decode",
        ),
        "latency": Spec(
            "broker.e2e_latency",
            "broker",
            "end-to-end latency",
            size,
            f"lz4, linger.ms {LATENCY_LINGER_MS}, 50 % of acks=1 peak",
            "acks=1",
            client,
        ),
        "latency_low": Spec(
            "broker.e2e_latency.low",
            "broker",
            "end-to-end latency (light load)",
            size,
            f"lz4, linger.ms {LATENCY_LINGER_MS}, {LOW_LOAD * 100:.0f} % of acks=1 peak",
            "acks=1",
            client,
        ),
    }


def run(ctx: Context) -> None:
    """Start the broker once; all figures at each record size, then stop it by PID."""
    all_specs = [spec for size in ctx.record_sizes for spec in _specs(size).values()]
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        for spec in all_specs:
            ctx.skip(spec, "confluent-kafka is not installed (pip install 'edplog[bench]')")
        return
    datadir = os.path.join(ctx.workdir, "broker")
    os.makedirs(datadir, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "edplog",
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        datadir,
    ]
    try:
        server = Server(argv, "edplog broker", ready_pattern=READY, timeout_s=30)
        server.__enter__()
    except (ServerError, OSError) as exc:
        for spec in all_specs:
            ctx.skip(spec, f"the edplog broker did not start: {exc}")
        ctx.progress.say(f"broker: skipped, the edplog broker did not start: {exc}")
        return
    try:
        assert server.match is not None
        host, port = server.match.group(1), int(server.match.group(2))
        bootstrap = f"{host}:{port}"
        ctx.server_pids.append(server.pid)
        for size in ctx.record_sizes:
            _run_size(ctx, size, bootstrap, host, port)
    finally:
        if server.pid in ctx.server_pids:
            ctx.server_pids.remove(server.pid)
        server.stop()


def _run_size(ctx: Context, size: int, bootstrap: str, host: str, port: int) -> None:
    specs = _specs(size)
    topics = {k: f"perf-{k}-{size}" for k in ("acks1", "acksall", "latency")}
    try:
        for topic in topics.values():
            create_topic(bootstrap, topic)
    except RuntimeError as exc:
        for spec in specs.values():
            ctx.skip(spec, str(exc))
        return
    peak = ctx.measure(
        specs["produce1"], lambda b: produce(bootstrap, topics["acks1"], "1", size, b)
    )
    ctx.measure(
        specs["produce_all"], lambda b: produce(bootstrap, topics["acksall"], "all", size, b)
    )
    if not peak.ok:
        for key in ("consume", "fetch", "latency", "latency_low"):
            ctx.skip(specs[key], "needs the acks=1 produce figure, which failed")
        return
    total = sum(s.records for s in peak.samples)
    ctx.measure(specs["consume"], lambda b: consume(bootstrap, topics["acks1"], size, total, b))
    ctx.measure(specs["fetch"], lambda b: raw_fetch(host, port, topics["acks1"], size, b))
    rate = peak.records_per_s()[0] / 2
    ctx.measure(specs["latency"], lambda b: latency(bootstrap, topics["latency"], size, rate, b))
    low = peak.records_per_s()[0] * LOW_LOAD
    ctx.measure(specs["latency_low"], lambda b: latency(bootstrap, topics["latency"], size, low, b))
