"""Roles bound to groups read from LDAP: a private ``slapd`` (Debian's, started by the test on
127.0.0.1 with an ou=people / ou=groups tree loaded by slapadd) and a broker with
``authorizer.ldap.*``; users log in with SASL PLAIN (confluent-kafka). Each test says what
was tried and what must hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import slapd_server
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic
from roles_helpers import TIMEOUT_S, broker_props, conf, consume, eventually, produce
from slapd_server import GROUPS, PEOPLE, READER_DN, READER_PASSWORD, SlapdServer, group, person

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.security.groups import GroupSettings, LdapSettings, read_ldap_membership
from edplog.security.roles import RoleBinding, add_binding

OK = KafkaError.NO_ERROR
TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[SlapdServer]:
    if not slapd_server.available():
        pytest.skip("slapd is not installed (scripts/test installs it: apt-get install slapd)")
    server = SlapdServer(
        tmp_path / "ldap",
        [
            person("alice"),
            person("bob"),
            person("carol"),
            group("devs", "alice"),
            group("ops", "carol"),
        ],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ldap_props(server: SlapdServer, **extra: str) -> dict[str, str]:
    return {
        "authorizer.ldap.url": server.url,
        "authorizer.ldap.bind.dn": READER_DN,
        "authorizer.ldap.bind.password": READER_PASSWORD,
        "authorizer.ldap.user.search.base": PEOPLE,
        "authorizer.ldap.group.search.base": GROUPS,
        "authorizer.ldap.refresh.interval.ms": "300",
        **extra,
    }


def test_membership_is_read_from_the_directory(slapd: SlapdServer) -> None:
    """The reader binds and reads users and groupOfNames groups: alice is in devs, carol in
    ops, bob in none; a wrong bind password is refused by the directory (an exception,
    which the broker's reader thread logs, keeping the groups it had)."""
    settings = LdapSettings(slapd.url, PEOPLE, GROUPS, READER_DN, READER_PASSWORD)
    assert read_ldap_membership(settings) == {
        "alice": frozenset({"devs"}),
        "carol": frozenset({"ops"}),
    }
    wrong = LdapSettings(slapd.url, PEOPLE, GROUPS, READER_DN, "not-the-password")
    with pytest.raises(Exception, match="invalidCredentials"):
        read_ldap_membership(wrong)


def test_roles_follow_ldap_groups(tmp_path: Path, slapd: SlapdServer) -> None:
    """DeveloperWrite and DeveloperRead on the topic ``events`` and DeveloperRead on the group
    prefix ``ev-`` are bound to Group:devs. Alice (in devs in LDAP) produces and consumes
    once the broker's reader has read the directory; bob (in no group) is refused. Bob is
    then added to devs in the directory (ldap3, as the directory's admin): the broker's next
    read lets him produce, with no change to the broker. Then slapd is stopped: once a read
    has failed, bob still produces (the groups last read stay in force)."""
    import ldap3

    data = tmp_path / "data"
    data.mkdir()
    for role, kind, name, pattern in (
        ("DeveloperWrite", "Topic", "events", "LITERAL"),
        ("DeveloperRead", "Topic", "events", "LITERAL"),
        ("DeveloperRead", "Group", "ev-", "PREFIXED"),
    ):
        add_binding(data, RoleBinding("Group:devs", role, kind, name, pattern))
    props = {**broker_props(str(data)), **ldap_props(slapd)}
    broker: Any = BackgroundBroker(BrokerConfig.from_properties(props)).start()
    try:
        admin = AdminClient(conf(broker, "admin"))
        admin.create_topics([NewTopic("events", 1, 1)])["events"].result(TIMEOUT_S)
        eventually(lambda: produce(broker, "alice", "events") == OK, "alice writes via LDAP")
        assert consume(broker, "alice", "events", "ev-1") == OK
        assert produce(broker, "bob", "events") == TOPIC_DENIED

        conn = ldap3.Connection(
            ldap3.Server("127.0.0.1", port=slapd.port),
            user=slapd_server.ROOT_DN,
            password=slapd_server.ROOT_PASSWORD,
            auto_bind=True,
        )
        try:
            assert conn.modify(
                f"cn=devs,{GROUPS}", {"member": [(ldap3.MODIFY_ADD, [f"uid=bob,{PEOPLE}"])]}
            ), conn.result
        finally:
            conn.unbind()
        eventually(lambda: produce(broker, "bob", "events") == OK, "bob writes once in devs")

        slapd.stop()
        reader = broker.broker.roles.ldap_groups
        eventually(lambda: reader.last_error is not None, "a read fails with slapd stopped")
        assert produce(broker, "bob", "events") == OK  # the groups last read stay in force
    finally:
        broker.stop()


def test_ldaps_verifies_the_directory_certificate(tmp_path: Path) -> None:
    """slapd on ldaps:// with a certificate for 127.0.0.1 from a test CA: with that CA as
    authorizer.ldap.ssl.truststore.location the groups are read; with another CA the TLS
    handshake fails (the certificate is not trusted), so no groups are read."""
    if not slapd_server.available():
        pytest.skip("slapd is not installed (scripts/test installs it: apt-get install slapd)")
    from tls_certs import CA

    ca, other = CA(), CA("another CA")
    issued = ca.issue(server=True, CN="localhost", O="edplog tests")
    cert, key = tmp_path / "slapd.pem", tmp_path / "slapd.key"
    cert.write_bytes(issued.cert_pem() + ca.cert_pem())
    key.write_bytes(issued.key_pem())
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "other.pem").write_bytes(other.cert_pem())
    server = SlapdServer(tmp_path / "ldap", [person("alice"), group("devs", "alice")], (cert, key))
    server.start()
    try:
        props = ldap_props(server)
        settings = GroupSettings.from_properties(
            {**props, "authorizer.ldap.ssl.truststore.location": str(tmp_path / "ca.pem")}
        ).ldap
        assert settings is not None and server.url.startswith("ldaps://")
        assert read_ldap_membership(settings) == {"alice": frozenset({"devs"})}
        untrusted = GroupSettings.from_properties(
            {**props, "authorizer.ldap.ssl.truststore.location": str(tmp_path / "other.pem")}
        ).ldap
        assert untrusted is not None
        with pytest.raises(Exception, match="(?i)certificate"):
            read_ldap_membership(untrusted)
    finally:
        server.stop()
