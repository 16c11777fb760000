"""The SASL exchanges on their own (security/sasl.py), driven by scramp's SCRAM client and
hand-made PLAIN messages: each test says what was tried and what must hold."""

from __future__ import annotations

import pytest
from scramp import ScramClient

from edplog.security.sasl import (
    SaslConfigError,
    SaslError,
    SaslSession,
    SaslSettings,
    parse_jaas,
    plain_users,
)
from edplog.security.scram import ScramCredentials, credential_from_password

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" '
    'user_alice="al\\"ice";'
)


def settings(mechanisms=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")) -> SaslSettings:
    table = ScramCredentials().altered(
        [],
        [
            ("bob", credential_from_password(mech, "bob-secret", iterations=4096))
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512")
        ],
    )
    return SaslSettings(tuple(mechanisms), plain_users(JAAS), lambda: table)


def test_jaas_options_are_read_as_kafka_writes_them() -> None:
    """Kafka's PlainLoginModule line: module, flag, quoted options with an escaped quote;
    the user_ options are the users; a missing ';' or flag is refused."""
    module, flag, options = parse_jaas(JAAS)
    assert module.endswith("PlainLoginModule") and flag == "required"
    assert options["username"] == "admin"
    assert plain_users(JAAS) == {"admin": "admin-secret", "alice": 'al"ice'}
    with pytest.raises(SaslConfigError, match="ends with"):
        parse_jaas(JAAS[:-1])
    with pytest.raises(SaslConfigError, match="control flag"):
        parse_jaas("org.x.Module mandatory a=1;")


def test_plain_accepts_the_right_password_only() -> None:
    """PLAIN: the right password gives User:alice; a wrong password, an unknown user and an
    authorization id for someone else all fail with the same message; after a failure the
    session stays failed."""
    ok = SaslSession(settings())
    assert ok.handshake("PLAIN")
    assert ok.step(b'\x00alice\x00al"ice') == b""
    assert str(ok.principal) == "User:alice"
    messages = []
    for msg in (b"\x00alice\x00wrong", b"\x00mallory\x00x", b'admin\x00alice\x00al"ice'):
        s = SaslSession(settings())
        s.handshake("PLAIN")
        with pytest.raises(SaslError) as info:
            s.step(msg)
        messages.append(str(info.value))
        assert s.principal is None and s.failed
        with pytest.raises(SaslError):
            s.step(b'\x00alice\x00al"ice')
    assert messages[0] == messages[1]


def test_scram_logs_in_with_the_stored_keys_and_refuses_the_rest() -> None:
    """SCRAM-SHA-256 and -512 with scramp's client: the right password logs in and the client
    verifies the server's signature; a wrong password and an unknown user fail at the final
    message with the same error; a tampered proof fails."""
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        s = SaslSession(settings())
        assert s.handshake(mech)
        client = ScramClient([mech], "bob", "bob-secret")
        first = s.step(client.get_client_first().encode())
        client.set_server_first(first.decode())
        final = s.step(client.get_client_final().encode())
        client.set_server_final(final.decode())  # raises unless the server knew the keys
        assert str(s.principal) == "User:bob"

    errors = []
    for user, password in (("bob", "wrong"), ("nobody", "bob-secret")):
        s = SaslSession(settings())
        s.handshake("SCRAM-SHA-256")
        client = ScramClient(["SCRAM-SHA-256"], user, password)
        first = s.step(client.get_client_first().encode())  # no difference here
        client.set_server_first(first.decode())
        with pytest.raises(SaslError) as info:
            s.step(client.get_client_final().encode())
        errors.append(str(info.value))
        assert s.principal is None
    assert errors[0] == errors[1]

    s = SaslSession(settings())
    s.handshake("SCRAM-SHA-256")
    client = ScramClient(["SCRAM-SHA-256"], "bob", "bob-secret")
    client.set_server_first(s.step(client.get_client_first().encode()).decode())
    final = client.get_client_final()
    tampered = final[:-4] + ("AAAA" if not final.endswith("AAAA") else "BBBB")
    with pytest.raises(SaslError):
        s.step(tampered.encode())


def test_handshake_offers_only_the_listeners_mechanisms() -> None:
    """A mechanism the listener does not enable is refused at the handshake; a message before
    any handshake fails."""
    s = SaslSession(settings(("SCRAM-SHA-512",)))
    assert not s.handshake("PLAIN") and not s.handshake("GSSAPI")
    with pytest.raises(SaslError, match="before SaslHandshake"):
        s.step(b"\x00bob\x00x")
