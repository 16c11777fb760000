"""SASL listeners in a running broker, with confluent-kafka (librdkafka) and kcat as clients.

Each broker has a PLAINTEXT listener (where the test, anonymous, administers it) and a
SASL_PLAINTEXT one. Each test says what was tried and what must hold."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.errors import InvalidConfigError

TIMEOUT_S = 30
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'user_alice="alice-secret" user_admin="admin-secret";'
)


def sasl_props(mechanisms: str = "PLAIN,SCRAM-SHA-512", **extra: str) -> dict[str, str]:
    return {
        "listeners": "PLAINTEXT://127.0.0.1:0,CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "listener.name.clients.sasl.enabled.mechanisms": mechanisms,
        "listener.name.clients.plain.sasl.jaas.config": JAAS,
        "group.initial.rebalance.delay.ms": "0",
        **extra,
    }


def client(broker: BackgroundBroker, mechanism: str, user: str, password: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": broker.bootstrap_for("CLIENTS"),
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def roundtrip(conf: dict[str, Any], topic: str, value: bytes) -> bytes:
    """Produce one record and read it back with a consumer in a group (both over SASL)."""
    errors: list[Any] = []
    p = Producer({**conf, "message.timeout.ms": 20_000, "error_cb": errors.append})
    p.produce(topic, value, on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(TIMEOUT_S) == 0 and not errors, errors
    group = f"g-{topic}-{conf['sasl.username']}"
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        for _ in range(60):
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                return bytes(msg.value())
        raise AssertionError("nothing read over SASL in 30 s")
    finally:
        c.close()


def auth_error(conf: dict[str, Any]) -> KafkaError:
    """The error a producer meets when its login fails."""
    seen: list[KafkaError] = []
    p = Producer({**conf, "error_cb": seen.append, "message.timeout.ms": 5000})
    p.produce("anything", b"x")
    p.flush(10)
    authentication = [e for e in seen if e.code() == KafkaError._AUTHENTICATION]
    assert authentication, seen
    return authentication[0]


def test_plain_and_scram_log_in_and_name_the_principal(start) -> None:
    """PLAIN with the listener's JAAS users, and SCRAM-SHA-512 with a credential set through
    AlterUserScramCredentials on the PLAINTEXT listener: both produce and consume in a group.
    With ACLs on, the principals they log in as are what the authorizer judges: alice may
    Write and Read her topic, bob (SCRAM) is refused it."""
    broker = start(
        sasl_props(
            **{
                "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                "super.users": "User:ANONYMOUS",
                "allow.everyone.if.no.acl.found": "true",
            }
        )
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    for fut in admin.create_topics([NewTopic("sasl-a", 1, 1), NewTopic("mine", 1, 1)]).values():
        fut.result(TIMEOUT_S)
    upsert = UserScramCredentialUpsertion(
        "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"bob-secret"
    )
    for fut in admin.alter_user_scram_credentials([upsert]).values():
        fut.result(TIMEOUT_S)

    assert roundtrip(client(broker, "PLAIN", "alice", "alice-secret"), "sasl-a", b"p") == b"p"
    bob = client(broker, "SCRAM-SHA-512", "bob", "bob-secret")
    assert roundtrip(bob, "sasl-a", b"s") == b"p"  # the first record of the topic

    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    grant = AclBinding(
        ResourceType.TOPIC,
        "mine",
        ResourcePatternType.LITERAL,
        "User:alice",
        "*",
        AclOperation.ALL,
        AclPermissionType.ALLOW,
    )
    for fut in admin.create_acls([grant]).values():
        fut.result(TIMEOUT_S)
    assert roundtrip(client(broker, "PLAIN", "alice", "alice-secret"), "mine", b"m") == b"m"
    errors: list[Any] = []
    p = Producer({**bob, "message.timeout.ms": 10_000})
    p.produce("mine", b"no", on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT_S)
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_wrong_passwords_unknown_users_and_mechanisms_are_refused(start) -> None:
    """A wrong PLAIN password, an unknown PLAIN user, a wrong SCRAM password and an unknown
    SCRAM user all fail authentication (the broker's message reaches the client), and a
    mechanism the listener does not enable is refused at the handshake; the broker keeps
    serving a good login afterwards."""
    broker = start(sasl_props())
    for mechanism, user, password in (
        ("PLAIN", "alice", "wrong"),
        ("PLAIN", "mallory", "x"),
        ("SCRAM-SHA-512", "alice", "alice-secret"),  # no SCRAM credential
    ):
        err = auth_error(client(broker, mechanism, user, password))
        assert "authentication failed" in err.str().lower(), err.str()
    err = auth_error(client(broker, "SCRAM-SHA-256", "alice", "alice-secret"))
    assert "SCRAM-SHA-256" in err.str() or "mechanism" in err.str().lower(), err.str()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    admin.create_topics([NewTopic("after", 1, 1)])["after"].result(TIMEOUT_S)
    conf = client(broker, "PLAIN", "alice", "alice-secret")
    assert roundtrip(conf, "after", b"ok") == b"ok"


def test_sasl_ssl_logs_in_over_tls(start, tmp_path) -> None:
    """SASL_SSL: the TLS handshake first (the client trusts the test CA), then a PLAIN login
    inside it; produce and consume work, and a wrong password still fails."""
    from tls_certs import CA, make_files

    files = make_files(tmp_path / "certs", CA())
    props = sasl_props(
        **{
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(files.keystore),
        }
    )
    broker = start(props)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    admin.create_topics([NewTopic("over-tls", 1, 1)])["over-tls"].result(TIMEOUT_S)
    conf = {
        **client(broker, "PLAIN", "alice", "alice-secret"),
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(files.ca),
        "ssl.endpoint.identification.algorithm": "none",
    }
    assert roundtrip(conf, "over-tls", b"t") == b"t"
    err = auth_error({**conf, "sasl.password": "wrong"})
    assert "authentication failed" in err.str().lower(), err.str()


def test_a_request_before_login_closes_the_connection(start) -> None:
    """A plaintext client on the SASL port: its Metadata before any SASL handshake closes the
    connection (as Kafka does) and no topic is created."""
    broker = start(sasl_props())
    seen: list[KafkaError] = []
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap_for("CLIENTS"),
            "error_cb": seen.append,
            "message.timeout.ms": 3000,
        }
    )
    p.produce("sneaky", b"x")
    p.flush(6)
    assert seen and all(e.code() != KafkaError.NO_ERROR for e in seen)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    assert "sneaky" not in admin.list_topics(timeout=TIMEOUT_S).topics


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_produces_and_consumes_with_plain(start) -> None:
    """kcat with PLAIN over SASL_PLAINTEXT: what it produces it reads back. (Debian 12's kcat
    links librdkafka 2.0.2, whose SCRAM final message repeats the client nonce, a bug fixed in
    librdkafka 2.6.1; Kafka 4 refuses that message and so does edplog, RFC 5802's rule.)"""
    broker = start(sasl_props())
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    admin.create_topics([NewTopic("kc", 1, 1)])["kc"].result(TIMEOUT_S)
    auth = [
        "-b",
        broker.bootstrap_for("CLIENTS"),
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanisms=PLAIN",
        "-X",
        "sasl.username=admin",
        "-X",
        "sasl.password=admin-secret",
    ]
    subprocess.run(
        ["kcat", *auth, "-P", "-t", "kc"], input=b"one\ntwo\n", check=True, timeout=TIMEOUT_S
    )
    out = subprocess.run(
        ["kcat", *auth, "-C", "-t", "kc", "-o", "beginning", "-c", "2", "-e"],
        capture_output=True,
        check=True,
        timeout=TIMEOUT_S,
    )
    assert out.stdout.split() == [b"one", b"two"]


@pytest.mark.parametrize(
    ("props", "named"),
    [
        ({"listener.name.clients.sasl.enabled.mechanisms": "GSSAPI"}, "GSSAPI"),
        ({"listener.name.clients.sasl.enabled.mechanisms": "OAUTHBEARER"}, "OAUTHBEARER"),
        ({"listener.name.clients.plain.sasl.jaas.config": "x required a=1;"}, "PlainLoginModule"),
        ({"connections.max.reauth.ms": "-1"}, "connections.max.reauth.ms"),
        ({"sasl.server.callback.handler.class": "x.Y"}, "sasl.server.callback.handler.class"),
    ],
)
def test_sasl_settings_edplog_lacks_are_refused(props, named) -> None:
    """Kafka's default GSSAPI, OAUTHBEARER without its validator settings, a JAAS line for
    another login module, a negative session lifetime and custom callback handlers stop the
    start, naming what is wrong."""
    with pytest.raises(InvalidConfigError, match=named):
        BrokerConfig.from_properties({**sasl_props(), **props})
    with pytest.raises(InvalidConfigError, match="sasl.enabled.mechanisms"):
        base = sasl_props()
        del base["listener.name.clients.sasl.enabled.mechanisms"]
        BrokerConfig.from_properties(base)
