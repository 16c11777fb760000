"""edplog as a replicated cluster: three broker processes and a private ZooKeeper on this machine.

The cluster is :class:`edplog.cluster.launcher.LocalCluster` (brokers on 127.0.0.2-4, ZooKeeper
on 127.0.0.1), every process stopped by its PID. Figures, all with 1 KiB records and each one
divided by a baseline taken in the same invocation:

- produce at acks=all to a topic of RF 3 with ``min.insync.replicas=2``, against acks=1 to a
  single standalone broker: the broker family's confluent-kafka producer, the same record count;
- leader failover: an idempotent acks=all producer sends continuously while the partition's
  leader is SIGKILLed; the figure is the time from the signal to the first acknowledgement of
  a record sent after the leader was dead (only a live leader can have acknowledged it). The
  bound is the brokers' ZooKeeper session timeout: that is when the controller learns of the
  death. The same with SIGTERM (a controlled shutdown moves leadership first): the longest gap
  between acknowledgements from the signal on, i.e. the stall the producer sees;
- follower catch-up: a follower is stopped, the leader gets N bytes at acks=1, the follower is
  started again; the rate is the bytes its log received over the time from its first new byte
  to its log holding as many bytes as the leader's, against ``os.sendfile`` of the same bytes
  (the limits family's measurement: the network side alone) and ``os.write`` of the same
  bytes to a new file (the page-cache write every follower must do, which on a VM whose new
  memory faults slowly is the lower of the two).

When the produce ratio misses its goal (outside the tiny mode), one more produce pass runs with
the leader and one follower under ``python -m cProfile`` and the report's notes list what took
their time. ``EDPLOG_CLUSTER_PROFILE_DIR`` keeps the raw profiles there.

This module holds the figures' specs, the two produce figures and the order the family runs
in; the failover figures are measured in cluster_failover.py, the catch-up in
cluster_catch_up.py, the profiled pass in cluster_profile.py, and cluster_run.py holds the
started cluster they share and the settings they agree on.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from . import broker, limits
from .cluster_catch_up import catch_up_once
from .cluster_failover import SEND_RATE, failover
from .cluster_profile import profile
from .cluster_run import (
    BROKERS,
    PRODUCE_CAP_S,
    PROPERTIES,
    SESSION_TIMEOUT_MS,
    SIZE,
    ClusterRun,
)
from .model import Budget, Context, Figure, Sample, Spec, _pid_jiffies
from .procs import Server, ServerError

__all__ = ["BROKERS", "CATCH_UP_BYTES", "KILLS", "SESSION_TIMEOUT_MS", "SIZE", "TERMS", "run"]

# Failover events (SIGKILL, SIGTERM) and catch-up volume per mode.
KILLS = {"tiny": 1, "quick": 3, "full": 20}
TERMS = {"tiny": 1, "quick": 2, "full": 5}
CATCH_UP_BYTES = {"tiny": 4 << 20, "quick": 64 << 20, "full": 1 << 30}


def _specs() -> dict[str, Spec]:
    client = "confluent-kafka (librdkafka)"
    batching = "lz4, linger.ms 5, batch.size 1 MiB"
    three = f"{BROKERS} brokers, RF 3, min ISR 2"
    return {
        "single": Spec(
            "cluster.produce.single_acks1",
            "cluster",
            "produce, single broker",
            SIZE,
            batching,
            "acks=1, 1 broker, RF 1",
            client,
        ),
        "cluster": Spec(
            "cluster.produce.acks_all",
            "cluster",
            "produce, cluster",
            SIZE,
            batching,
            f"acks=all, {three}",
            client,
        ),
        "kill": Spec(
            "cluster.failover.kill",
            "cluster",
            "leader failover (SIGKILL)",
            SIZE,
            f"idempotent, {SEND_RATE} rec/s, linger.ms 2",
            f"acks=all, {three}, session {SESSION_TIMEOUT_MS} ms",
            client,
        ),
        "term": Spec(
            "cluster.failover.term",
            "cluster",
            "controlled shutdown (SIGTERM)",
            SIZE,
            f"idempotent, {SEND_RATE} rec/s, linger.ms 2",
            f"acks=all, {three}",
            client,
        ),
        "sendfile": Spec(
            "cluster.sendfile",
            "cluster",
            "os.sendfile to loopback (catch-up bytes)",
            SIZE,
            "1 MiB sendfile calls",
            "page-cached file",
            "recv_into thread",
        ),
        "write": Spec(
            "cluster.write",
            "cluster",
            "os.write to a new file (catch-up bytes, before each catch-up)",
            SIZE,
            "the batch buffer per call",
            "page cache, no fsync",
            "os.write",
        ),
        "catch_up": Spec(
            "cluster.catch_up",
            "cluster",
            "follower catch-up",
            SIZE,
            "replica fetcher",
            "acks=1 while the follower was down, no compression",
            "edplog replica fetcher",
        ),
    }


def _counted(budget: Budget) -> Budget:
    """The budget's volume as a fixed record count (the time cap only as a safety bound)."""
    return Budget(budget.name, PRODUCE_CAP_S, budget.max_bytes, budget.latency_seconds)


