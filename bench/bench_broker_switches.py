"""What the broker's always-on work costs, end to end: the same broker with one switch on and
off, driven in alternation by confluent-kafka (librdkafka) producers and by raw Fetch.

Two switches of ``BrokerConfig`` exist for this measurement only:

- ``validate``: ``validate_compressed_records``, the walk of every record of a compressed
  batch before a produce is acknowledged. Produce at acks=1, lz4 and zstd, 100 B and 1 KiB
  JSON-ish values (the payloads of ``edplog perf compare``), linger.ms 5, batch.size 1 MiB.
- ``acls``: ``authorizer_enabled``, ACLs on (``authorizer.class.name``): the broker with it
  starts with 1,004 ACLs, four that allow the benchmark's client everything on its topics and
  the cluster and 1,000 for other users on other topics; the same cases as ``metrics``.
- ``metrics``: ``metrics_enabled``, the per-request metrics. Produce of 100 B values (lz4)
  at acks=1 and acks=-1 (the broker fsyncs before it acknowledges), and raw Fetch v4 of the
  acks=1 topic with :mod:`edplog.client` (one request in flight, 8 MiB per partition, records
  never decoded), as ``edplog perf consume --raw`` and ``perf compare`` fetch.

Two brokers run at once, one with the switch on and one off, each with its own data
directory; every case runs ``--runs`` pairs, alternating which broker goes first, so drift
and the other tenants of this shared machine hit both. A run produces (or fetches) until
``--mib`` MiB of values or ``--seconds``, whichever comes first; each broker gets one
untimed warm-up run per case. Reported per case: records/s on and off (medians, min-max),
the ratio on/off of medians and the median of the per-pair ratios (min-max), the broker's
CPU per record, and how much of the machine other processes used meanwhile.

``--where thread`` (the default) runs both brokers in this process
(``edplog.broker.runner.BackgroundBroker``): the CPU figure is the broker's event-loop thread
(where every request is parsed, validated, appended and answered), which shares the GIL with
the producer loop. ``--where process`` runs each broker in a child process (the same
BackgroundBroker and ``BrokerConfig``, until SIGTERM sent to its PID): the CPU figure is the
whole broker process, and the client has the GIL to itself.

Before the runs, each broker is sent an lz4 batch with a valid CRC and garbage records (only
the walk refuses it); after them, each reports the walk setting of its partitions and the
requests its metrics recorded. The figures are printed only if both show each switch in the
state the run claims.

Run: .venv-test/bin/python bench/bench_broker_switches.py validate [--where process]
     .venv-test/bin/python bench/bench_broker_switches.py metrics [--where process]
"""

from __future__ import annotations

import argparse
import glob
import json
import mmap
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

SWITCHES = {
    "validate": "validate_compressed_records",
    "metrics": "metrics_enabled",
    "acls": "authorizer_enabled",
}
#: ACLs of the broker with ``authorizer_enabled``: what its clients need (everything on the
#: benchmark's topics and the cluster, for User:ANONYMOUS) among unrelated ones for others.
OTHER_ACLS = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY = re.compile(r"ready on (127\.0\.0\.1):(\d+)")
WARMUP_FRACTION = 0.25
BATCH_BYTES = 1 << 20  # producer batch.size, as perf compare sets it
PROBE_TOPIC = "switch-probe"
STATUS_FILE = "switch-status.json"
LINGER_MS = 5


