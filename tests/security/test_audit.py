"""The audit log: a real broker (SASL PLAIN, ACLs) writes it, ``edplog audit verify`` (run as
a separate process) checks it, and edits to the file are caught.

Each test says what was tried and what must hold."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from acl_helpers import binding, create
from audit_helpers import sasl
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic, ResourceType

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.errors import InvalidConfigError
from edplog.security.audit import DROPPED, STARTED, AuditLog, split_line

TIMEOUT_S = 30

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'user_admin="admin-secret" user_alice="alice-secret";'
)


def audited_props(audit_file: Path, **extra: str) -> dict[str, str]:
    return {
        "listeners": "PLAINTEXT://127.0.0.1:0,CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "listener.name.clients.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.clients.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "audit.log.file": str(audit_file),
        "audit.log.topics.read": "audited*",
        "audit.log.topics.write": "audited*",
        "audit.log.fsync.ms": "0",
        **extra,
    }


def verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edplog", "audit", "verify", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def produce(conf: dict[str, Any], topic: str) -> Any:
    """One record; the delivery error (None when acknowledged)."""
    errors: list[Any] = []
    p = Producer({**conf, "message.timeout.ms": 10_000})
    p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT_S)
    return errors[0] if errors else "not delivered"


def test_a_broker_audits_logins_changes_and_chosen_topics_and_continues_after_restart(
    start: Any, tmp_path: Path
) -> None:
    """admin logs in, creates two topics, writes and reads the audited one and writes the
    other, and deletes the other; a login with a wrong password fails; alice may not create
    a topic nor write the audited one. The file must hold each of those records with the
    principal, listener, mechanism, operation, resource and result, as CloudEvents; no record
    of the unaudited topic's Write; verify (exit 0) passes; after a restart the chain goes on
    from the file's last record (a started record) and still verifies."""
    audit_file = tmp_path / "audit" / "audit.log"
    broker = start(audited_props(audit_file))
    admin_conf = sasl(broker, "admin", "admin-secret")
    admin = AdminClient(admin_conf)
    for fut in admin.create_topics(
        [NewTopic("audited-orders", 1, 1), NewTopic("quiet", 1, 1)]
    ).values():
        fut.result(TIMEOUT_S)
    assert produce(admin_conf, "audited-orders") is None
    assert produce(admin_conf, "quiet") is None
    c = Consumer({**admin_conf, "group.id": "reader", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("audited-orders", 0, 0)])
        msg = c.poll(TIMEOUT_S)
        assert msg is not None and msg.error() is None and msg.value() == b"v"
    finally:
        c.close()
    admin.delete_topics(["quiet"])["quiet"].result(TIMEOUT_S)

    wrong = AdminClient({**sasl(broker, "alice", "not-her-password")})
    with pytest.raises(KafkaException):
        wrong.list_topics(timeout=5)
    del wrong  # it would keep retrying
    # alice may Describe the audited topic (so her producer sends its Produce) but not Write.
    create(
        admin, [binding(ResourceType.TOPIC, "audited-orders", "User:alice", AclOperation.DESCRIBE)]
    )
    alice_conf = sasl(broker, "alice", "alice-secret")
    alice = AdminClient(alice_conf)
    with pytest.raises(KafkaException):
        alice.create_topics([NewTopic("alices", 1, 1)])["alices"].result(TIMEOUT_S)
    assert produce(alice_conf, "audited-orders") is not None
    broker.stop()

    got = records(audit_file)
    for r in got:
        assert r["specversion"] == "1.0" and r["datacontenttype"] == "application/json"
        assert r["source"].startswith("edplog://") and r["source"].endswith("/broker/0")
        assert r["time"].endswith("Z") and r["id"]
    assert got[0]["type"] == STARTED and got[0]["sequence"] == 0
    assert [r["sequence"] for r in got] == list(range(len(got)))

    def find(kind: str, **want: Any) -> list[dict[str, Any]]:
        return [
            r["data"]
            for r in got
            if r["type"] == f"io.edplog.audit.{kind}"
            and all(r["data"].get(k) == v for k, v in want.items())
        ]

    logins = find("authentication", principal="User:admin", result="allowed")
    assert logins and logins[0]["listener"] == "CLIENTS" and logins[0]["mechanism"] == "PLAIN"
    assert logins[0]["client_address"].startswith("127.0.0.1:")
    failed = find("authentication", principal=None, result="failed", mechanism="PLAIN")
    assert failed and failed[0]["reason"].startswith("as 'alice': authentication failed")
    assert "not-her-password" not in json.dumps(got)
    assert find("authentication", principal="User:alice", result="allowed")

    def decisions(principal: str, op: str, name: str, result: str) -> list[dict[str, Any]]:
        return [
            d
            for d in find("authorization", principal=principal, operation=op, result=result)
            if d["resource"] == {"type": "Topic", "name": name, "pattern": "LITERAL"}
        ]

    assert decisions("User:admin", "Create", "audited-orders", "allowed")
    assert decisions("User:admin", "Create", "quiet", "allowed")
    assert decisions("User:admin", "Delete", "quiet", "allowed")
    assert decisions("User:admin", "Write", "audited-orders", "allowed")
    assert decisions("User:admin", "Read", "audited-orders", "allowed")
    assert decisions("User:alice", "Create", "alices", "denied")
    assert decisions("User:alice", "Write", "audited-orders", "denied")
    assert not decisions("User:admin", "Write", "quiet", "allowed")
    assert decisions("User:admin", "Create", "quiet", "allowed")[0]["listener"] == "CLIENTS"

    out = verify(audit_file)
    assert out.returncode == 0, out.stderr
    assert f"intact, {len(got)} record(s)" in out.stdout
    assert f"last sequence {len(got) - 1}" in out.stdout

    broker = start(audited_props(audit_file))
    AdminClient(sasl(broker, "admin", "admin-secret")).list_topics(timeout=TIMEOUT_S)
    broker.stop()
    after = records(audit_file)
    restarted = after[len(got)]
    assert restarted["type"] == STARTED and restarted["sequence"] == len(got)
    assert restarted["data"] == {"previous_sequence": len(got) - 1, "torn_bytes": 0}
    assert restarted["prevhash"] == got[-1]["hash"]
    assert any(r["type"].endswith("authentication") for r in after[len(got) :])
    out = verify(audit_file)
    assert out.returncode == 0, out.stderr
    assert f"intact, {len(after)} record(s)" in out.stdout


