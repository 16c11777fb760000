"""SASL session lifetimes and re-authentication (KIP-368), and the slowed-down answer to a
failed login (``connection.failed.authentication.delay.ms``), in a running broker.

The protocol-level tests speak SaslHandshake / SaslAuthenticate themselves on one connection
(edplog's blocking client), so they see exactly the lifetimes, errors and closes; the others use
confluent-kafka, whose librdkafka re-authenticates on its own. Each test says what was tried
and what must hold. Waits here are lower bounds the broker must respect (a slow machine only
makes them longer), never upper bounds."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Producer
from oauth_helpers import Provider, oauth_props
from test_sasl_broker import client, sasl_props

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.client import Client
from edplog.errors import ErrorCode, InvalidConfigError
from edplog.security.sasl import FailedLogins

HANDSHAKE, AUTHENTICATE, METADATA = 17, 36, 3
TIMEOUT_S = 30


def login(conn: Client, mechanism: str, message: bytes) -> dict[str, Any]:
    """One SaslHandshake (v1) and SaslAuthenticate (v2); the SaslAuthenticate answer."""
    shake = conn.call(HANDSHAKE, 1, {"mechanism": mechanism})
    assert shake["error_code"] == 0, shake
    return conn.call(AUTHENTICATE, 2, {"auth_bytes": message})


def plain(user: str, password: str) -> bytes:
    return b"\x00" + user.encode() + b"\x00" + password.encode()


def metadata(conn: Client) -> dict[str, Any]:
    return conn.call(METADATA, 12, {"topics": [], "allow_auto_topic_creation": False})


def logins(broker: BackgroundBroker, result: str) -> float:
    assert broker.broker is not None
    registry = broker.broker.metrics.registry
    labels = {"listener": "CLIENTS", "mechanism": "PLAIN", "result": result}
    return registry.get_sample_value("edplog_authentications_total", labels) or 0.0


def test_a_session_ends_after_its_lifetime_unless_the_client_logs_in_again(start) -> None:
    """With connections.max.reauth.ms=1500 on the listener, a PLAIN login is told a
    1500 ms session. Logging in again on the same connection (same user) succeeds, is told
    a new lifetime and the connection keeps serving. A connection that does not log in
    again is closed by its first request after the session ended."""
    broker = start(
        sasl_props("PLAIN", **{"listener.name.clients.connections.max.reauth.ms": "1500"})
    )
    bootstrap = broker.bootstrap_for("CLIENTS")
    with Client(bootstrap, timeout_s=10) as conn:
        first = login(conn, "PLAIN", plain("alice", "alice-secret"))
        assert (first["error_code"], first["session_lifetime_ms"]) == (0, 1500)
        again = login(conn, "PLAIN", plain("alice", "alice-secret"))
        assert (again["error_code"], again["session_lifetime_ms"]) == (0, 1500)
        assert metadata(conn)["brokers"]
    assert logins(broker, "reauthentication") == 1

    with Client(bootstrap, timeout_s=10) as idle:
        answer = login(idle, "PLAIN", plain("alice", "alice-secret"))
        assert answer["session_lifetime_ms"] == 1500
        assert metadata(idle)["brokers"]  # within the session: served
        time.sleep(1.6)
        idle.send(METADATA, 12, {"topics": [], "allow_auto_topic_creation": False})
        assert idle.is_closed_by_peer()


def test_re_authentication_may_not_change_the_principal_or_the_mechanism(start) -> None:
    """A logged-in connection of alice re-authenticates as admin: the login fails and the
    connection closes. Another one asks for SCRAM-SHA-512 in its re-authentication handshake
    after logging in with PLAIN: ILLEGAL_SASL_STATE, and it is closed."""
    broker = start(sasl_props(**{"connections.max.reauth.ms": "60000"}))
    bootstrap = broker.bootstrap_for("CLIENTS")
    with Client(bootstrap, timeout_s=10) as conn:
        assert login(conn, "PLAIN", plain("alice", "alice-secret"))["error_code"] == 0
        other = login(conn, "PLAIN", plain("admin", "admin-secret"))
        assert other["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert "re-authentication as User:admin" in other["error_message"]
        assert conn.is_closed_by_peer()
    with Client(bootstrap, timeout_s=10) as conn:
        assert login(conn, "PLAIN", plain("alice", "alice-secret"))["error_code"] == 0
        shake = conn.call(HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-512"})
        assert shake["error_code"] == ErrorCode.ILLEGAL_SASL_STATE
        conn.send(METADATA, 12, {"topics": [], "allow_auto_topic_creation": False})
        assert conn.is_closed_by_peer()


def test_an_oauthbearer_session_ends_no_later_than_its_token(start, tmp_path) -> None:
    """connections.max.reauth.ms is a minute, the token expires in 20 s: the session
    lifetime the broker gives is the token's remaining life (at most 20 s, more than 10 s)."""
    idp = Provider()
    broker = start(
        oauth_props(idp.write(tmp_path / "jwks.json"), **{"connections.max.reauth.ms": "60000"})
    )
    with Client(broker.bootstrap_for("CLIENTS"), timeout_s=10) as conn:
        message = f"n,,\x01auth=Bearer {idp.token(expires_in_s=20)}\x01\x01".encode()
        answer = login(conn, "OAUTHBEARER", message)
        assert answer["error_code"] == 0, answer
        assert 10_000 < answer["session_lifetime_ms"] <= 20_000


