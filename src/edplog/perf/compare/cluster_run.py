"""The started cluster the cluster family's figures share, and the settings they agree on.

:class:`ClusterRun` wraps a started :class:`edplog.cluster.launcher.LocalCluster` with a
ZooKeeper client for partition states, creates and deletes the topics a figure uses, and keeps
``ctx.server_pids`` naming the cluster's processes (their CPU is the measured side's, not
other load).
"""

from __future__ import annotations

from typing import Any

from ...cluster.waiting import wait_until
from .model import Context

SIZE = 1024
SESSION_TIMEOUT_MS = 6000
BROKERS = 3
PROPERTIES = {"min.insync.replicas": "2", "default.replication.factor": "3"}
# Bounds on every wait (the loops of the family never run longer).
PRODUCE_CAP_S = 300.0
ISR_WAIT_S = 90.0


class ClusterRun:
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
        last: list[Any] = [None]

        def reached() -> bool:
            state = last[0] = self.zk.partition_state(topic, 0)
            if state is None or state.leader < 0 or len(state.isr) != size:
                return False
            return member is None or member in state.isr

        if not wait_until(reached, ISR_WAIT_S, 0.05, on_wait=self.cluster.check):
            raise TimeoutError(f"{topic}-0 did not reach an ISR of {size}: {last[0]}")
        return last[0]