def write_log(path: Path, n: int, key: bytes | None = None) -> list[bytes]:
    """A log of a started record and ``n`` records, written by the real writer."""
    log = AuditLog(path, "edplog://test/broker/0", key=key, fsync_ms=0)
    log.open()
    for i in range(n):
        log.append("io.edplog.audit.authorization", {"principal": f"User:u{i}", "result": "denied"})
    log.close()
    return path.read_bytes().splitlines(keepends=True)


def test_verify_names_a_removed_an_edited_a_moved_and_a_torn_record(tmp_path: Path) -> None:
    """From an intact 6-record log (verify exit 0), four damaged copies: a middle line
    deleted (removed, its line named), a field edited (edited), two lines swapped, and the
    file cut in the middle of its last line (torn): each exits 1 naming the kind; the first
    record deleted is a removal too."""
    path = tmp_path / "audit.log"
    lines = write_log(path, 5)
    assert len(lines) == 6
    ok = verify(path)
    assert ok.returncode == 0, ok.stderr
    assert "intact, 6 record(s)" in ok.stdout

    def damaged(name: str, content: bytes) -> subprocess.CompletedProcess[str]:
        p = tmp_path / name
        p.write_bytes(content)
        return verify(p)

    out = damaged("removed.log", b"".join(lines[:3] + lines[4:]))
    assert out.returncode == 1 and "removed: line 4: sequence 4 follows 2" in out.stderr
    out = damaged("first.log", b"".join(lines[1:]))
    assert out.returncode == 1 and "removed: line 1" in out.stderr
    edited = lines[2].replace(b'"result":"denied"', b'"result":"allowed"')
    assert edited != lines[2]
    out = damaged("edited.log", b"".join(lines[:2] + [edited] + lines[3:]))
    assert out.returncode == 1 and "edited: line 3: sequence 2" in out.stderr
    out = damaged("moved.log", b"".join(lines[:2] + [lines[3], lines[2]] + lines[4:]))
    assert out.returncode == 1 and "line 3: sequence 3 follows 1" in out.stderr
    out = damaged("torn.log", b"".join(lines[:-1]) + lines[-1][:40])
    assert out.returncode == 1 and "torn: line 6: torn last line" in out.stderr
    assert "5 record(s) before it are intact" in out.stderr