def test_librdkafka_re_authenticates_and_keeps_producing(start) -> None:
    """A confluent-kafka producer on a listener with 1 s sessions sends a record every 50 ms
    for 4 s: every record is delivered, librdkafka re-authenticated its connections
    (reauthentication logins counted), and it did not have to reconnect for each session
    (the first logins stay a handful)."""
    broker = start(sasl_props("PLAIN", **{"connections.max.reauth.ms": "1000"}))
    errors: list[Any] = []
    delivered: list[Any] = []
    p = Producer(
        {
            **client(broker, "PLAIN", "alice", "alice-secret"),
            "linger.ms": 0,
            "error_cb": errors.append,
        }
    )
    sent = 0
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and sent < 80:
        p.produce("reauth", str(sent).encode(), on_delivery=lambda e, m: delivered.append(e))
        sent += 1
        p.poll(0)
        time.sleep(0.05)
    assert p.flush(TIMEOUT_S) == 0
    assert delivered == [None] * sent, [e for e in delivered if e is not None]
    assert logins(broker, "reauthentication") >= 2
    assert logins(broker, "success") <= 4


def test_a_failed_login_is_answered_late_and_later_again_from_the_same_address(start) -> None:
    """connection.failed.authentication.delay.ms=300: a wrong password is answered
    SASL_AUTHENTICATION_FAILED no sooner than 300 ms after it was sent, and the connection is
    closed; a second failure from the same address waits at least twice as long. Failures
    are counted in edplog_authentications_total."""
    broker = start(sasl_props("PLAIN", **{"connection.failed.authentication.delay.ms": "300"}))
    bootstrap = broker.bootstrap_for("CLIENTS")
    for least in (0.3, 0.6):
        with Client(bootstrap, timeout_s=10) as conn:
            assert conn.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})["error_code"] == 0
            sent = time.monotonic()
            answer = conn.call(AUTHENTICATE, 2, {"auth_bytes": plain("alice", "wrong")})
            waited = time.monotonic() - sent
            assert answer["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED
            assert waited >= least, waited
            assert conn.is_closed_by_peer()
    assert logins(broker, "failure") == 2


def test_failed_logins_double_per_address_within_a_minute_and_stay_bounded() -> None:
    """The account itself, on a clock the test moves: 100 ms, then 200, 400 ... up to 32x
    for one address; another address starts at 100 ms; a minute later the first starts
    over. Remembering at most MAX_ADDRESSES addresses, a flood of new ones forgets old ones."""
    now = [0.0]
    account = FailedLogins(100, clock=lambda: now[0])
    delays = [account.failed("10.0.0.1") for _ in range(8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 3.2, 3.2])
    assert account.failed("10.0.0.2") == pytest.approx(0.1)
    now[0] = 61.0
    assert account.failed("10.0.0.1") == pytest.approx(0.1)
    for i in range(FailedLogins.MAX_ADDRESSES + 10):
        account.failed(f"h{i}")
    assert len(account._recent) <= FailedLogins.MAX_ADDRESSES
    assert FailedLogins(0).failed("x") == 0.0


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("connections.max.reauth.ms", "-1"),
        ("listener.name.clients.plain.connections.max.reauth.ms", "soon"),
        ("connection.failed.authentication.delay.ms", "-5"),
    ],
)
def test_bad_session_settings_are_refused(prop: str, value: str) -> None:
    """A negative or non-numeric lifetime or delay stops the start, naming the property."""
    with pytest.raises(InvalidConfigError, match=prop.replace(".", r"\.")):
        BrokerConfig.from_properties({**sasl_props(), prop: value})
