"""A cluster whose brokers replicate over a secured listener and serve clients over SASL_SSL.

Three in-process brokers (127.0.0.2-4) and a real ZooKeeper. Each broker has three listeners:
PLAINTEXT (the test's own tooling), INTERNAL (``inter.broker.listener.name``: SSL with client
certificates required, or SASL_SSL with PLAIN) and CLIENTS (SASL_SSL, PLAIN users), each with
its own certificate for its own address, signed by one test CA. confluent-kafka is the client.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import InProcessCluster, wait_for
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AclOperation,
    AdminClient,
    NewTopic,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from docs_examples import example, run_example
from security.acl_helpers import binding, create, every
from security.tls_certs import CA, write_pem_keystore

from edplog.cluster.zk import ZkClient

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
CLIENT_USERS = f'{PLAIN} required user_alice="alice-secret";'
TIMEOUT_S = 30


class SecuredCluster(InProcessCluster):
    """See the module docstring; ``internal`` is INTERNAL's protocol, ``passwords`` the
    password each broker logs in to the others with (SASL_SSL)."""

    def __init__(
        self,
        zookeeper: str,
        base: Path,
        internal: str,
        passwords: dict[int, str] | None = None,
        mechanism: str = "PLAIN",
        **properties: str,
    ) -> None:
        super().__init__(zookeeper, base, 3, **properties)
        self.internal = internal
        self.passwords = passwords or {}
        self.mechanism = mechanism
        ca = CA()
        self.ca_file = base / "ca.pem"
        self.ca_file.write_bytes(ca.cert_pem())
        self.keystores = {}
        for b in range(1, 4):
            issued = ca.issue(
                server=True, addresses=(self.host(b),), client_too=True, CN=f"broker{b}"
            )
            self.keystores[b] = write_pem_keystore(base / f"broker{b}.pem", issued, ca)

    def listener_properties(self, broker_id: int) -> dict[str, str]:
        host = self.host(broker_id)
        port = self.ports.get(broker_id, 0)
        props = {
            "listeners": f"PLAINTEXT://{host}:{port},INTERNAL://{host}:0,CLIENTS://{host}:0",
            "listener.security.protocol.map": (
                f"PLAINTEXT:PLAINTEXT,INTERNAL:{self.internal},CLIENTS:SASL_SSL"
            ),
            "inter.broker.listener.name": "INTERNAL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystores[broker_id]),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "listener.name.clients.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.clients.plain.sasl.jaas.config": CLIENT_USERS,
        }
        if self.internal == "SSL":
            props["listener.name.internal.ssl.client.auth"] = "required"
        elif self.mechanism == "PLAIN":
            password = self.passwords.get(broker_id, "broker-secret")
            props |= {
                "sasl.mechanism.inter.broker.protocol": "PLAIN",
                "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
                "listener.name.internal.plain.sasl.jaas.config": (
                    f'{PLAIN} required username="broker" password="{password}" '
                    'user_broker="broker-secret";'
                ),
            }
        else:
            props |= {
                "sasl.mechanism.inter.broker.protocol": self.mechanism,
                "listener.name.internal.sasl.enabled.mechanisms": self.mechanism,
                f"listener.name.internal.{self.mechanism.lower()}.sasl.jaas.config": (
                    f'{SCRAM} required username="broker" password="broker-secret";'
                ),
            }
        return props

    def clients(
        self,
        user: str = "alice",
        password: str = "alice-secret",
        mechanism: str = "PLAIN",
        brokers: list[int] | None = None,
    ) -> dict[str, Any]:
        chosen = [self.brokers[b] for b in brokers] if brokers else self.brokers.values()
        return {
            "bootstrap.servers": ",".join(b.bootstrap_for("CLIENTS") for b in chosen),
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(self.ca_file),
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password,
        }


def produce(conf: dict[str, Any], topic: str, values: list[bytes]) -> None:
    failed: list[Any] = []
    p = Producer({**conf, "acks": "all", "enable.idempotence": True})
    for v in values:
        p.produce(topic, v, on_delivery=lambda err, msg: failed.append(err) if err else None)
    assert p.flush(TIMEOUT_S) == 0 and not failed, failed


def consume_all(conf: dict[str, Any], topic: str, count: int) -> list[bytes]:
    c = Consumer({**conf, "group.id": f"read-{topic}", "auto.offset.reset": "earliest"})
    out: list[bytes] = []
    try:
        c.subscribe([topic])
        while len(out) < count:
            msg = c.poll(TIMEOUT_S)
            assert msg is not None, f"read stopped at {len(out)} of {count}"
            assert not msg.error(), msg.error()
            out.append(msg.value())
    finally:
        c.close()
    return out


@pytest.mark.parametrize("internal", ["SSL", "SASL_SSL"])
def test_replication_over_a_secured_listener_and_clients_over_sasl_ssl(
    zookeeper, tmp_path, internal
) -> None:
    """Brokers register every listener (with its protocol) and replicate over INTERNAL (mTLS,
    or SASL_SSL with PLAIN): a topic of RF 3 gets its whole ISR. A client on CLIENTS is told
    each broker's CLIENTS address, produces at acks=all, keeps producing after the leader
    stops (the new leader was in sync through INTERNAL) and reads every record back."""
    cluster = SecuredCluster(zookeeper, tmp_path, internal)
    with cluster:
        conf = cluster.clients()
        admin = AdminClient(conf)
        for fut in admin.create_topics([NewTopic("secure", 1, 3)]).values():
            fut.result(TIMEOUT_S)
        told = {b.id: b.port for b in admin.list_topics(timeout=TIMEOUT_S).brokers.values()}
        assert told == {
            b: int(broker.bootstrap_for("CLIENTS").rsplit(":", 1)[1])
            for b, broker in cluster.brokers.items()
        }
        zk = ZkClient(zookeeper)
        zk.start()
        try:
            registered = zk.live_brokers()[1]
        finally:
            zk.stop()
        assert [e.split("://")[0] for e in registered.endpoints] == [
            "PLAINTEXT",
            "INTERNAL",
            "CLIENTS",
        ]
        assert dict(registered.protocols)["INTERNAL"] == internal
        assert registered.endpoint("INTERNAL") == (registered.host, registered.port)

        leader = cluster.wait_isr("secure", 0, 3).leader_id
        first = [b"before-%d" % i for i in range(300)]
        produce(conf, "secure", first)
        cluster.stop(leader)
        wait_for(
            lambda: cluster.partition("secure", 0).leader_id not in (-1, leader),
            what="a new leader",
        )
        second = [b"after-%d" % i for i in range(300)]
        produce(conf, "secure", second)
        assert sorted(consume_all(conf, "secure", 600)) == sorted(first + second)


def test_a_broker_with_the_wrong_inter_broker_password_does_not_replicate(
    zookeeper, tmp_path, caplog
) -> None:
    """Broker 3 logs in to the others' INTERNAL listener with a wrong password: its replica
    fetcher says it cannot log in, its copy of a partition led by broker 1 stays empty and
    out of the ISR, while brokers 1 and 2 keep the partition writable at acks=all."""
    caplog.set_level(logging.ERROR, logger="edplog.cluster")
    cluster = SecuredCluster(zookeeper, tmp_path, "SASL_SSL", passwords={3: "wrong"})
    with cluster:
        conf = cluster.clients()
        admin = AdminClient(conf)
        topic = NewTopic("guarded", 1, replica_assignment=[[1, 2, 3]])
        for fut in admin.create_topics([topic]).values():
            fut.result(TIMEOUT_S)
        produce(conf, "guarded", [b"x%d" % i for i in range(50)])
        wait_for(
            lambda: any("cannot log in" in r.getMessage() for r in caplog.records),
            what="broker 3's fetcher to report the refused login",
        )
        # Created with all three in its ISR, the partition drops broker 3 once it has lagged
        # for replica.lag.time.max.ms.
        part = wait_for(
            lambda: 3 not in (p := cluster.partition("guarded", 0)).isr and p,
            what="broker 3 to leave the ISR",
        )
        assert part.leader_id == 1
        assert cluster.local_log(3, "guarded", 0).log_end_offset == 0
        assert cluster.local_log(1, "guarded", 0).log_end_offset == 50


def produce_error(conf: dict[str, Any], topic: str) -> Any:
    """The error of one produce (None once delivered)."""
    result: list[Any] = []
    p = Producer({**conf, "message.timeout.ms": 10_000, "acks": "all"})
    p.produce(topic, b"probe", on_delivery=lambda err, msg: result.append(err))
    p.flush(TIMEOUT_S)
    return result[0] if result else "not answered"


def test_scram_credentials_and_acls_are_the_clusters(zookeeper, tmp_path) -> None:
    """With an authorizer and SCRAM-SHA-512 between brokers, everything lives in ZooKeeper:
    credentials created through broker 1 let the brokers log in to each other (the ISR
    fills) and let alice log in on broker 3; an ACL created through broker 2 lets alice write
    to a partition led by broker 1 while bob, without one, is refused
    (TOPIC_AUTHORIZATION_FAILED); broker 3 describes it; once it is deleted through broker 3,
    broker 1 refuses alice too."""
    cluster = SecuredCluster(
        zookeeper,
        tmp_path,
        "SASL_SSL",
        mechanism="SCRAM-SHA-512",
        authorizer_class_name="kafka.security.authorizer.AclAuthorizer",
        # The brokers, and the test's own tooling on the PLAINTEXT listener.
        super_users="User:broker;User:ANONYMOUS",
    )
    with cluster:
        tools = {
            b: AdminClient({"bootstrap.servers": cluster.brokers[b].bootstrap}) for b in (1, 2, 3)
        }
        # The brokers' own credential, as docs/security.md makes it.
        made = example("security.md", "alter_user_scram_credentials")
        run_example(made.replace("10.0.0.1:9092", cluster.brokers[1].bootstrap))
        sha512 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        upserts = [
            UserScramCredentialUpsertion(user, sha512, f"{user}-secret".encode())
            for user in ("alice", "bob")
        ]
        for fut in tools[1].alter_user_scram_credentials(upserts).values():
            fut.result(TIMEOUT_S)
        topic = NewTopic("shared", 1, replica_assignment=[[1, 2, 3]])
        for fut in tools[1].create_topics([topic]).values():
            fut.result(TIMEOUT_S)
        cluster.wait_isr("shared", 0, 3, timeout_s=60)

        alice = cluster.clients("alice", "alice-secret", "SCRAM-SHA-512", brokers=[3])
        bob = cluster.clients("bob", "bob-secret", "SCRAM-SHA-512", brokers=[3])
        assert produce_error(alice, "shared").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        acls = [
            binding(ResourceType.TOPIC, "shared", "User:alice", op)
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
        ]
        create(tools[2], acls)
        wait_for(lambda: produce_error(alice, "shared") is None, what="broker 1 to allow alice")
        assert produce_error(bob, "shared").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        everything = every()
        wait_for(
            lambda: (
                sorted(a.operation for a in tools[3].describe_acls(everything).result(TIMEOUT_S))
                == sorted(a.operation for a in acls)
            ),
            what="broker 3 to describe the ACLs",
        )
        for fut in tools[3].delete_acls([everything]).values():
            assert len(fut.result(TIMEOUT_S)) == 2
        wait_for(
            lambda: (
                getattr(produce_error(alice, "shared"), "code", lambda: None)()
                == KafkaError.TOPIC_AUTHORIZATION_FAILED
            ),
            what="broker 1 to refuse alice again",
        )


def test_role_bindings_are_the_clusters(zookeeper, tmp_path, capsys) -> None:
    """Role bindings in a cluster live in ZooKeeper: ``edplog security role-bindings add
    --zookeeper`` binds DeveloperWrite on a topic to alice, and alice, refused before
    (TOPIC_AUTHORIZATION_FAILED), may then produce through broker 3 to the partition broker
    1 leads; ``list`` shows the binding; once ``remove`` drops it, alice is refused again."""
    from edplog.cli import main

    cluster = SecuredCluster(
        zookeeper,
        tmp_path,
        "SASL_SSL",
        authorizer_class_name="kafka.security.authorizer.AclAuthorizer",
        super_users="User:broker;User:ANONYMOUS",
    )
    with cluster:
        tools = AdminClient({"bootstrap.servers": cluster.brokers[1].bootstrap})
        topic = NewTopic("orders", 1, replica_assignment=[[1, 2, 3]])
        for fut in tools.create_topics([topic]).values():
            fut.result(TIMEOUT_S)
        cluster.wait_isr("orders", 0, 3, timeout_s=60)
        alice = cluster.clients(brokers=[3])
        assert produce_error(alice, "orders").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

        where = ["--zookeeper", cluster.zookeeper]
        what = ["--principal", "User:alice", "--role", "DeveloperWrite"]
        what += ["--resource", "Topic:orders"]
        assert main(["security", "role-bindings", "add", *where, *what]) == 0
        wait_for(lambda: produce_error(alice, "orders") is None, what="the binding in force")
        capsys.readouterr()
        assert main(["security", "role-bindings", "list", *where, "--json"]) == 0
        listed = capsys.readouterr().out
        assert '"principal": "User:alice"' in listed and '"role": "DeveloperWrite"' in listed
        assert main(["security", "role-bindings", "remove", *where, *what]) == 0
        wait_for(
            lambda: (
                getattr(produce_error(alice, "orders"), "code", lambda: None)()
                == KafkaError.TOPIC_AUTHORIZATION_FAILED
            ),
            what="alice refused again",
        )


def test_a_role_bindings_file_in_a_clustered_broker_stops_its_start(zookeeper, tmp_path) -> None:
    """A clustered broker whose data directory still holds a role-bindings.json (a single
    node's, say) does not start: the file would not be read, and the message says how to
    move its bindings into the cluster's. Without the file the same store loads the
    cluster's (empty) bindings."""
    import asyncio

    from edplog.broker.config import BrokerConfig
    from edplog.broker.role_store import ZkRoleStore
    from edplog.errors import InvalidConfigError
    from edplog.security.acl import AclAuthorizer
    from edplog.security.roles import RoleBinding, bindings_path, write_bindings

    zk = ZkClient(zookeeper)
    zk.start()
    try:
        config = BrokerConfig(data_dir=str(tmp_path))
        loop = asyncio.new_event_loop()
        try:
            store = ZkRoleStore(config, AclAuthorizer(), zk, loop)
            store.load()
            write_bindings(bindings_path(tmp_path), [RoleBinding("User:carol", "ClusterAdmin")])
            with pytest.raises(InvalidConfigError, match="role-bindings add --zookeeper"):
                ZkRoleStore(config, AclAuthorizer(), zk, loop).load()
        finally:
            loop.close()
    finally:
        zk.stop()