def _single_broker(ctx: Context, spec: Spec) -> None:
    """acks=1 to one standalone broker, as the broker family runs it."""
    datadir = os.path.join(ctx.workdir, "cluster-single")
    os.makedirs(datadir, exist_ok=True)
    argv = [sys.executable, "-m", "edplog", "broker", "--listen", "127.0.0.1:0"]
    argv += ["--data-dir", datadir]
    try:
        server = Server(argv, "edplog broker", ready_pattern=broker.READY, timeout_s=30)
        server.__enter__()
    except (ServerError, OSError) as exc:
        ctx.skip(spec, f"the edplog broker did not start: {exc}")
        return
    try:
        assert server.match is not None
        bootstrap = f"{server.match.group(1)}:{server.match.group(2)}"
        ctx.server_pids.append(server.pid)
        broker.create_topic(bootstrap, "perf-single-1024")
        ctx.measure(
            spec, lambda b: broker.produce(bootstrap, "perf-single-1024", "1", SIZE, _counted(b))
        )
    except RuntimeError as exc:
        ctx.skip(spec, str(exc))
    finally:
        if server.pid in ctx.server_pids:
            ctx.server_pids.remove(server.pid)
        server.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def _produce_cpu(run: ClusterRun, topic: str, budget: Budget, shares: dict[str, float]) -> Sample:
    """The broker family's produce at acks=all, noting each process's share of one core."""
    pids = {f"broker {b}": run.cluster.pid(b) for b in run.cluster.broker_ids}
    pids["client"] = os.getpid()
    before = {name: _pid_jiffies(pid) for name, pid in pids.items() if pid}
    leader = run.state(topic).leader
    sample = broker.produce(run.cluster.bootstrap, topic, "all", SIZE, _counted(budget))
    ticks = os.sysconf("SC_CLK_TCK")
    shares.clear()
    for name, pid in pids.items():
        if pid:
            used = (_pid_jiffies(pid) - before[name]) / ticks / sample.seconds
            shares[name + (" (leader)" if name == f"broker {leader}" else "")] = used
    return sample


def run(ctx: Context) -> None:
    """Single-broker baseline, then the cluster: produce, failovers, catch-up."""
    from ...cluster import zookeeper_server
    from ...cluster.launcher import LocalCluster

    specs = _specs()
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        for spec in specs.values():
            ctx.skip(spec, "confluent-kafka is not installed (pip install 'edplog[bench]')")
        return
    if not zookeeper_server.available():
        for spec in specs.values():
            ctx.skip(spec, "ZooKeeper is not installed (apt-get install zookeeper)")
        return
    _single_broker(ctx, specs["single"])
    base = Path(ctx.workdir) / "cluster"
    cluster = LocalCluster(
        base, BROKERS, properties=PROPERTIES, session_timeout_ms=SESSION_TIMEOUT_MS
    )
    try:
        cluster.start()
    except Exception as exc:  # noqa: BLE001 - every figure says why
        for key in ("cluster", "kill", "term", "sendfile", "write", "catch_up"):
            ctx.skip(specs[key], f"the cluster did not start: {exc}")
        return
    shares: dict[str, float] = {}
    try:
        cluster_run = ClusterRun(ctx, cluster)
        try:
            cluster_run.create_topic("perf-cluster-1024")
            produced = ctx.measure(
                specs["cluster"],
                lambda b: _produce_cpu(cluster_run, "perf-cluster-1024", b, shares),
            )
            if produced.ok and shares:
                ctx.notes.append(
                    "cluster acks=all produce, CPU per process in the last run (cores): "
                    + ", ".join(f"{k} {v:.2f}" for k, v in sorted(shares.items()))
                )
            cluster_run.delete_topic("perf-cluster-1024")
            cluster_run.create_topic("perf-failover")
            failover(cluster_run, "perf-failover", specs["kill"], KILLS[ctx.budget.name], "kill")
            failover(cluster_run, "perf-failover", specs["term"], TERMS[ctx.budget.name], "term")
            nbytes = CATCH_UP_BYTES[ctx.budget.name]
            bench = limits.SendfileBench(ctx.workdir, SIZE)
            try:
                ctx.measure(
                    specs["sendfile"],
                    lambda b: bench.run(Budget(b.name, PRODUCE_CAP_S, nbytes, 0.0)),
                    warmup=False,
                )
            finally:
                bench.close()
            counter = iter(range(1000))
            floors: list[Sample] = []
            caught = ctx.measure(
                specs["catch_up"],
                lambda b: catch_up_once(
                    cluster_run, f"perf-catchup-{next(counter)}", nbytes, floors
                ),
                warmup=False,
            )
            # The floor: os.write of the same bytes to a new file, in each event just before
            # the follower starts (cluster_catch_up's docstring says why not at another time).
            if caught.ok and floors:
                ctx.figures.append(Figure(specs["write"], samples=floors))
            else:
                ctx.skip(specs["write"], "measured only with the catch-ups, which failed")
        finally:
            cluster_run.close()
    finally:
        cluster.stop()
    single, three = ctx.find(specs["single"].id), ctx.find(specs["cluster"].id)
    if ctx.budget.name != "tiny" and single and three:
        if three.bytes_per_s()[0] < 0.5 * single.bytes_per_s()[0]:
            try:
                profile(ctx, _counted(ctx.budget))
            except Exception as exc:  # noqa: BLE001 - the figures stand without the profile
                ctx.notes.append(f"cluster profile failed: {type(exc).__name__}: {exc}")