def test_a_writer_continues_after_a_torn_last_line_and_verify_accepts_it(tmp_path: Path) -> None:
    """A log cut mid-line (a crash mid-write), reopened by the writer: it warns, starts a
    fresh line, and its started record names the torn bytes and links to the last whole
    record; verify then exits 0 and reports the recovered line."""
    path = tmp_path / "audit.log"
    lines = write_log(path, 3)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])
    log = AuditLog(path, "edplog://test/broker/0", fsync_ms=0)
    log.open()
    log.close()
    after = path.read_bytes().splitlines()
    assert after[3] == lines[-1][:25]
    started = json.loads(after[4])
    assert started["type"] == STARTED and started["sequence"] == 3
    assert started["data"] == {"previous_sequence": 2, "torn_bytes": 25}
    out = verify(path)
    assert out.returncode == 0, out.stderr
    assert "line 4: a torn line a restart recovered from" in out.stdout


def test_with_an_hmac_key_a_recomputed_plain_chain_fails(tmp_path: Path) -> None:
    """A log written under an HMAC key verifies with the key (exit 0), cannot be checked
    without it (exit 2), and a forged copy (one field edited, then every hash recomputed with
    plain SHA-256, under either label) fails with the key (exit 1, edited); a wrong key fails
    too; a writer given another key refuses to continue the file."""
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    key_file.chmod(0o600)
    path = tmp_path / "audit.log"
    lines = write_log(path, 3, key=key_file.read_bytes().strip())
    ok = verify(path, "--hmac-key-file", str(key_file))
    assert ok.returncode == 0, ok.stderr
    unkeyed = verify(path)
    assert unkeyed.returncode == 2 and "--hmac-key-file" in unkeyed.stderr

    for label in ("sha256", "hmac-sha256"):
        forged, prev = [], ""
        for i, line in enumerate(lines):
            record = json.loads(line)
            del record["hash"]
            record["hashalg"], record["prevhash"] = label, prev
            if i == 2:
                record["data"]["result"] = "allowed"
            body = json.dumps(record, separators=(",", ":")).encode()[:-1]
            prev = hashlib.sha256(body).hexdigest()
            forged.append(body + b',"hash":"' + prev.encode() + b'"}\n')
        fake = tmp_path / f"forged-{label}.log"
        fake.write_bytes(b"".join(forged))
        assert split_line(forged[0].rstrip(b"\n")) is not None
        out = verify(fake, "--hmac-key-file", str(key_file))
        assert out.returncode == 1 and "edited: line 1" in out.stderr, out.stderr
    # The plain forgery is a valid plain chain: only the key tells it apart.
    assert verify(tmp_path / "forged-sha256.log").returncode == 0

    other = tmp_path / "other.key"
    other.write_bytes(b"another key, sixteen bytes or more")
    other.chmod(0o600)
    assert verify(path, "--hmac-key-file", str(other)).returncode == 1
    with pytest.raises(ValueError, match="another key"):
        AuditLog(path, "x", key=other.read_bytes()).open()


def test_a_full_queue_drops_into_a_counted_record_not_silence(tmp_path: Path) -> None:
    """Five records offered to a queue of two before the writer runs: the three that do not
    fit are counted (the drop callback, as the metric) and the file gets an
    io.edplog.audit.dropped record saying 3; the chain still verifies."""
    path = tmp_path / "audit.log"
    dropped: list[int] = []
    log = AuditLog(path, "x", fsync_ms=0, queue_records=2, on_drop=dropped.append)
    for i in range(5):
        log.append("io.edplog.audit.authorization", {"n": i})
    assert sum(dropped) == 3
    log.open()
    log.close()
    got = records(path)
    assert [r["data"] for r in got if r["type"] == DROPPED] == [{"dropped_records": 3}]
    assert [r["data"]["n"] for r in got if r["type"].endswith("authorization")] == [0, 1]
    assert verify(path).returncode == 0


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"audit.log.topic": "bad name"}, "audit.log.topic='bad name': a topic name is"),
        (
            {
                "audit.log.topic": "_audit",
                "listeners": "CLIENTS://127.0.0.1:0",
                "listener.security.protocol.map": "CLIENTS:SASL_PLAINTEXT",
                "listener.name.clients.sasl.enabled.mechanisms": "PLAIN",
                "listener.name.clients.plain.sasl.jaas.config": JAAS,
                "inter.broker.listener.name": "CLIENTS",
            },
            "sasl.mechanism.inter.broker.protocol is not set",
        ),
        ({"audit.log.authentication": "true"}, "set audit.log.file or audit.log.topic"),
        ({"audit.log.file": "a.log", "audit.log.fsync.ms": "-2"}, "must be at least -1"),
        ({"audit.log.file": "a.log", "audit.log.authentication": "yes"}, "true or false"),
        ({"audit.log.file": "a.log", "audit.log.topics.read": "a*b"}, "may only end a prefix"),
        ({"audit.log.file": "a.log", "audit.log.topics.write": "t"}, "need authorizer"),
    ],
)
def test_bad_audit_settings_stop_the_start(props: dict[str, str], message: str) -> None:
    """Each bad or not implemented audit.log.* setting is refused with a message naming it."""
    with pytest.raises(InvalidConfigError, match=message):
        BrokerConfig.from_properties(props)


