"""The fault campaign's nemesis: process faults through LocalCluster (by PID), network
partitions with iptables between loopback aliases, and the cluster facts a fault needs (who
leads a partition, who is the controller, is the ISR full again).

Every iptables rule carries the comment ``edp-<run id>`` and is inserted on INPUT of ``lo``
(``-I INPUT -i lo -s A -d B -j DROP``); :meth:`Nemesis.heal` deletes exactly the rules with
its own tag. Brokers bind their listener and their outgoing sockets to their own 127.0.0.N,
so a rule between two aliases cuts exactly that link; ZooKeeper listens on 127.0.0.1.
iptables needs root: :func:`iptables_available` tells, and tests skip without it.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edplog.client import Client, ClusterMetadata
from edplog.cluster.launcher import LocalCluster
from edplog.errors import EdplogError


def iptables_available() -> bool:
    """Root and a working iptables (the rules of a partition need both)."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return False
    try:
        subprocess.run(["iptables", "-S", "INPUT"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _iptables(*args: str) -> None:
    subprocess.run(["iptables", "-w", "5", *args], check=True, capture_output=True, timeout=30)


def _zookeeper_connections(pid: int, zk_port: int) -> list[int]:
    """Local ports of ``pid``'s established TCP connections to ``zk_port``."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{zk_port} )"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    ports = []
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[2]  # Recv-Q Send-Q Local Peer Process (no State column)
            ports.append(int(local.rsplit(":", 1)[1]))
    return ports


@dataclass(frozen=True)
class PartitionView:
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class Nemesis:
    """Faults against ``cluster``; each one is logged to ``history`` (a workload.History, or
    None) with the partitions of ``topic`` it affects, for the failover clock."""

    def __init__(
        self,
        cluster: LocalCluster,
        *,
        topic: str | None = None,
        history: object | None = None,
        run_id: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.topic = topic
        self.history = history
        self.tag = f"edp-{run_id or uuid.uuid4().hex[:10]}"
        self.rules: list[tuple[str, ...]] = []
        self.counts: dict[str, int] = {}

    # ---- cluster facts --------------------------------------------------------------------

    def metadata(
        self, topics: Iterable[str] | None = None, *, avoid: Iterable[int] = ()
    ) -> ClusterMetadata | None:
        """Metadata from the first live broker that answers (None when none does); brokers
        in ``avoid`` (a faulted one, whose view may be stale) are asked last."""
        shunned = set(avoid)
        live = self.cluster.live_brokers()
        for broker_id in [b for b in live if b not in shunned] + [b for b in live if b in shunned]:
            try:
                with Client(
                    self.cluster.address(broker_id), timeout_s=3, connect_timeout_s=2
                ) as client:
                    return client.metadata(None if topics is None else list(topics))
            except (EdplogError, OSError):
                continue
        return None

    def partitions(
        self, topic: str | None = None, *, avoid: Iterable[int] = ()
    ) -> dict[int, PartitionView]:
        topic = topic or self.topic
        assert topic is not None, "a topic is needed"
        meta = self.metadata([topic], avoid=avoid)
        if meta is None or topic not in meta.topics:
            return {}
        return {
            p.partition: PartitionView(p.leader_id, p.leader_epoch, tuple(p.replicas), tuple(p.isr))
            for p in meta.topics[topic].partitions
        }

    def leader(self, partition: int, topic: str | None = None) -> int:
        """The partition's leader as Metadata tells it (-1: none)."""
        view = self.partitions(topic).get(partition)
        return view.leader if view is not None else -1

    def controller(self) -> int:
        meta = self.metadata([])
        return meta.controller_id if meta is not None else -1

    def led_by(self, broker_id: int, topic: str | None = None) -> list[int]:
        return [p for p, v in self.partitions(topic).items() if v.leader == broker_id]

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Poll ``predicate`` every 0.2 s for at most ``timeout_s``; True once it holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return True
            except (EdplogError, OSError):
                pass
            time.sleep(0.2)
        return False

    def wait_new_leader(self, partition: int, old: int, timeout_s: float = 60.0) -> int:
        """Wait until a live broker other than ``old`` leads ``partition``; its id, or -1.
        ``old`` is asked last: cut from ZooKeeper, it still tells what it last knew."""
        found = -1

        def moved() -> bool:
            nonlocal found
            view = self.partitions(avoid=(old,)).get(partition)
            leader = view.leader if view is not None else -1
            if leader >= 0 and leader != old and leader in self.cluster.live_brokers():
                found = leader
                return True
            return False

        self.wait_for("new leader", moved, timeout_s)
        return found

    def full_isr(self, topic: str | None = None) -> bool:
        views = self.partitions(topic)
        return bool(views) and all(
            v.leader >= 0 and set(v.isr) == set(v.replicas) for v in views.values()
        )

    def wait_full_isr(self, topic: str | None = None, timeout_s: float = 60.0) -> bool:
        return self.wait_for("full ISR", lambda: self.full_isr(topic), timeout_s)

    # ---- process faults -------------------------------------------------------------------

    def _event(
        self,
        kind: str,
        broker_ids: Iterable[int],
        inject: Callable[[], object],
        **details: object,
    ) -> None:
        """Note which partitions ``broker_ids`` lead, inject the fault, then log it: logged
        after the fault took effect, so an acknowledgement already on its way when it struck
        does not count as a failover."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        ids = set(broker_ids)
        affected: set[int] = set()
        if self.topic is not None:
            try:
                affected = {p for p, v in self.partitions().items() if v.leader in ids}
            except (EdplogError, OSError):
                affected = set()
        inject()
        log = getattr(self.history, "event", None)
        if log is not None:
            log(kind, partitions=affected, brokers=sorted(ids), **details)

    def kill(self, broker_id: int) -> None:
        self._event("kill", [broker_id], lambda: self.cluster.kill(broker_id))

    def terminate(self, broker_id: int) -> None:
        self._event("terminate", [broker_id], lambda: self.cluster.terminate(broker_id))

    def pause(self, broker_id: int) -> None:
        self._event("pause", [broker_id], lambda: self.cluster.pause(broker_id))

    def resume(self, broker_id: int) -> None:
        self.cluster.resume(broker_id)

    def start(self, broker_id: int, timeout_s: float = 60.0) -> None:
        self.cluster.start_broker(broker_id, timeout_s=timeout_s)

    def restart(self, broker_id: int, *, clean: bool = True) -> None:
        """SIGTERM (``clean``) or SIGKILL the broker, then start it again and wait for it."""
        stop = self.cluster.terminate if clean else self.cluster.kill
        self._event("restart" if clean else "restart-unclean", [broker_id], lambda: stop(broker_id))
        self.cluster.start_broker(broker_id)

    def restart_zookeeper(self) -> None:
        server = self.cluster.zookeeper
        assert server is not None, "the cluster runs an external ZooKeeper"
        self._event("zk-restart", self.cluster.broker_ids, server.restart)

    # ---- network faults -------------------------------------------------------------------

    def _drop(self, *match: str) -> None:
        rule = ("INPUT", "-i", "lo", *match, "-m", "comment", "--comment", self.tag, "-j", "DROP")
        _iptables("-I", *rule)
        self.rules.append(rule)

    def cut(
        self, sources: Iterable[str], destinations: Iterable[str], *, both: bool = True
    ) -> None:
        """Drop packets from each of ``sources`` to each of ``destinations`` (addresses), and
        back too when ``both``."""
        sources, destinations = list(sources), list(destinations)
        for src in sources:
            for dst in destinations:
                self._drop("-s", src, "-d", dst)
                if both:
                    self._drop("-s", dst, "-d", src)

    def isolate_from_brokers(
        self, broker_id: int, others: Iterable[int] | None = None, *, both: bool = True
    ) -> None:
        """Cut ``broker_id`` from the other brokers (not from ZooKeeper)."""
        peers = [b for b in (others or self.cluster.broker_ids) if b != broker_id]
        host, hosts = self.cluster.host(broker_id), [self.cluster.host(b) for b in peers]
        self._event(
            "partition-brokers",
            [broker_id],
            lambda: self.cut([host], hosts, both=both),
            peers=peers,
            both=both,
        )

    def isolate_from_zookeeper(self, broker_id: int) -> None:
        """Cut ``broker_id`` from ZooKeeper's port (not from the other brokers).

        Rules by address (the broker's alias to ZooKeeper's) cut a ZooKeeper client that
        binds its socket to the alias. A client that connects from 127.0.0.1 (kazoo's
        default) is cut by its connection instead: its established connections (found by
        the broker's pid with ``ss``) are dropped by local port, and new connections to
        ZooKeeper's port are refused while the cut lasts, so that it cannot reconnect (the
        other brokers keep the sessions they have)."""
        server = self.cluster.zookeeper
        assert server is not None, "the cluster runs an external ZooKeeper"
        host, port = self.cluster.host(broker_id), str(server.port)
        pid = self.cluster.pid(broker_id)

        def cut() -> None:
            self._drop("-s", host, "-d", server.host, "-p", "tcp", "--dport", port)
            self._drop("-s", server.host, "-d", host, "-p", "tcp", "--sport", port)
            local_ports = _zookeeper_connections(pid, server.port) if pid else []
            if local_ports:
                self._drop("-d", server.host, "-p", "tcp", "--syn", "--dport", port)
            for local in local_ports:
                self._drop("-p", "tcp", "--sport", str(local), "--dport", port)
                self._drop("-p", "tcp", "--sport", port, "--dport", str(local))

        self._event("partition-zk", [broker_id], cut)

    def heal(self) -> int:
        """Delete every iptables rule carrying this nemesis's tag (also ones a crashed earlier
        call left); returns how many were deleted."""
        self.rules.clear()
        if not iptables_available():
            return 0
        listed = subprocess.run(
            ["iptables", "-w", "5", "-S", "INPUT"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        deleted = 0
        for line in listed.splitlines():
            words = shlex.split(line)
            if words[:1] == ["-A"] and self.tag in words:
                _iptables("-D", *words[1:])
                deleted += 1
        return deleted

    def heal_all(self, timeout_s: float = 60.0) -> None:
        """Remove the partitions, resume paused brokers, start stopped ones."""
        self.heal()
        for broker_id in self.cluster.broker_ids:
            self.cluster.resume(broker_id)
        for broker_id in self.cluster.broker_ids:
            if not self.cluster.is_running(broker_id):
                self.cluster.start_broker(broker_id, timeout_s=timeout_s)


# ---- the campaign's faults -----------------------------------------------------------------

NEMESES = (
    "kill-leader",
    "kill-controller",
    "pause-leader",
    "pause-follower",
    "partition-leader",
    "partition-zk",
    "double-failover",
    "rolling-restart",
    "zk-restart",
)
NEEDS_ROOT = frozenset({"partition-leader", "partition-zk"})


class Faults:
    """One fault of each kind, injected and healed (durations from ``rng``): what
    scripts/chaos schedules and tests/cluster/test_faults.py runs one by one."""

    def __init__(self, nemesis: Nemesis, rng: random.Random, *, session_timeout_s: float) -> None:
        self.nemesis = nemesis
        self.cluster = nemesis.cluster
        self.rng = rng
        self.session_timeout_s = session_timeout_s

    def _partition_and_leader(self) -> tuple[int, int]:
        views = self.nemesis.partitions()
        led = sorted((p, v.leader) for p, v in views.items() if v.leader >= 0)
        if not led:
            return -1, -1
        return self.rng.choice(led)

    def run(self, kind: str) -> str:
        """Inject and heal one fault; returns what was done (for the log)."""
        method = getattr(self, kind.replace("-", "_"))
        result: str = method()
        return result

    def kill_leader(self) -> str:
        partition, leader = self._partition_and_leader()
        if leader < 0:
            return "kill-leader: no leader to kill"
        self.nemesis.kill(leader)
        time.sleep(self.rng.uniform(2, 10))
        self.nemesis.start(leader)
        return f"kill-leader: SIGKILL broker {leader} (leader of {partition}), restarted"

    def kill_controller(self) -> str:
        controller = self.nemesis.controller()
        if controller < 0:
            return "kill-controller: no controller"
        self.nemesis.kill(controller)
        time.sleep(self.rng.uniform(2, 10))
        self.nemesis.start(controller)
        return f"kill-controller: SIGKILL broker {controller}, restarted"

    def pause_leader(self) -> str:
        partition, leader = self._partition_and_leader()
        if leader < 0:
            return "pause-leader: no leader"
        seconds = self.session_timeout_s + self.rng.uniform(2, 6)
        self.nemesis.pause(leader)
        time.sleep(seconds)
        self.nemesis.resume(leader)
        return f"pause-leader: SIGSTOP broker {leader} (leader of {partition}) {seconds:.1f} s"

    def pause_follower(self) -> str:
        views = self.nemesis.partitions()
        followers = sorted(
            {b for v in views.values() for b in v.replicas if b != v.leader}
            & set(self.cluster.live_brokers())
        )
        if not followers:
            return "pause-follower: no follower"
        follower = self.rng.choice(followers)
        seconds = self.rng.uniform(8, 14)
        self.nemesis.pause(follower)
        time.sleep(seconds)
        self.nemesis.resume(follower)
        return f"pause-follower: SIGSTOP broker {follower} {seconds:.1f} s"

    def partition_leader(self) -> str:
        partition, leader = self._partition_and_leader()
        if leader < 0:
            return "partition-leader: no leader"
        seconds = self.rng.uniform(5, 12)
        self.nemesis.isolate_from_brokers(leader)
        time.sleep(seconds)
        self.nemesis.heal()
        return f"partition-leader: broker {leader} cut from the brokers {seconds:.1f} s"

    def partition_zk(self) -> str:
        partition, leader = self._partition_and_leader()
        if leader < 0:
            return "partition-zk: no leader"
        seconds = self.session_timeout_s + self.rng.uniform(2, 6)
        self.nemesis.isolate_from_zookeeper(leader)
        time.sleep(seconds)
        self.nemesis.heal()
        return f"partition-zk: broker {leader} cut from ZooKeeper {seconds:.1f} s"

    def double_failover(self) -> str:
        partition, first = self._partition_and_leader()
        if first < 0:
            return "double-failover: no leader"
        self.nemesis.kill(first)
        second = self.nemesis.wait_new_leader(partition, first, timeout_s=30)
        if second >= 0:
            self.nemesis.kill(second)
        self.nemesis.start(first)
        if second >= 0:
            time.sleep(self.rng.uniform(1, 4))
            self.nemesis.start(second)
        return f"double-failover: partition {partition}: SIGKILL {first}, then {second}"

    def rolling_restart(self) -> str:
        clean = self.rng.random() < 0.5
        for broker_id in self.cluster.broker_ids:
            self.nemesis.restart(broker_id, clean=clean)
            self.nemesis.wait_full_isr(timeout_s=60)
        return f"rolling-restart: {'SIGTERM' if clean else 'SIGKILL'} each broker in turn"

    def zk_restart(self) -> str:
        self.nemesis.restart_zookeeper()
        return "zk-restart: ZooKeeper SIGKILLed and started again"
