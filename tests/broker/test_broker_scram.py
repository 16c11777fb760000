"""SCRAM credentials through DescribeUserScramCredentials / AlterUserScramCredentials, set by
real admin clients (confluent-kafka and kafka-python), checked against Kafka's errors, kept
across a restart, and proved usable: an independent SCRAM implementation (scramp) logs in
with the password against what the broker stored."""

from __future__ import annotations

import json
import os

import pytest
from broker_helpers import RawClient

from edplog.security.scram import ScramCredentials

pytestmark = pytest.mark.clients

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialsDescription,
    UserScramCredentialUpsertion,
)

kafka_admin = pytest.importorskip("kafka.admin")
scramp = pytest.importorskip("scramp")

DESCRIBE = 50
ALTER = 51
UNSUPPORTED_SASL_MECHANISM = 33
RESOURCE_NOT_FOUND = 91
DUPLICATE_RESOURCE = 92
UNACCEPTABLE_CREDENTIAL = 93


def _alter(admin: AdminClient, alterations: list) -> dict:
    """user -> None (done) or the KafkaException's error code."""
    out = {}
    for user, future in admin.alter_user_scram_credentials(alterations).items():
        try:
            future.result(30)
            out[user] = None
        except ck.KafkaException as exc:
            out[user] = exc.args[0].code()
    return out


def _describe(admin: AdminClient, users: list[str] | None = None) -> dict:
    futures = admin.describe_user_scram_credentials(users)
    if not isinstance(futures, dict):  # all users: one future for the whole answer
        return {
            u: sorted((i.mechanism, i.iterations) for i in d.scram_credential_infos)
            for u, d in futures.result(30).items()
        }
    out: dict = {}
    for user, future in futures.items():
        try:
            d: UserScramCredentialsDescription = future.result(30)
            out[user] = sorted((i.mechanism, i.iterations) for i in d.scram_credential_infos)
        except ck.KafkaException as exc:
            out[user] = exc.args[0].code()
    return out


def _login(credentials: ScramCredentials, user: str, password: str, mechanism: str) -> None:
    """A full SCRAM exchange (scramp client and server) verified by the stored keys only."""

    def auth_info(name: str):
        cred = credentials.lookup(name, mechanism)
        assert cred is not None, name
        return cred.salt, cred.stored_key, cred.server_key, cred.iterations

    server = scramp.ScramMechanism(mechanism).make_server(auth_info)
    client = scramp.ScramClient([mechanism], user, password)
    server.set_client_first(client.get_client_first())
    client.set_server_first(server.get_server_first())
    server.set_client_final(client.get_client_final())
    client.set_server_final(server.get_server_final())  # raises unless the server proved it


def test_confluent_admin_sets_describes_and_deletes_credentials(kafka_broker_factory, tmp_path):
    """confluent-kafka upserts SCRAM-SHA-256 and -512 credentials for alice and a -256 one
    for bob; both are described with mechanisms and iterations; deleting bob's leaves him
    unknown (RESOURCE_NOT_FOUND); after a restart alice's credentials are still there, the
    file holds neither the password nor the salted password, and a SCRAM login with the
    password succeeds against the stored keys (and fails with another password)."""
    broker = kafka_broker_factory(tmp_path)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    s256, s512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512
    assert _alter(
        admin,
        [
            UserScramCredentialUpsertion("alice", ScramCredentialInfo(s256, 4096), b"pw-alice"),
            UserScramCredentialUpsertion("alice", ScramCredentialInfo(s512, 8192), b"pw-alice"),
            UserScramCredentialUpsertion("bob", ScramCredentialInfo(s256, 5000), b"pw-bob"),
        ],
    ) == {"alice": None, "bob": None}
    assert _describe(admin, ["alice", "bob"]) == {
        "alice": [(s256, 4096), (s512, 8192)],
        "bob": [(s256, 5000)],
    }
    assert _alter(admin, [UserScramCredentialDeletion("bob", s256)]) == {"bob": None}
    assert _describe(admin, ["bob"]) == {"bob": RESOURCE_NOT_FOUND}
    assert set(_describe(admin)) == {"alice"}
    broker.stop()
    text = (tmp_path / "scram-credentials.json").read_text()
    assert "pw-alice" not in text and b"pw-alice".hex() not in text
    stored = ScramCredentials.from_json(json.loads(text)["users"])
    _login(stored, "alice", "pw-alice", "SCRAM-SHA-256")
    _login(stored, "alice", "pw-alice", "SCRAM-SHA-512")
    with pytest.raises(scramp.ScramException):
        _login(stored, "alice", "wrong", "SCRAM-SHA-256")
    again = kafka_broker_factory(tmp_path)
    admin = AdminClient({"bootstrap.servers": again.bootstrap})
    assert _describe(admin, ["alice"]) == {"alice": [(s256, 4096), (s512, 8192)]}


