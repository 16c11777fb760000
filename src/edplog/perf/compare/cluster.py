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
  (the limits family's measurement).

When the produce ratio misses its goal (outside the tiny mode), one more produce pass runs with
the leader and one follower under ``python -m cProfile`` and the report's notes list what took
their time. ``EDPLOG_CLUSTER_PROFILE_DIR`` keeps the raw profiles there.
"""

from __future__ import annotations

import os
import pstats
import shutil
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import broker, data, limits
from .model import Budget, Context, CpuProbe, Figure, Sample, Spec, _pid_jiffies
from .procs import Server, ServerError

SIZE = 1024
SESSION_TIMEOUT_MS = 6000
BROKERS = 3
PROPERTIES = {"min.insync.replicas": "2", "default.replication.factor": "3"}
# Failover events (SIGKILL, SIGTERM) and catch-up volume per mode.
KILLS = {"tiny": 1, "quick": 3, "full": 20}
TERMS = {"tiny": 1, "quick": 2, "full": 5}
CATCH_UP_BYTES = {"tiny": 4 << 20, "quick": 64 << 20, "full": 1 << 30}
# The continuous sender of the failover figures: records per second (1 KiB each).
SEND_RATE = 500
# Bounds on every wait (the loops below never run longer).
PRODUCE_CAP_S = 300.0
FAILOVER_WAIT_S = SESSION_TIMEOUT_MS / 1000 + 30
ISR_WAIT_S = 90.0
CATCH_UP_WAIT_S = 600.0
PROFILE_TOP = 12


class ProfiledCluster:
    """A :class:`LocalCluster` whose chosen brokers run under ``python -m cProfile``.

    The launcher starts ``python -m edplog broker``; the chosen brokers get the interpreter
    options ``-m cProfile -o FILE`` before it, and the rest of the cluster's lifetime (signals
    by PID, readiness, stop order) stays the launcher's. A broker writes its profile when it
    exits from SIGTERM (the broker returns from its serve loop; cProfile then dumps the stats).
    """

    def __init__(self, base_dir: Path, profiled: dict[int, Path] | None = None) -> None:
        from ...cluster.launcher import LocalCluster

        self.cluster = LocalCluster(
            base_dir, BROKERS, properties=PROPERTIES, session_timeout_ms=SESSION_TIMEOUT_MS
        )
        for broker_id, out in (profiled or {}).items():
            proc = self.cluster._brokers[broker_id]  # noqa: SLF001 - the launcher is not ours
            proc.python_options = ("-m", "cProfile", "-o", str(out))


def _log_bytes(data_dir: Path, topic: str) -> int:
    """Bytes of the .log segments of partition 0 of ``topic`` in one broker's data dir."""
    total = 0
    try:
        with os.scandir(data_dir / f"{topic}-0") as entries:
            for entry in entries:
                if entry.name.endswith(".log"):
                    try:
                        total += entry.stat().st_size
                    except FileNotFoundError:
                        pass  # a segment removed between listing and stat
    except FileNotFoundError:
        return 0
    return total


