"""TLS to ZooKeeper and znode ACLs (zookeeper.ssl.*, zookeeper.set.acl) against a real ZooKeeper.

The ZooKeeper of these tests serves a plain port and a TLS port that requires client
certificates; its X.509 provider knows a TLS client by its certificate's subject. The brokers
share one certificate (one ZooKeeper identity, as Kafka's brokers must). "Another ZooKeeper
user" is a plain kazoo client on the plain port.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import InProcessCluster
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from security.tls_certs import CA, write_pem_keystore

from edplog.broker.config import BrokerConfig
from edplog.cluster import zk_security
from edplog.cluster.zk import ZkClient
from edplog.cluster.zookeeper_server import ServerTls, ZooKeeperServer, available
from edplog.errors import InvalidConfigError
from edplog.security.scram import ScramCredentials, credential_from_password

pytestmark = pytest.mark.skipif(not available(), reason="ZooKeeper is not installed")


class Files:
    def __init__(self, base: Path) -> None:
        ca = CA()
        self.ca = base / "ca.pem"
        self.ca.write_bytes(ca.cert_pem())
        server = ca.issue(server=True, CN="zookeeper")
        self.server = write_pem_keystore(base / "zookeeper.pem", server, ca)
        brokers = ca.issue(server=True, client_too=True, CN="edplog-brokers", O="edplog tests")
        self.brokers = write_pem_keystore(base / "brokers.pem", brokers, ca)
        other = ca.issue(server=True, client_too=True, CN="someone-else")
        self.other = write_pem_keystore(base / "other.pem", other, ca)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ZooKeeperServer, Files]]:
    base = tmp_path_factory.mktemp("zk-tls")
    files = Files(base)
    server = ZooKeeperServer(
        base / "zk", tls=ServerTls(str(files.server), str(files.ca)), fsync=False
    )
    server.start()
    try:
        yield server, files
    finally:
        server.stop()


def context(files: Files, keystore: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(files.ca))
    ctx.load_cert_chain(str(keystore))
    return ctx


def plain_client(server: ZooKeeperServer, chroot: str) -> KazooClient:
    kazoo = KazooClient(hosts=server.connect_string + chroot)
    kazoo.start(timeout=15)
    return kazoo


def test_znodes_made_with_set_acl_are_read_only_to_other_zookeeper_users(secured) -> None:
    """A broker session over TLS with zookeeper.set.acl creates the cluster's znodes, a topic
    and a SCRAM credential. Another ZooKeeper user (no certificate, plain port) may read the
    topic but not change or delete it, nor write the controller epoch, nor even read the
    credential; a session with another certificate cannot set up as a broker or change the
    topic; a second session with the brokers' certificate changes the topic."""
    server, files = secured
    chroot = "/acl-test"
    broker = ZkClient(
        server.secure_connect_string + chroot, tls=context(files, files.brokers), set_acl=True
    )
    broker.start()
    try:
        ta = broker.create_topic("orders", {0: (1, 2, 3)}, {"retention.ms": "1000"})
        credential = credential_from_password("SCRAM-SHA-512", "secret", iterations=4096)
        table = ScramCredentials({"alice": {"SCRAM-SHA-512": credential}})
        zk_security.change_credentials(broker, lambda _: table)

        other = plain_client(server, chroot)
        try:
            data, _ = other.get("/brokers/topics/orders")
            assert b"partitions" in data
            for attempt in (
                lambda: other.set("/brokers/topics/orders", b"{}"),
                lambda: other.set("/controller_epoch", b"99"),
                lambda: other.delete("/brokers/topics/orders", recursive=True),
                lambda: other.create("/brokers/ids/7", b"{}"),
                lambda: other.get("/config/users/alice"),
            ):
                with pytest.raises(NoAuthError):
                    attempt()
        finally:
            other.stop()
            other.close()

        stranger = ZkClient(server.secure_connect_string + chroot, tls=context(files, files.other))
        try:
            with pytest.raises(NoAuthError):  # it cannot even set up as a broker would
                stranger.start()
            with pytest.raises(NoAuthError):
                stranger.kazoo.set("/brokers/topics/orders", b"{}")
        finally:
            stranger.stop()

        peer = ZkClient(server.secure_connect_string + chroot, tls=context(files, files.brokers))
        peer.start()
        try:
            grown = type(ta)("orders", ta.topic_id, {0: (1, 2, 3), 1: (2, 3, 1)}, {}, {}, 0)
            assert peer.set_assignment(grown).version == 1
            assert zk_security.read_credentials(peer)[0].lookup("alice", "SCRAM-SHA-512")
        finally:
            peer.stop()
    finally:
        broker.stop()


def broker_tls(files: Files) -> dict[str, str]:
    return {
        "zookeeper.ssl.client.enable": "true",
        "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
        "zookeeper.ssl.keystore.location": str(files.brokers),
        "zookeeper.ssl.keystore.type": "PEM",
        "zookeeper.ssl.truststore.location": str(files.ca),
        "zookeeper.ssl.truststore.type": "PEM",
        "zookeeper.set.acl": "true",
    }


def test_a_cluster_over_tls_to_zookeeper_replicates(secured, tmp_path) -> None:
    """Three brokers configured with Kafka's zookeeper.ssl.* names and zookeeper.set.acl
    register, elect a controller and replicate a topic of RF 3 (every ZooKeeper write of
    theirs goes through the TLS port and the ACLs they set), and the plain port's anonymous
    user cannot change the partition state they wrote."""
    server, files = secured
    cluster = InProcessCluster(server.secure_connect_string + "/tls-cluster", tmp_path, 3)
    cluster.properties |= broker_tls(files)
    with cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        for fut in admin.create_topics([NewTopic("over-tls", 1, 3)]).values():
            fut.result(30)
        cluster.wait_isr("over-tls", 0, 3)
    other = plain_client(server, "/tls-cluster")
    try:
        with pytest.raises(NoAuthError):
            other.set("/brokers/topics/over-tls/partitions/0/state", b"{}")
    finally:
        other.stop()
        other.close()


@pytest.mark.parametrize(
    ("props", "named"),
    [
        ({"zookeeper.set.acl": "true"}, "needs zookeeper.ssl.client.enable"),
        ({"zookeeper.ssl.keystore.location": "/x.pem"}, "zookeeper.ssl.client.enable=true"),
        ({"zookeeper.ssl.client.enable": "true"}, "needs zookeeper.ssl.keystore.location"),
        (
            {"zookeeper.ssl.client.enable": "true", "zookeeper.ssl.ocsp.enable": "true"},
            "zookeeper.ssl.ocsp.enable",
        ),
        ({"zookeeper.clientCnxnSocket": "x.Other"}, "zookeeper.clientCnxnSocket"),
        ({"zookeeper.sasl.client": "true"}, "zookeeper.sasl.client"),
    ],
)
def test_zookeeper_settings_that_cannot_work_are_refused(props: dict[str, Any], named: str):
    """Each stops the start with a message naming it (a broker must not believe it talks to
    ZooKeeper securely when it does not)."""
    with pytest.raises(InvalidConfigError, match=named):
        BrokerConfig.from_properties({"zookeeper.connect": "127.0.0.1:2181", **props})


def test_zookeeper_tls_settings_on_a_single_node_are_refused() -> None:
    """Without zookeeper.connect nothing would read them."""
    with pytest.raises(InvalidConfigError, match="single node"):
        BrokerConfig.from_properties({"zookeeper.set.acl": "true"})