def test_kafka_python_admin_sets_and_describes_credentials(kafka_broker) -> None:
    """kafka-python's admin client upserts a SCRAM-SHA-512 credential (it salts the password
    itself) and describes it back; an unknown user is reported with an error."""
    from kafka.admin import ScramMechanism as KpMechanism
    from kafka.admin import UserScramCredentialUpsertion as KpUpsertion

    admin = kafka_admin.KafkaAdminClient(bootstrap_servers=kafka_broker)
    try:
        done = admin.alter_user_scram_credentials(
            [KpUpsertion("carol", KpMechanism.SCRAM_SHA_512, "pw-carol", iterations=4096)]
        )
        assert done == {"carol": None}
        described = admin.describe_user_scram_credentials(["carol", "nobody"])
        assert described["carol"]["error"] is None
        assert described["carol"]["credential_infos"] == [
            {"mechanism": KpMechanism.SCRAM_SHA_512, "iterations": 4096}
        ]
        assert described["nobody"]["error"]
    finally:
        admin.close()


def test_kafka_errors_for_bad_credential_alterations(kafka_broker) -> None:
    """Per user, Kafka's errors: iterations below 4096 or above 16384 and an empty name are
    UNACCEPTABLE_CREDENTIAL, mechanism 0 is UNSUPPORTED_SASL_MECHANISM, one user's mechanism
    twice is DUPLICATE_RESOURCE, deleting a missing credential is RESOURCE_NOT_FOUND; a user
    with an error keeps nothing of the request, the others apply; describing a user twice
    is DUPLICATE_RESOURCE."""

    def up(name: str, mechanism: int = 1, iterations: int = 4096) -> dict:
        salt = os.urandom(16)
        return {
            "name": name,
            "mechanism": mechanism,
            "iterations": iterations,
            "salt": salt,
            "salted_password": os.urandom(32),
        }

    with RawClient(kafka_broker) as c:
        body = c.call(
            ALTER,
            0,
            {
                "deletions": [{"name": "ghost", "mechanism": 1}, {"name": "dup", "mechanism": 1}],
                "upsertions": [
                    up("low", iterations=4095),
                    up("high", iterations=16385),
                    up("", iterations=4096),
                    up("mech", mechanism=0),
                    up("dup"),
                    up("ok"),
                    up("mixed"),
                    up("mixed", mechanism=2, iterations=100),
                ],
            },
        )
        codes = {r["user"]: r["error_code"] for r in body["results"]}
        assert codes == {
            "ghost": RESOURCE_NOT_FOUND,
            "dup": DUPLICATE_RESOURCE,
            "low": UNACCEPTABLE_CREDENTIAL,
            "high": UNACCEPTABLE_CREDENTIAL,
            "": UNACCEPTABLE_CREDENTIAL,
            "mech": UNSUPPORTED_SASL_MECHANISM,
            "ok": 0,
            "mixed": UNACCEPTABLE_CREDENTIAL,
        }
        assert all(r["error_message"] for r in body["results"] if r["error_code"])
        described = c.call(DESCRIBE, 0, {"users": None})
        assert [r["user"] for r in described["results"]] == ["ok"]
        twice = c.call(DESCRIBE, 0, {"users": [{"name": "ok"}, {"name": "ok"}]})
        assert [(r["user"], r["error_code"]) for r in twice["results"]] == [
            ("ok", DUPLICATE_RESOURCE)
        ]
