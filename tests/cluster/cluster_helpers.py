"""In-process clusters for the replication tests: N real brokers (each on its own thread and
event loop, listening on its own loopback address 127.0.0.<id+1>) and a real ZooKeeper."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.client import Client

FAST = {
    "group.initial.rebalance.delay.ms": "0",
    "zookeeper.session.timeout.ms": "4000",
    "replica.lag.time.max.ms": "3000",
    "replica.fetch.wait.max.ms": "200",
    "replica.fetch.backoff.ms": "100",
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
}


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a broker mid-failover may refuse the connection
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class InProcessCluster:
    def __init__(self, zookeeper: str, base: Path, brokers: int = 3, **properties: str) -> None:
        self.zookeeper = zookeeper
        self.base = base
        self.count = brokers
        self.properties = {**FAST, **{k.replace("_", "."): v for k, v in properties.items()}}
        self.brokers: dict[int, BackgroundBroker] = {}
        self.ports: dict[int, int] = {}

    def host(self, broker_id: int) -> str:
        return f"127.0.0.{broker_id + 1}"

    def config(self, broker_id: int) -> BrokerConfig:
        props = {
            **self.properties,
            "broker.id": str(broker_id),
            "zookeeper.connect": self.zookeeper,
            "log.dirs": str(self.base / f"broker-{broker_id}"),
            **self.listener_properties(broker_id),
        }
        return BrokerConfig.from_properties(props)

    def listener_properties(self, broker_id: int) -> dict[str, str]:
        """One PLAINTEXT listener on the broker's own address, on the port it had before a
        restart (a subclass may add listeners: the first one stays PLAINTEXT, for the test's
        own client)."""
        return {"listeners": f"PLAINTEXT://{self.host(broker_id)}:{self.ports.get(broker_id, 0)}"}

    def start(self, broker_id: int) -> BackgroundBroker:
        broker = BackgroundBroker(self.config(broker_id)).start()
        self.brokers[broker_id] = broker
        self.ports[broker_id] = int(broker.bootstrap.rsplit(":", 1)[1])
        return broker

    def start_all(self) -> InProcessCluster:
        for b in range(1, self.count + 1):
            self.start(b)
        wait_for(lambda: len(self.metadata().brokers) == self.count, what="every broker live")
        return self

    def stop(self, broker_id: int) -> None:
        broker = self.brokers.pop(broker_id, None)
        if broker is not None:
            broker.stop()

    def stop_all(self) -> None:
        for b in list(self.brokers):
            self.stop(b)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def any_bootstrap(self) -> str:
        return next(iter(self.brokers.values())).bootstrap

    def metadata(self, topics: list[str] | None = None) -> Any:
        with Client(self.any_bootstrap()) as c:
            return c.metadata(topics)

    def partition(self, topic: str, index: int) -> Any:
        md = self.metadata([topic])
        return next(p for p in md.topics[topic].partitions if p.partition == index)

    def wait_isr(self, topic: str, index: int, size: int, timeout_s: float = 30.0) -> Any:
        return wait_for(
            lambda: (p := self.partition(topic, index)).leader_id >= 0 and len(p.isr) == size and p,
            timeout_s,
            f"{topic}-{index} to have {size} in-sync replicas",
        )

    def local_log(self, broker_id: int, topic: str, index: int) -> Any:
        broker = self.brokers[broker_id].broker
        assert broker is not None and broker.store is not None
        return broker.store.log(topic, index)

    def __enter__(self) -> InProcessCluster:
        return self.start_all()

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