def cpu_seconds(stat_path: str) -> float:
    """utime + stime of a process or thread from its /proc stat file (0 if it is gone)."""
    try:
        with open(stat_path, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (float(fields[11]) + float(fields[12])) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        parts = [float(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / CLK_TCK, sum(parts) / CLK_TCK


# ---- the brokers ----------------------------------------------------------------------------


def start_broker(data_dir: str, switches: dict[str, bool]) -> Any:
    """A BackgroundBroker with these BrokerConfig switches, each checked to be in effect."""
    from edplog.broker.config import BrokerConfig
    from edplog.broker.runner import BackgroundBroker

    config = BrokerConfig(data_dir=data_dir, port=0)
    for attr, on in switches.items():
        if attr not in SWITCHES.values():
            raise ValueError(f"not a switch: {attr}")
        setattr(config, attr, on)
    if config.authorizer_enabled:
        write_acls(data_dir)
    broker = BackgroundBroker(config).start()
    if broker.broker is None:
        raise RuntimeError("the broker did not start")
    # Broker.start does not hand validate_compressed_records to its ReplicaManager
    # (src/edplog/broker/broker.py, the ReplicaManager(...) call), so the switch never turned
    # the walk off; set it where partitions copy it from (no-op once the config reaches it).
    # status() and probe_walk() check that it took effect.
    replicas = broker.broker.replicas
    if replicas is None:
        raise RuntimeError("the broker has no replica manager")
    replicas.validate_compressed_records = config.validate_compressed_records
    for partition in replicas.all_partitions():
        partition.log.check_compressed_records = config.validate_compressed_records
    return broker


def write_acls(data_dir: str) -> None:
    """acls.json for the broker with ACLs on (read when it starts)."""
    from edplog.security.acl import (
        OPERATION_ALL,
        AclBinding,
        PatternType,
        Permission,
        ResourceType,
    )

    me = "User:ANONYMOUS"
    acls = [
        AclBinding(
            ResourceType.TOPIC,
            prefix,
            PatternType.PREFIXED,
            me,
            "*",
            OPERATION_ALL,
            Permission.ALLOW,
        )
        for prefix in ("m-", "v-", "switch-")
    ]
    acls.append(
        AclBinding(
            ResourceType.CLUSTER,
            "kafka-cluster",
            PatternType.LITERAL,
            me,
            "*",
            OPERATION_ALL,
            Permission.ALLOW,
        )
    )
    acls += [
        AclBinding(
            ResourceType.TOPIC,
            f"team-{i}",
            PatternType.LITERAL,
            f"User:u{i}",
            "*",
            4,
            Permission.ALLOW,
        )
        for i in range(OTHER_ACLS)
    ]
    os.makedirs(data_dir, exist_ok=True)
    document = {"version": 0, "acls": [a.to_json() for a in acls]}
    with open(os.path.join(data_dir, "acls.json"), "w", encoding="utf-8") as f:
        json.dump(document, f)


def status(broker: Any) -> dict[str, Any]:
    """What the switches did: the walk setting of every open partition, and the requests
    the metrics recorded."""
    inner = broker.broker
    recorded = sum(
        sample.value
        for family in inner.metrics.registry.collect()
        if family.name == "edplog_requests"
        for sample in family.samples
        if sample.name == "edplog_requests_total"
    )
    walks = sorted({p.log.check_compressed_records for p in inner.replicas.all_partitions()})
    acls = inner.services.acls
    return {
        "walk": walks,
        "requests_recorded": recorded,
        "acls": 0 if acls is None else len(acls.authorizer.acls),
    }


def probe_walk(bootstrap: str) -> bool:
    """Whether the broker walks compressed records: it is sent an lz4 batch with a valid CRC
    and garbage records, which only the walk refuses (CORRUPT_MESSAGE)."""
    from edplog import _native
    from edplog.client import Client, KafkaError
    from edplog.codecs import codec_id, compress
    from edplog.errors import ErrorCode
    from edplog.perf.compare.broker import create_topic
    from edplog.records import build_batch

    good = build_batch([(b"k", b"v")] * 2, compression="lz4")
    bad = bytearray(good[:61] + compress(codec_id("lz4"), bytes(range(64)) * 3))
    bad[8:12] = (len(bad) - 12).to_bytes(4, "big")  # batchLength
    bad[17:21] = _native.crc32c(bytes(bad[21:])).to_bytes(4, "big")  # CRC over attributes..
    create_topic(bootstrap, PROBE_TOPIC)
    with Client(bootstrap, client_id="switch-probe") as client:
        try:
            client.produce(PROBE_TOPIC, 0, bytes(bad), acks=1)
        except KafkaError as exc:
            if exc.error_code != ErrorCode.CORRUPT_MESSAGE:
                raise
            return True
    return False


class ThreadBroker:
    """A broker in this process; its CPU is that of its event-loop thread."""

    def __init__(self, data_dir: str, **switches: bool) -> None:
        before = set(threading.enumerate())
        self.broker = start_broker(data_dir, switches)
        (loop_thread,) = [
            t for t in threading.enumerate() if t not in before and t.name == "edplog-broker"
        ]
        self.stat_path = f"/proc/self/task/{loop_thread.native_id}/stat"
        self.pids: list[int] = []  # this process is counted as ours anyway
        self.bootstrap = self.broker.bootstrap
        self.status: dict[str, Any] = {}

    def cpu(self) -> float:
        return cpu_seconds(self.stat_path)

    def requests(self) -> float:
        return float(status(self.broker)["requests_recorded"])

    def stop(self) -> None:
        self.status = status(self.broker)
        self.broker.stop()


def _serve_child(data_dir: str, switches_json: str) -> int:
    """Child process: one broker until SIGTERM; then its status() goes to STATUS_FILE."""
    # Blocked before the broker's threads start (they inherit the mask), so that sigwait
    # below is where SIGTERM arrives.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    broker = start_broker(data_dir, json.loads(switches_json))
    print(f"ready on {broker.bootstrap}", flush=True)
    # Nobody reads the pipe after this line: anything printed later goes to stderr, so a
    # full pipe can never stall the broker.
    os.dup2(2, 1)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    with open(os.path.join(data_dir, STATUS_FILE), "w", encoding="utf-8") as f:
        json.dump(status(broker), f)
    broker.stop()
    return 0


class ProcessBroker:
    """A broker in a child process (stopped by its PID); its CPU is the whole process."""

    def __init__(self, data_dir: str, **switches: bool) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        argv = [sys.executable, os.path.abspath(__file__), "serve", data_dir, json.dumps(switches)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = READY.search(line)
        if not m:
            self.stop()
            raise RuntimeError(f"the broker did not start: {line!r}")
        self.bootstrap = f"{m.group(1)}:{m.group(2)}"
        self.pids = [self.proc.pid]
        self.stat_path = f"/proc/{self.proc.pid}/stat"
        self.status: dict[str, Any] = {}

    def cpu(self) -> float:
        return cpu_seconds(self.stat_path)

    def requests(self) -> float:
        return -1.0  # the child's registry is read only at stop

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM to this PID: a graceful stop
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        try:
            with open(os.path.join(self.data_dir, STATUS_FILE), encoding="utf-8") as f:
                self.status = json.load(f)
        except OSError:
            self.status = {}


# ---- the workloads --------------------------------------------------------------------------


@dataclass
class Run:
    """One timed run against one broker."""

    records: int
    seconds: float
    broker_cpu_s: float
    foreign_share: float  # of the whole machine, used by processes other than ours
    requests: float = -1.0  # requests the broker's metrics recorded meanwhile (-1: unknown)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


class Errors:
    """Failed deliveries (the only delivery reports requested, so success costs nothing)."""

    count = 0
    last = ""

    @classmethod
    def record(cls, err: Any, msg: Any) -> None:
        if err is not None:
            cls.count += 1
            cls.last = str(err)


def producer(bootstrap: str, codec: str, acks: str) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "compression.type": codec,
            "linger.ms": LINGER_MS,
            "batch.size": BATCH_BYTES,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1 << 20,
            "delivery.report.only.error": True,
            "on_delivery": Errors.record,
            "message.timeout.ms": 60_000,
        }
    )


def produce(
    bootstrap: str, topic: str, codec: str, acks: str, size: int, cap_bytes: int, seconds: float
) -> tuple[int, float]:
    """Produce the payload pool until cap_bytes of values or seconds, then flush; returns
    (records, seconds), the clock started once connected and stopped after the flush."""
    from edplog.perf.compare import data

    pool = data.payloads(size)
    cap = max(len(pool), cap_bytes // size)
    p = producer(bootstrap, codec, acks)
    p.list_topics(topic, timeout=10)  # connected, and the topic known, before the clock
    before = Errors.count
    send, poll = p.produce, p.poll
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < cap and time.perf_counter() < deadline:
        # The whole pool (4096 distinct values), as bench_produce_validation.py cycles it:
        # with 1024 of them, zstd's window found each value 7 times in a 100 B batch.
        for value in pool:
            while True:
                try:
                    send(topic, value)
                    break
                except BufferError:
                    poll(0.001)
        n += len(pool)
        poll(0)
    left = p.flush(60)
    elapsed = time.perf_counter() - start
    failed = Errors.count - before
    if left or failed:
        raise RuntimeError(f"{left} undelivered and {failed} failed deliveries ({Errors.last})")
    return n, elapsed


def fetch(
    bootstrap: str, topic: str, size: int, cap_bytes: int, seconds: float
) -> tuple[int, float]:
    """Raw Fetch v4 from offset 0 to the end, wrapping; returns (records, seconds), the
    clock started once versions are negotiated."""
    from edplog.perf.compare.broker import raw_fetch
    from edplog.perf.compare.model import Budget

    host, port = bootstrap.rsplit(":", 1)
    sample = raw_fetch(host, int(port), topic, size, Budget("switch", seconds, cap_bytes, 0.0))
    return sample.records, sample.seconds


def timed(broker: Any, ours: list[str], work: Callable[[], tuple[int, float]]) -> Run:
    """One run; the broker's CPU and the machine's are read around the whole call (its
    connection setup is a few requests), the rate from the run's own clock."""
    busy0, total0 = machine_busy()
    ours0 = sum(cpu_seconds(p) for p in ours)
    cpu0, requests0 = broker.cpu(), broker.requests()
    records, elapsed = work()
    cpu1, requests1 = broker.cpu(), broker.requests()
    busy1, total1 = machine_busy()
    foreign = (busy1 - busy0) - (sum(cpu_seconds(p) for p in ours) - ours0)
    share = max(0.0, foreign / (total1 - total0)) if total1 > total0 else 0.0
    requests = requests1 - requests0 if requests0 >= 0 else -1.0
    return Run(records, elapsed, cpu1 - cpu0, share, requests)


# ---- cases and the report -------------------------------------------------------------------


@dataclass
class Case:
    name: str
    kind: str  # produce or fetch
    size: int
    codec: str = "lz4"
    acks: str = "1"
    topic: str = ""
    runs: dict[bool, list[Run]] = field(default_factory=lambda: {True: [], False: []})
    batch: str = ""


def cases_for(switch: str, sizes: list[int], codecs: list[str]) -> list[Case]:
    if switch == "validate":
        return [
            Case(f"{codec} {size} B acks=1", "produce", size, codec, "1", f"v-{codec}-{size}")
            for codec in codecs
            for size in sizes
        ]
    return [  # metrics and acls
        Case("produce 100 B acks=1", "produce", 100, "lz4", "1", "m-acks1"),
        Case("produce 100 B acks=-1", "produce", 100, "lz4", "all", "m-acksall"),
        Case("raw fetch 100 B", "fetch", 100, topic="m-acks1"),
    ]


def batch_shape(data_dir: str, topic: str) -> str:
    """Records and bytes per batch as stored: what the producer sent."""
    from edplog.records import scan_batches, whole_batches

    batches = records = stored = 0
    for path in sorted(
        glob.glob(os.path.join(data_dir, "**", f"{topic}-0", "*.log"), recursive=True)
    ):
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                continue
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                cut = whole_batches(m)
                view = memoryview(m)[:cut]
                try:
                    got = scan_batches(view)
                finally:
                    view.release()
        batches += got[0]
        records += got[1]
        stored += cut
    if not batches:
        return "no batches"
    return f"{records / batches:,.0f} records, {stored / batches / 1024:,.0f} KiB stored per batch"


def _spread(values: list[float], fmt: str) -> str:
    low, mid, high = (format(v, fmt) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid} ({low}-{high})"


def report(
    switch: str, where: str, cases: list[Case], runs: int, out: Callable[[str], None]
) -> None:
    out(
        f"switch {SWITCHES[switch]}, brokers in "
        f"{'this process (BackgroundBroker)' if where == 'thread' else 'child processes'}, "
        f"{runs} alternating run pairs per case, medians (min-max)"
    )
    cpu_what = "event-loop thread" if where == "thread" else "process"
    header = (
        f"{'case':<24} {'on rec/s':>24} {'off rec/s':>24} {'on/off':>7} "
        f"{'on/off pairs':>20} {'CPU us/rec on':>14} {'off':>6} {'others':>7} {'req/s on':>9}"
    )
    out(header)
    for case in cases:
        on, off = case.runs[True], case.runs[False]
        if not on or not off:
            out(f"{case.name:<24} (no runs)")
            continue
        on_rate = [r.records_per_s for r in on]
        off_rate = [r.records_per_s for r in off]
        pairs = [a / b for a, b in zip(on_rate, off_rate, strict=True)]
        cpu_on = statistics.median(r.broker_cpu_s / r.records * 1e6 for r in on)
        cpu_off = statistics.median(r.broker_cpu_s / r.records * 1e6 for r in off)
        others = statistics.mean(r.foreign_share for r in on + off)
        counted = [r.requests / r.seconds for r in on if r.requests >= 0]
        req_rate = f"{statistics.median(counted):,.0f}" if counted else "-"
        out(
            f"{case.name:<24} {_spread(on_rate, ',.0f'):>24} {_spread(off_rate, ',.0f'):>24} "
            f"{statistics.median(on_rate) / statistics.median(off_rate):>6.3f}x "
            f"{_spread(pairs, '.3f'):>20} {cpu_on:>14.2f} {cpu_off:>6.2f} {others:>6.0%} "
            f"{req_rate:>9}"
        )
    out(
        f"CPU: the broker's {cpu_what}, per record (10 ms ticks); others: share of the "
        "machine used by other processes during the runs; req/s on: requests the broker with "
        "the switch on recorded per second (thread mode only)"
    )
    for case in cases:
        if case.batch:
            out(f"{case.name}: {case.batch}")


@contextmanager
def brokers(where: str, root: str, attr: str) -> Iterator[dict[bool, Any]]:
    make = ThreadBroker if where == "thread" else ProcessBroker
    started: dict[bool, Any] = {}
    try:
        for on in (True, False):
            started[on] = make(os.path.join(root, "on" if on else "off"), **{attr: on})
        yield started
    finally:
        for broker in started.values():
            broker.stop()


def run_case(
    case: Case, both: dict[bool, Any], args: argparse.Namespace, progress: Callable[[str], None]
) -> None:
    cap = args.mib << 20
    # This process and every broker's: what is left of the machine's busy time is others'.
    ours = [f"/proc/{os.getpid()}/stat"] + [
        f"/proc/{p}/stat" for b in both.values() for p in b.pids
    ]

    def work(broker: Any, cap_bytes: int, seconds: float) -> Callable[[], tuple[int, float]]:
        if case.kind == "produce":
            return lambda: produce(
                broker.bootstrap, case.topic, case.codec, case.acks, case.size, cap_bytes, seconds
            )
        return lambda: fetch(broker.bootstrap, case.topic, case.size, cap_bytes, seconds)

    for on in (True, False):  # warm-up: connections, codecs, the page cache
        timed(
            both[on],
            ours,
            work(both[on], int(cap * WARMUP_FRACTION), args.seconds * WARMUP_FRACTION),
        )
    for i in range(args.runs):
        for on in (True, False) if i % 2 == 0 else (False, True):
            run = timed(both[on], ours, work(both[on], cap, args.seconds))
            case.runs[on].append(run)
            progress(
                f"  {case.name} {'on ' if on else 'off'} run {i + 1}/{args.runs}: "
                f"{run.records_per_s:,.0f} rec/s"
            )


def switch_not_in_effect(switch: str, both: dict[bool, Any]) -> str:
    """Why the runs do not measure the switch (the brokers' status at stop), or ''."""
    for on, broker in both.items():
        got = broker.status
        if not got:
            return f"the broker with the switch {'on' if on else 'off'} reported no status"
        walk_expected = on or switch != "validate"
        if got["walk"] != [walk_expected]:
            return f"partitions of the broker with the switch {on} walked: {got['walk']}"
        recording = got["requests_recorded"] > 0
        if recording != (on or switch != "metrics"):
            return f"the broker with the switch {on} recorded {got['requests_recorded']} requests"
        if (got["acls"] > 0) != (on and switch == "acls"):
            return f"the broker with the switch {on} had {got['acls']} ACLs"
    return ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return _serve_child(argv[1], argv[2])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("switch", choices=sorted(SWITCHES))
    ap.add_argument("--where", choices=["thread", "process"], default="thread")
    ap.add_argument("--runs", type=int, default=5, help="alternating run pairs per case")
    ap.add_argument("--mib", type=int, default=128, help="MiB of values per run (cap)")
    ap.add_argument("--seconds", type=float, default=3.0, help="time cap of one run")
    ap.add_argument("--sizes", default="100,1024", help="value sizes for validate")
    ap.add_argument("--codecs", default="lz4,zstd", help="codecs for validate")
    ap.add_argument("--dir", help="where the brokers keep data (default: system temp dir)")
    ap.add_argument("--json", help="also write every run here")
    args = ap.parse_args(argv)
    from confluent_kafka import libversion
    from confluent_kafka import version as ck_version

    from edplog.perf.compare.broker import create_topic

    attr = SWITCHES[args.switch]
    cases = cases_for(args.switch, [int(s) for s in args.sizes.split(",")], args.codecs.split(","))
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    probed: dict[bool, bool] = {}
    with tempfile.TemporaryDirectory(prefix="edplog-bench-switch-", dir=args.dir) as root:
        with brokers(args.where, root, attr) as both:
            for on, broker in both.items():
                walks = probed[on] = probe_walk(broker.bootstrap)
                if walks != (on or args.switch != "validate"):
                    print(f"the broker with {attr}={on} walks: {walks}; no figures")
                    return 1
                for topic in sorted({c.topic for c in cases}):
                    create_topic(broker.bootstrap, topic)
            for case in cases:
                say(f"{case.name}")
                run_case(case, both, args, say)
                if args.switch == "validate":
                    case.batch = batch_shape(os.path.join(root, "on"), case.topic)
    void = switch_not_in_effect(args.switch, both)
    if void:
        print(f"{void}; no figures")
        return 1
    print(
        f"confluent-kafka {ck_version()[0]} (librdkafka {libversion()[0]}), linger.ms "
        f"{LINGER_MS}, batch.size {BATCH_BYTES}; runs of up to {args.mib} MiB or "
        f"{args.seconds:g} s"
    )
    report(args.switch, args.where, cases, args.runs, print)
    on, off = both[True].status, both[False].status
    verdict = {True: "refused", False: "accepted"}
    print(
        f"checked in effect: a garbage lz4 batch behind a valid CRC was "
        f"{verdict[probed[True]]}/{verdict[probed[False]]} by the broker with the switch "
        f"on/off; partitions walk on/off: {on['walk']}/{off['walk']}; requests recorded "
        f"on/off: {on['requests_recorded']:,.0f}/{off['requests_recorded']:,.0f}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "switch": attr,
                    "where": args.where,
                    "cases": [
                        {
                            "name": c.name,
                            "batch": c.batch,
                            "on": [asdict(r) for r in c.runs[True]],
                            "off": [asdict(r) for r in c.runs[False]],
                        }
                        for c in cases
                    ],
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
