"""pytest plugin: a real Kafka-compatible broker for your tests, without Docker or a JVM.

Registered through the ``pytest11`` entry point, so installing edplog is enough::

    def test_roundtrip(kafka_broker):
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": kafka_broker})
        ...

``kafka_broker`` starts an in-process broker (its own thread and event loop) on a free port
of 127.0.0.1 with a temporary data directory and yields its bootstrap address. The broker is
per test, so tests never see each other's topics. ``kafka_broker_factory`` starts brokers with
chosen ``server.properties`` settings and can restart one on the same data directory.

The plugin loads in every pytest run of every project that has edplog installed, so it imports
nothing of the broker until a fixture is used: a test session that never asks for a broker
pays nothing for it (tests/test_pytest_plugin.py checks that no ``edplog.broker`` module is
imported).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # annotations only; the broker is imported when a fixture runs
    from .broker.runner import BackgroundBroker

# Consumer groups in tests should form at once; Kafka's 3 s default only helps big groups.
TEST_PROPERTIES = {"group.initial.rebalance.delay.ms": "0"}


def start_broker(data_dir: str | Path, **properties: Any) -> BackgroundBroker:
    """Start a broker on a free 127.0.0.1 port in ``data_dir``; Kafka property names as
    keyword arguments with dots spelled as underscores (``num_partitions=3``)."""
    from .broker.config import BrokerConfig
    from .broker.runner import BackgroundBroker

    props = {**TEST_PROPERTIES, **{k.replace("_", "."): str(v) for k, v in properties.items()}}
    props.setdefault("listeners", "PLAINTEXT://127.0.0.1:0")
    props["log.dirs"] = str(data_dir)
    config = BrokerConfig.from_properties(props)
    return BackgroundBroker(config).start()


@pytest.fixture
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address ("127.0.0.1:PORT") of a fresh in-process broker."""
    broker = start_broker(tmp_path_factory.mktemp("edplog-broker"))
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka_broker_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., BackgroundBroker]]:
    """Start brokers on demand: ``factory(data_dir=None, **properties)``; all are stopped at
    the end of the test. Pass the same ``data_dir`` again to restart on the same logs."""
    started: list[BackgroundBroker] = []

    def factory(data_dir: str | Path | None = None, **properties: Any) -> BackgroundBroker:
        path = data_dir if data_dir is not None else tmp_path_factory.mktemp("edplog-broker")
        broker = start_broker(path, **properties)
        started.append(broker)
        return broker

    try:
        yield factory
    finally:
        for broker in reversed(started):
            broker.stop()


@pytest.fixture(scope="session")
def zookeeper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One private ZooKeeper (Debian's package, on a free 127.0.0.1 port) for the whole test
    session; skips the test where ZooKeeper is not installed. Tests share it through
    ``zookeeper``, each in its own chroot."""
    from .cluster import zookeeper_server

    if not zookeeper_server.available():
        pytest.skip("ZooKeeper is not installed (apt-get install -y zookeeper)")
    server = zookeeper_server.ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"), fsync=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zookeeper(zookeeper_server: Any, request: pytest.FixtureRequest) -> str:
    """A ``zookeeper.connect`` string with a chroot of its own for this test
    (``127.0.0.1:PORT/edplog-test-<n>``): tests never see each other's znodes."""
    import uuid

    return f"{zookeeper_server.connect_string}/edplog-test-{uuid.uuid4().hex[:12]}"


# ---- a local cluster: ZooKeeper and broker processes ---------------------------------------

#: What ``kafka_cluster`` runs: Kafka's canonical safe settings (RF=3, min ISR 2, acks=all
#: tolerates one failure) with short timeouts so that failovers happen within a test.
CLUSTER_TEST_PROPERTIES = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "unclean.leader.election.enable": "false",
    "replica.lag.time.max.ms": "5000",
    "group.initial.rebalance.delay.ms": "0",
}
CLUSTER_TEST_SESSION_TIMEOUT_MS = 6000


@pytest.fixture
def kafka_cluster_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Any]]:
    """Start local clusters on demand: ``factory(brokers=3, session_timeout_ms=6000,
    **properties)`` (Kafka property names with dots spelled as underscores, over
    ``CLUSTER_TEST_PROPERTIES``) returns a started
    :class:`edplog.cluster.launcher.LocalCluster` with its own private ZooKeeper; all are
    stopped at the end of the test. Skips where ZooKeeper is not installed."""
    from .cluster import zookeeper_server

    if not zookeeper_server.available():
        pytest.skip("ZooKeeper is not installed (apt-get install -y zookeeper)")
    from .cluster.launcher import LocalCluster

    started: list[LocalCluster] = []

    def factory(
        brokers: int = 3,
        *,
        session_timeout_ms: int = CLUSTER_TEST_SESSION_TIMEOUT_MS,
        timeout_s: float = 120.0,
        **properties: Any,
    ) -> LocalCluster:
        props = {**CLUSTER_TEST_PROPERTIES}
        rf = str(min(3, brokers))
        props["default.replication.factor"] = props["offsets.topic.replication.factor"] = rf
        props["min.insync.replicas"] = str(min(2, brokers))
        props.update({k.replace("_", "."): str(v) for k, v in properties.items()})
        cluster = LocalCluster(
            tmp_path_factory.mktemp("edplog-cluster"),
            brokers,
            properties=props,
            session_timeout_ms=session_timeout_ms,
        )
        started.append(cluster)
        cluster.start(timeout_s=timeout_s)
        return cluster

    try:
        yield factory
    finally:
        for cluster in reversed(started):
            cluster.stop()


@pytest.fixture
def kafka_cluster(kafka_cluster_factory: Callable[..., Any]) -> Any:
    """A started 3-broker :class:`edplog.cluster.launcher.LocalCluster` (RF=3, min ISR 2,
    6 s sessions); ``.bootstrap`` is its ``bootstrap.servers``. Stopped at the end."""
    return kafka_cluster_factory()