class _Sender(threading.Thread):
    """An idempotent acks=all producer sending ``SEND_RATE`` records/s until stopped.

    Each value starts with its send time (``time.monotonic_ns``); every acknowledgement is kept
    as (ack time, send time) in seconds. A fatal producer error (possible around failovers)
    is recorded and the sender carries on with a fresh producer.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="cluster-failover-sender", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.acks: list[tuple[float, float]] = []
        self.errors: list[tuple[float, str]] = []
        self.fatal: list[str] = []
        self.halt = threading.Event()
        self._stamp = struct.Struct(">q")

    def _report(self, err: Any, msg: Any) -> None:
        now = time.monotonic()
        if err is None:
            self.acks.append((now, self._stamp.unpack_from(msg.value())[0] / 1e9))
        else:
            self.errors.append((now, str(err)))

    def _producer(self) -> Any:
        from confluent_kafka import Producer

        def on_error(err: Any) -> None:
            if err.fatal():
                self.fatal.append(str(err))

        return Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
                "message.timeout.ms": int(FAILOVER_WAIT_S * 1000) * 2,
                "retry.backoff.ms": 20,
                "on_delivery": self._report,
                "error_cb": on_error,
                # Refused connections to the stopped leader are expected: errors are counted
                # from the delivery reports instead of printed.
                "log_level": 2,
            }
        )

    def run(self) -> None:
        pad = data.payloads(SIZE)[0][8:]
        pack = self._stamp.pack
        producer = self._producer()
        interval = 1.0 / SEND_RATE
        due = time.monotonic()
        fatal_seen = 0
        while not self.halt.is_set():
            now = time.monotonic()
            if now >= due:
                try:
                    producer.produce(self.topic, pack(time.monotonic_ns()) + pad)
                except BufferError:
                    pass  # the queue is full during a failover: the next tick tries again
                due = max(due + interval, now - 1.0)
            producer.poll(max(0.0, min(0.002, due - time.monotonic())))
            if len(self.fatal) > fatal_seen:
                fatal_seen = len(self.fatal)
                producer.flush(5)
                producer = self._producer()
        producer.flush(30)

    def acks_after(self, sent_at: float, start: int = 0) -> tuple[float, float] | None:
        """The first acknowledgement (from index ``start`` on) of a record sent at or after
        ``sent_at``."""
        for ack, sent in self.acks[start:]:
            if sent >= sent_at:
                return ack, sent
        return None


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


class _Run:
    """One started cluster with a ZooKeeper client for partition states."""

    def __init__(self, ctx: Context, cluster: Any) -> None:
        from ...cluster.zk import ZkClient

        self.ctx = ctx
        self.cluster = cluster
        self.zk = ZkClient(cluster.zookeeper_connect)
        self.zk.start()
        self._tracked: list[int] = []
        self.track()

    def track(self) -> None:
        """Keep ctx.server_pids naming our ZooKeeper and brokers (their pids change on
        restart), so their CPU does not count as other load."""
        for pid in self._tracked:
            if pid in self.ctx.server_pids:
                self.ctx.server_pids.remove(pid)
        pids = [self.cluster.pid(b) for b in self.cluster.broker_ids]
        zookeeper = self.cluster.zookeeper
        pids.append(zookeeper.pid if zookeeper is not None else None)
        self._tracked = [p for p in pids if p is not None]
        self.ctx.server_pids.extend(self._tracked)

    def close(self) -> None:
        self.zk.stop()
        for pid in self._tracked:
            if pid in self.ctx.server_pids:
                self.ctx.server_pids.remove(pid)

    def create_topic(self, topic: str, replicas: tuple[int, ...] | None = None) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.cluster.bootstrap})
        if replicas is None:
            new = NewTopic(topic, 1, BROKERS)
        else:
            # librdkafka wants the partition count with an assignment (and no replication factor)
            new = NewTopic(topic, 1, replica_assignment=[list(replicas)])
        admin.create_topics([new], operation_timeout=20)[topic].result(30)
        self.wait_isr(topic, BROKERS)

    def delete_topic(self, topic: str) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.cluster.bootstrap})
        try:
            admin.delete_topics([topic], operation_timeout=20)[topic].result(30)
        except Exception as exc:  # noqa: BLE001 - leftover data only costs disk in a temp dir
            self.ctx.progress.say(f"  cluster: could not delete {topic}: {exc}")

    def state(self, topic: str) -> Any:
        state = self.zk.partition_state(topic, 0)
        if state is None:
            raise RuntimeError(f"{topic}-0 has no partition state in ZooKeeper")
        return state

    def wait_isr(self, topic: str, size: int, member: int | None = None) -> Any:
        """Wait until partition 0 has a leader and an ISR of ``size`` (holding ``member``)."""
        deadline = time.monotonic() + ISR_WAIT_S
        while True:
            state = self.zk.partition_state(topic, 0)
            if state is not None and state.leader >= 0 and len(state.isr) == size:
                if member is None or member in state.isr:
                    return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}-0 did not reach an ISR of {size}: {state}")
            self.cluster.check()
            time.sleep(0.05)


def _produce_cpu(run: _Run, topic: str, budget: Budget, shares: dict[str, float]) -> Sample:
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


def _failover(run: _Run, topic: str, spec: Spec, events: int, how: str) -> None:
    """``events`` leader stops (``how``: kill or term), each followed by a restart and a
    full ISR; one sample per event."""
    ctx = run.ctx
    figure = Figure(spec)
    ctx.figures.append(figure)
    sender = _Sender(run.cluster.bootstrap, topic)
    sender.start()
    try:
        deadline = time.monotonic() + 60
        while not sender.acks:  # the producer is connected and acknowledged before any fault
            if time.monotonic() > deadline:
                raise TimeoutError(f"no acknowledgement in 60 s ({sender.errors[-1:]})")
            time.sleep(0.05)
        for i in range(events):
            ctx.progress.show(f"cluster {spec.title}: event {i + 1}/{events}")
            leader = run.wait_isr(topic, BROKERS).leader
            probe = CpuProbe(ctx.server_pids)
            probe.start()
            errors_before = len(sender.errors)
            acks_before = len(sender.acks)
            signalled = time.monotonic()
            if how == "kill":
                run.cluster.kill(leader)
            else:
                run.cluster.terminate(leader)
            gone = time.monotonic()
            limit = gone + FAILOVER_WAIT_S
            elected = 0.0  # when ZooKeeper first names another leader
            first = sender.acks_after(gone, acks_before)
            while first is None or not elected:
                now = time.monotonic()
                if now > limit:
                    raise TimeoutError(
                        f"no acknowledgement (or no new leader) within {FAILOVER_WAIT_S:.0f} s "
                        f"after stopping leader {leader} ({sender.errors[-1:]})"
                    )
                if not elected and run.state(topic).leader not in (leader, -1):
                    elected = now
                time.sleep(0.01)
                if first is None:
                    first = sender.acks_after(gone, acks_before)
            end = first[0] + 0.5
            time.sleep(max(0.0, end - time.monotonic()))
            acks = sorted(a for a, _ in list(sender.acks) if signalled < a <= end)
            marks = [signalled, *acks]
            stall = max(b - a for a, b in zip(marks, marks[1:], strict=False))
            errors = len(sender.errors) - errors_before
            sample = Sample(
                len(acks),
                len(acks) * SIZE,
                end - signalled,
                latency_ms={
                    "failover": (first[0] - signalled) * 1000,
                    "stall": stall * 1000,
                    "errors": float(errors),
                    "exit": (gone - signalled) * 1000,
                    "elected": (elected - signalled) * 1000,
                },
            )
            probe.stop(sample)
            figure.samples.append(sample)
            lat = sample.latency_ms or {}
            ctx.progress.show(
                f"cluster {spec.title}: event {i + 1}/{events} leader {leader}: first ack "
                f"{lat['failover']:.0f} ms (elected {lat['elected']:.0f} ms), longest stall "
                f"{lat['stall']:.0f} ms, {errors} errors"
            )
            run.cluster.start_broker(leader)
            run.track()
            run.wait_isr(topic, BROKERS, leader)
        if sender.fatal:
            ctx.notes.append(f"{spec.title}: fatal producer errors {sender.fatal[:3]}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the report, never hidden
        figure.samples.clear()
        figure.skipped = f"failed: {type(exc).__name__}: {exc}"
        ctx.progress.say(f"  cluster {spec.title}: {figure.skipped}")
    finally:
        sender.halt.set()
        sender.join(60)


def _produce_plain(bootstrap: str, topic: str, nbytes: int) -> int:
    """acks=1, no compression, until ``nbytes`` of payload are acknowledged; records sent."""
    from confluent_kafka import Producer

    failed: list[str] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "1",
            "compression.type": "none",
            "linger.ms": 5,
            "batch.size": 1 << 20,
            "queue.buffering.max.kbytes": 1 << 20,
            "delivery.report.only.error": True,
            "on_delivery": report,
        }
    )
    pool = data.payloads(SIZE)
    count = max(1, nbytes // SIZE)
    deadline = time.monotonic() + PRODUCE_CAP_S
    for i in range(count):
        while True:
            try:
                producer.produce(topic, pool[i & 4095])
                break
            except BufferError:
                producer.poll(0.001)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"produced {i} of {count} records in time") from None
    left = producer.flush(120)
    if left or failed:
        raise RuntimeError(f"{left} undelivered, {len(failed)} failed ({failed[-1:]})")
    return count


def _catch_up_once(run: _Run, topic: str, nbytes: int) -> Sample:
    """Stop a follower, give the leader ``nbytes``, start the follower, time its copy."""
    run.create_topic(topic)
    state = run.state(topic)
    follower = next(b for b in state.isr if b != state.leader)
    run.cluster.terminate(follower)
    run.track()
    run.wait_isr(topic, BROKERS - 1)
    records = _produce_plain(run.cluster.bootstrap, topic, nbytes)
    run.wait_isr(topic, BROKERS - 1)
    leader_dir = run.cluster.data_dir(state.leader)
    target = _log_bytes(leader_dir, topic)
    follower_dir = run.cluster.data_dir(follower)
    base = _log_bytes(follower_dir, topic)
    starter_error: list[BaseException] = []

    def start() -> None:
        try:
            run.cluster.start_broker(follower)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the measuring thread
            starter_error.append(exc)

    spawned = time.monotonic()
    starter = threading.Thread(target=start, name="cluster-follower-start", daemon=True)
    starter.start()
    first = caught = in_isr = 0.0
    deadline = spawned + CATCH_UP_WAIT_S
    next_zk = spawned
    while not (caught and in_isr):
        now = time.monotonic()
        if in_isr and not caught and now > in_isr + 2.0:
            caught = in_isr  # the ISR says caught up though the byte counts differ
            break
        if now > deadline or starter_error:
            raise TimeoutError(
                f"follower {follower} copied {_log_bytes(follower_dir, topic) - base} of "
                f"{target - base} bytes by the deadline ({starter_error[:1]})"
            )
        size = _log_bytes(follower_dir, topic)
        if not first and size > base:
            first = now
        if not caught and size >= target:
            caught = now
        if not in_isr and now >= next_zk:
            next_zk = now + 0.02
            if follower in run.state(topic).isr:
                in_isr = now
        time.sleep(0.002)
    starter.join(ISR_WAIT_S)
    run.track()
    copied = target - base
    seconds = max(caught - first, 1e-6)
    sample = Sample(
        records,
        copied,
        seconds,
        latency_ms={
            "catch-up": seconds * 1000,
            "start_to_first_byte": (first - spawned) * 1000,
            "start_to_isr": (in_isr - spawned) * 1000,
        },
    )
    run.delete_topic(topic)
    return sample


def _profile(ctx: Context, count_budget: Budget) -> None:
    """One acks=all produce pass with brokers 1 (leader) and 2 (follower) under cProfile."""
    base = Path(ctx.workdir) / "cluster-profiled"
    outs = {1: base / "broker-1.prof", 2: base / "broker-2.prof"}
    base.mkdir(parents=True, exist_ok=True)
    wrapper = ProfiledCluster(base, outs)
    cluster = wrapper.cluster
    ctx.progress.show("cluster: profiled produce pass (brokers 1 and 2 under cProfile)")
    try:
        cluster.start()
        run = _Run(ctx, cluster)
        try:
            run.create_topic("perf-profiled", (1, 2, 3))
            sample = broker.produce(cluster.bootstrap, "perf-profiled", "all", SIZE, count_budget)
        finally:
            run.close()
    finally:
        cluster.stop()
    rate = sample.bytes_per_s / 1e6
    ctx.notes.append(
        f"cluster profile: acks=all produce under cProfile ran at {rate:.1f} MB/s "
        "(the profiler slows the brokers; read the shares, not the rate)."
    )
    keep = os.environ.get("EDPLOG_CLUSTER_PROFILE_DIR")
    for broker_id, path in outs.items():
        role = "leader" if broker_id == 1 else "follower"
        if not path.exists():
            ctx.notes.append(f"cluster profile: broker {broker_id} wrote no profile")
            continue
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(path, os.path.join(keep, path.name))
        ctx.notes.append(f"cluster profile, broker {broker_id} ({role}): " + summarize(path))


def summarize(path: Path, top: int = PROFILE_TOP) -> str:
    """The functions with the most own time in a cProfile dump, as one line of text."""
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    parts = []
    for (filename, line, name), (_, calls, own, _cum, _) in rows[:top]:
        where = f"{Path(filename).name}:{line}" if line else filename
        parts.append(f"{name} ({where}) {own / total * 100:.1f} % [{calls} calls]")
    return f"main thread {total:.1f} s; most own time: " + "; ".join(parts)


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
        for key in ("cluster", "kill", "term", "sendfile", "catch_up"):
            ctx.skip(specs[key], f"the cluster did not start: {exc}")
        return
    shares: dict[str, float] = {}
    try:
        cluster_run = _Run(ctx, cluster)
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
            _failover(cluster_run, "perf-failover", specs["kill"], KILLS[ctx.budget.name], "kill")
            _failover(cluster_run, "perf-failover", specs["term"], TERMS[ctx.budget.name], "term")
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
            ctx.measure(
                specs["catch_up"],
                lambda b: _catch_up_once(cluster_run, f"perf-catchup-{next(counter)}", nbytes),
                warmup=False,
            )
        finally:
            cluster_run.close()
    finally:
        cluster.stop()
    single, three = ctx.find(specs["single"].id), ctx.find(specs["cluster"].id)
    if ctx.budget.name != "tiny" and single and three:
        if three.bytes_per_s()[0] < 0.5 * single.bytes_per_s()[0]:
            try:
                _profile(ctx, _counted(ctx.budget))
            except Exception as exc:  # noqa: BLE001 - the figures stand without the profile
                ctx.notes.append(f"cluster profile failed: {type(exc).__name__}: {exc}")
