"""The asyncio client over TLS, mTLS and SASL (edplog.client.secure) against a real broker.

The broker has a PLAINTEXT listener (where the test administers it), an SSL listener that
requires client certificates, and a SASL_SSL listener with PLAIN users and SCRAM-SHA-512.
These are the connections a broker makes to another broker's secured inter-broker listener.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from security.tls_certs import CA, make_files

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.client import AsyncClient, FetchPosition
from edplog.client.errors import AuthenticationError, BrokerConnectionError
from edplog.client.secure import ClientSecurity
from edplog.records import build_batch, decode_batches

JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";'


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BackgroundBroker, Any]]:
    base = tmp_path_factory.mktemp("secure")
    files = make_files(base / "tls", CA())
    props = {
        "listeners": "PLAINTEXT://127.0.0.1:0,MTLS://127.0.0.1:0,LOGIN://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,MTLS:SSL,LOGIN:SASL_SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca),
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.login.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "listener.name.login.plain.sasl.jaas.config": JAAS,
        "log.dirs": str(base / "data"),
    }
    broker = BackgroundBroker(BrokerConfig.from_properties(props)).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        upsert = UserScramCredentialUpsertion(
            "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"bob-secret"
        )
        for fut in admin.alter_user_scram_credentials([upsert]).values():
            fut.result(30)
        for fut in admin.create_topics([NewTopic("sec", 1, 1)]).values():
            fut.result(30)
        yield broker, files
    finally:
        broker.stop()


def context(files: Any, *, certificate: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(files.ca))
    if certificate:
        ctx.load_cert_chain(str(files.client_cert), str(files.client_key))
    return ctx


async def roundtrip(address: str, security: ClientSecurity, value: bytes) -> list[bytes]:
    """Produce ``value`` (a batch of 12 such records) and fetch the partition from 0."""
    async with await AsyncClient.connect(address, security=security, timeout_s=30) as c:
        await c.produce("sec", 0, build_batch([(None, value)] * 12), acks=-1)
        got: list[bytes] = []
        offset = 0
        while True:
            (part,) = await c.fetch([FetchPosition("sec", 0, offset)], max_wait_ms=0)
            part.raise_for_error()
            if not len(part.records):
                return got
            for batch in decode_batches(bytes(part.records)):
                got.extend(r.value for r in batch.records)
                offset = batch.base_offset + len(batch.records)


def test_tls_with_a_client_certificate_carries_large_requests_and_responses(secured) -> None:
    """Over the mTLS listener a 12 x 64 KiB batch goes in and comes back whole (responses
    span many TLS records and many socket reads); without a client certificate the broker
    refuses the connection, and a certificate that names another host than the one asked
    for is refused by the client."""
    broker, files = secured
    address = broker.bootstrap_for("MTLS")
    value = bytes(range(256)) * 256
    got = asyncio.run(roundtrip(address, ClientSecurity(context(files)), value))
    assert got.count(value) >= 12

    async def without_certificate() -> None:
        security = ClientSecurity(context(files, certificate=False))
        c = await AsyncClient.connect(address, security=security, timeout_s=10)
        try:
            await c.metadata()
        finally:
            await c.close()

    with pytest.raises(BrokerConnectionError):
        asyncio.run(without_certificate())

    async def wrong_name() -> None:
        security = ClientSecurity(context(files), server_hostname="broker.example.com")
        await AsyncClient.connect(address, security=security, timeout_s=10)

    with pytest.raises(AuthenticationError, match="TLS handshake"):
        asyncio.run(wrong_name())


@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [("PLAIN", "alice", "alice-secret"), ("SCRAM-SHA-512", "bob", "bob-secret")],
)
def test_sasl_ssl_logins_and_a_wrong_password(secured, mechanism, user, password) -> None:
    """PLAIN and SCRAM-SHA-512 log in over SASL_SSL and the connection serves Produce and
    Fetch; the same user with a wrong password gets AuthenticationError with the broker's
    message, and a mechanism the listener lacks is named in the error."""
    broker, files = secured
    address = broker.bootstrap_for("LOGIN")
    tls = context(files, certificate=False)
    good = ClientSecurity(tls, sasl_mechanism=mechanism, sasl_username=user, sasl_password=password)
    got = asyncio.run(roundtrip(address, good, mechanism.encode()))
    assert got.count(mechanism.encode()) >= 12

    async def login(with_security: ClientSecurity) -> None:
        await AsyncClient.connect(address, security=with_security, timeout_s=10)

    bad = ClientSecurity(tls, sasl_mechanism=mechanism, sasl_username=user, sasl_password="no")
    with pytest.raises(AuthenticationError, match="refused the .* login") as refused:
        asyncio.run(login(bad))
    assert "invalid" in str(refused.value) or "authentication failed" in str(refused.value)
    other = "SCRAM-SHA-256"
    with pytest.raises(AuthenticationError, match=f"refused SASL mechanism {other}"):
        asyncio.run(login(ClientSecurity(tls, sasl_mechanism=other, sasl_username=user)))


def test_unknown_mechanisms_are_refused_before_connecting() -> None:
    """A mechanism the client cannot run (GSSAPI) is refused when the settings are made."""
    with pytest.raises(ValueError, match="GSSAPI"):
        ClientSecurity(sasl_mechanism="GSSAPI")