def test_a_missing_key_file_stops_the_broker_start(tmp_path: Path) -> None:
    """audit.log.hmac.key.file naming no file: the broker does not start, and says why."""
    props = audited_props(
        tmp_path / "audit.log",
        **{"audit.log.hmac.key.file": str(tmp_path / "nope.key"), "log.dirs": str(tmp_path)},
    )
    with pytest.raises(RuntimeError) as info:
        BackgroundBroker(BrokerConfig.from_properties(props)).start()
    assert isinstance(info.value.__cause__, InvalidConfigError)
    assert "audit HMAC key file" in str(info.value.__cause__)


def test_mtls_logins_and_refused_handshakes_are_audited(start: Any, tmp_path: Path) -> None:
    """An mTLS listener (ssl.client.auth=required): a client with a certificate is recorded as
    an SSL authentication of its mapped principal; one without a certificate as a failed SSL
    authentication with the handshake's reason; the file verifies."""
    from test_tls_broker import api_versions_over, connect, ssl_props, tls_client
    from tls_certs import CA, make_files

    files = make_files(tmp_path / "certs", CA(), client_cn="Alice")
    audit_file = tmp_path / "audit.log"
    broker = start(
        {
            "listeners": "SSL://127.0.0.1:0",
            **ssl_props(files, **{"ssl.client.auth": "required"}),
            "audit.log.file": str(audit_file),
        }
    )
    assert broker.broker is not None and broker.broker.server is not None
    port = broker.broker.server.bound("SSL")[1]
    with connect(port, tls_client(files, cert=files.client_cert, key=files.client_key)) as sock:
        assert api_versions_over(sock) == 7
    with pytest.raises((OSError, ConnectionError)):
        with connect(port, tls_client(files)) as sock:
            api_versions_over(sock)
    broker.stop()
    got = [r["data"] for r in records(audit_file) if r["type"].endswith("authentication")]
    ok = [d for d in got if d["result"] == "allowed"]
    assert [(d["principal"], d["mechanism"], d["listener"]) for d in ok] == [
        ("User:alice", "SSL", "SSL")
    ]
    failed = [d for d in got if d["result"] == "failed"]
    assert failed and failed[0]["principal"] is None and failed[0]["mechanism"] == "SSL"
    assert "certificate" in failed[0]["reason"]
    assert verify(audit_file).returncode == 0


def test_a_last_record_missing_only_its_newline_is_continued_not_torn(tmp_path: Path) -> None:
    """A crash between a record and its newline: verify counts the record (exit 0), and the
    writer ends the line and continues the chain from that record (no torn bytes)."""
    path = tmp_path / "audit.log"
    lines = write_log(path, 2)
    path.write_bytes(b"".join(lines)[:-1])
    assert verify(path).returncode == 0
    log = AuditLog(path, "edplog://test/broker/0", fsync_ms=0)
    log.open()
    log.close()
    after = records(path)
    assert after[3]["data"] == {"previous_sequence": 2, "torn_bytes": 0}
    assert after[3]["prevhash"] == after[2]["hash"]
    out = verify(path)
    assert out.returncode == 0 and "intact, 4 record(s)" in out.stdout, out.stderr
