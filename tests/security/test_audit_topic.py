"""The audit log in a topic (``audit.log.topic``): a real broker (SASL PLAIN, ACLs) produces
its chained records into the topic through its own inter-broker listener, and
``edplog audit verify --topic`` (a separate process, confluent-kafka) checks them.

Each test says what was tried and what must hold."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from acl_helpers import binding, create
from audit_helpers import sasl
from audit_helpers import verify_topic as run_verify
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclOperation,
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.security.audit import DROPPED, STARTED

TIMEOUT_S = 30
AUDIT_TOPIC = "__edplog_audit"


def jaas(broker_user: str) -> str:
    return (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{broker_user}" password="{broker_user}-secret" '
        'user_admin="admin-secret" user_alice="alice-secret" user_auditor="auditor-secret";'
    )


def props(data: Path, broker_user: str = "admin", **extra: str) -> dict[str, str]:
    """One SASL listener that the broker also reaches itself on, as ``broker_user``."""
    return {
        "log.dirs": str(data),
        "listeners": "CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "CLIENTS:SASL_PLAINTEXT",
        "listener.name.clients.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.clients.plain.sasl.jaas.config": jaas(broker_user),
        "inter.broker.listener.name": "CLIENTS",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "audit.log.topic": AUDIT_TOPIC,
        "audit.log.topics.write": "*",
        "audit.log.topics.read": "*",
        **extra,
    }


def read_audit(conf: dict[str, Any]) -> list[tuple[int, bytes, dict[str, Any]]]:
    """Every record of the audit topic's partition 0: (offset, key, the record)."""
    c = Consumer({**conf, "group.id": "audit-reader", "enable.auto.commit": False})
    out = []
    try:
        tp = TopicPartition(AUDIT_TOPIC, 0)
        low, high = c.get_watermark_offsets(tp, timeout=TIMEOUT_S)
        c.assign([TopicPartition(AUDIT_TOPIC, 0, low)])
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < high - low and time.monotonic() < deadline:
            for m in c.consume(500, timeout=1.0):
                assert m.error() is None, m.error()
                out.append((m.offset(), m.key(), json.loads(m.value())))
    finally:
        c.close()
    return out


def wait_for(
    conf: dict[str, Any], done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The audit topic's records once ``done`` holds for them (bounded)."""
    deadline = time.monotonic() + TIMEOUT_S
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            got = [r for _, _, r in read_audit(conf)]
        except KafkaException:
            got = []  # the topic is not created yet
        if done(got):
            return got
        time.sleep(0.2)
    raise AssertionError(f"the audit topic never held what was expected: {got[-5:]}")


def verify_topic(broker: BackgroundBroker, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """verify --topic, logged in as admin."""
    config = tmp_path / "client.properties"
    config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.username=admin\nsasl.password=admin-secret\n"
    )
    return run_verify(broker.bootstrap_for("CLIENTS"), AUDIT_TOPIC, config)


def of(got: list[dict[str, Any]], kind: str, **want: Any) -> list[dict[str, Any]]:
    return [
        r["data"]
        for r in got
        if r["type"] == f"io.edplog.audit.{kind}"
        and all(r["data"].get(k) == v for k, v in want.items())
    ]


def on_topic(got: list[dict[str, Any]], principal: str, op: str, name: str) -> list[Any]:
    return [
        d
        for d in of(got, "authorization", principal=principal, operation=op)
        if d["resource"]["name"] == name
    ]


def test_a_broker_writes_its_chain_to_a_topic_that_verify_checks_and_a_restart_continues(
    tmp_path: Path,
) -> None:
    """No audit file, only audit.log.topic; every topic's reads and writes audited. admin
    creates and writes a topic, a login with a wrong password fails, alice may not create a
    topic. The audit topic must be created by the broker and hold each of those records in one
    chain (sequence 0, 1, 2 ... from a started record; every record keyed by its source), and
    no record of the audit topic's own writes; verify --topic passes (exit 0). After a
    restart the chain goes on from the topic's last record of this broker. A record produced
    into the topic by hand as an edited copy of a real one is caught (exit 1, its offset)."""
    data = tmp_path / "data"
    broker = BackgroundBroker(BrokerConfig.from_properties(props(data))).start()
    try:
        admin_conf = sasl(broker, "admin", "admin-secret")
        admin = AdminClient(admin_conf)
        admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(TIMEOUT_S)
        p = Producer({**admin_conf, "linger.ms": 0})
        p.produce("orders", b"o-1")
        assert p.flush(TIMEOUT_S) == 0
        with pytest.raises(KafkaException):
            AdminClient(sasl(broker, "alice", "wrong")).list_topics(timeout=5)
        alice = AdminClient(sasl(broker, "alice", "alice-secret"))
        with pytest.raises(KafkaException):
            alice.create_topics([NewTopic("alices", 1, 1)])["alices"].result(TIMEOUT_S)

        got = wait_for(
            admin_conf,
            lambda got: bool(
                on_topic(got, "User:admin", "Write", "orders")
                and on_topic(got, "User:alice", "Create", "alices")
                and of(got, "authentication", result="failed")
            ),
        )
        assert got[0]["type"] == STARTED and got[0]["data"]["previous_sequence"] == -1
        assert [r["sequence"] for r in got] == list(range(len(got)))
        assert all(r["prevhash"] == before["hash"] for before, r in zip(got, got[1:], strict=False))
        assert len({r["source"] for r in got}) == 1
        assert on_topic(got, "User:admin", "Create", "orders")[0]["result"] == "allowed"
        assert on_topic(got, "User:alice", "Create", "alices")[0]["result"] == "denied"
        assert of(got, "authentication", principal=None, result="failed", mechanism="PLAIN")
        assert not [d for d in of(got, "authorization") if d["resource"]["name"] == AUDIT_TOPIC]
        keys = {key for _, key, _ in read_audit(admin_conf)}
        assert keys == {got[0]["source"].encode()}
        described = admin.describe_configs([ConfigResource("topic", AUDIT_TOPIC)])
        configs = next(iter(described.values())).result(TIMEOUT_S)
        assert configs["cleanup.policy"].value == "delete"

        out = verify_topic(broker, tmp_path)
        assert out.returncode == 0, out.stderr
        assert "1 writer(s)" in out.stdout and "intact" in out.stdout
    finally:
        broker.stop()
    before = len(got)

    broker = BackgroundBroker(BrokerConfig.from_properties(props(data))).start()
    try:
        admin_conf = sasl(broker, "admin", "admin-secret")
        got = wait_for(admin_conf, lambda got: len(of(got, "started")) == 2)
        restarted = next(r for r in got[before:] if r["type"] == STARTED)
        assert restarted["data"]["previous_sequence"] == restarted["sequence"] - 1
        assert restarted["prevhash"] == got[restarted["sequence"] - 1]["hash"]
        assert restarted["sequence"] >= before
        assert [r["sequence"] for r in got] == list(range(len(got)))
        out = verify_topic(broker, tmp_path)
        assert out.returncode == 0, out.stderr

        # A forged record: a real one with its principal changed, appended by hand.
        forged = dict(got[-1])
        forged["sequence"] = got[-1]["sequence"] + 1
        forged["prevhash"] = got[-1]["hash"]
        forged["data"] = {**forged["data"], "principal": "User:mallory"}
        p = Producer({**admin_conf, "linger.ms": 0})
        p.produce(
            AUDIT_TOPIC,
            json.dumps(forged, separators=(",", ":")).encode(),
            key=got[0]["source"].encode(),
            partition=0,
        )
        assert p.flush(TIMEOUT_S) == 0
        out = verify_topic(broker, tmp_path)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "edited" in out.stderr and "offset" in out.stderr
    finally:
        broker.stop()


def test_a_writer_refused_by_acls_counts_its_losses_and_writes_them_into_the_chain_once_allowed(
    tmp_path: Path,
) -> None:
    """The broker reaches itself as ``auditor``, who is no super user: its produces into the
    audit topic are refused, so the records that do not fit its queue (of 5) are dropped.
    Once admin allows auditor to write (and read) the topic, the writer's chain starts with
    a started record, then an io.edplog.audit.dropped record with the number lost, then what
    it kept, and verifies: the loss is in the chain, not silent."""
    data = tmp_path / "data"
    config = BrokerConfig.from_properties(
        props(data, broker_user="auditor", **{"audit.log.queue.records": "5"})
    )
    broker = BackgroundBroker(config).start()
    try:
        admin_conf = sasl(broker, "admin", "admin-secret")
        admin = AdminClient(admin_conf)
        deadline = time.monotonic() + TIMEOUT_S
        while AUDIT_TOPIC not in admin.list_topics(timeout=TIMEOUT_S).topics:
            assert time.monotonic() < deadline, "the broker never created the audit topic"
            time.sleep(0.1)
        for i in range(12):  # each an audited Create decision
            admin.create_topics([NewTopic(f"t{i}", 1, 1)])[f"t{i}"].result(TIMEOUT_S)
        assert read_audit(admin_conf) == []  # nothing got in
        # Write to append, Read to find its chain's end when it (re)connects.
        create(
            admin,
            [
                binding(ResourceType.TOPIC, AUDIT_TOPIC, "User:auditor", op)
                for op in (AclOperation.WRITE, AclOperation.READ)
            ],
        )
        got = wait_for(admin_conf, lambda got: bool(of(got, "dropped")))
        (dropped,) = of(got, "dropped")
        assert dropped["dropped_records"] >= 12 - 5
        assert got[0]["type"] == STARTED
        assert [r["sequence"] for r in got] == list(range(len(got)))
        assert got[1]["type"] == DROPPED  # reported at the first write after the loss
        out = verify_topic(broker, tmp_path)
        assert out.returncode == 0, out.stderr
    finally:
        broker.stop()


def test_a_chain_hashed_under_another_key_stops_the_topic_writer_loudly(tmp_path: Path) -> None:
    """A broker wrote its chain with plain SHA-256; restarted with audit.log.hmac.key.file,
    its last record in the topic cannot be continued under the key. The topic's writer must
    stop, say why (naming the key) and count what it is handed as dropped, and write
    nothing after the old chain; the broker itself keeps serving."""
    data = tmp_path / "data"
    broker = BackgroundBroker(BrokerConfig.from_properties(props(data))).start()
    try:
        before = wait_for(sasl(broker, "admin", "admin-secret"), lambda got: bool(got))
    finally:
        broker.stop()
    key = tmp_path / "audit.key"
    key.write_text("k" * 32)
    key.chmod(0o600)
    config = BrokerConfig.from_properties(props(data, **{"audit.log.hmac.key.file": str(key)}))
    broker = BackgroundBroker(config).start()
    try:
        admin_conf = sasl(broker, "admin", "admin-secret")
        assert broker.broker is not None and broker.broker.audit is not None
        writer = broker.broker.audit.topic
        assert writer is not None
        deadline = time.monotonic() + TIMEOUT_S
        while writer.failed is None:
            assert time.monotonic() < deadline, "the topic writer went on"
            AdminClient(admin_conf).list_topics(timeout=TIMEOUT_S)  # an audited login
            time.sleep(0.2)
        assert "under audit.log.hmac.key.file (another key?)" in str(writer.failed)
        admin = AdminClient(admin_conf)
        admin.create_topics([NewTopic("still", 1, 1)])["still"].result(TIMEOUT_S)
        assert len(read_audit(admin_conf)) == len(before)
    finally:
        broker.stop()
