"""Hostile SASL clients against a running broker: tampered and replayed SCRAM messages,
garbage and oversized login frames, and the SCRAM-SHA-512 logins of kafka-python and aiokafka
over SASL_SSL.

The protocol-level tests speak SaslHandshake / SaslAuthenticate themselves (edplog's
blocking client) with ``scramp`` as the honest client whose messages they then alter. Each
test says what was tried and what must hold; what must survive is always the broker: a good
login afterwards still works."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import ssl
import struct
from typing import Any

import pytest
from aio_helpers import produce_then_read
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from oauth_helpers import Provider
from scramp import ScramClient
from test_sasl_broker import sasl_props

from edplog.broker.runner import BackgroundBroker
from edplog.client import Client
from edplog.errors import ErrorCode

HANDSHAKE, AUTHENTICATE = 17, 36
TIMEOUT_S = 30
SEED = 20261204


def set_scram(broker: BackgroundBroker, user: str, password: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upsert = UserScramCredentialUpsertion(user, info, password.encode())
    for fut in admin.alter_user_scram_credentials([upsert]).values():
        fut.result(TIMEOUT_S)


def scram_first(conn: Client, client_first: str) -> str:
    """Handshake and the client-first message; the server-first message."""
    assert conn.call(HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-512"})["error_code"] == 0
    first = conn.call(AUTHENTICATE, 2, {"auth_bytes": client_first.encode()})
    assert first["error_code"] == 0, first
    return bytes(first["auth_bytes"]).decode()


def final_answer(conn: Client, message: str) -> dict[str, Any]:
    return conn.call(AUTHENTICATE, 2, {"auth_bytes": message.encode()})


def good_login(broker: BackgroundBroker) -> None:
    """The broker still serves: an honest SCRAM login succeeds."""
    with Client(broker.bootstrap_for("CLIENTS"), timeout_s=10) as conn:
        scram = ScramClient(["SCRAM-SHA-512"], "carol", "carol-secret")
        scram.set_server_first(scram_first(conn, scram.get_client_first()))
        answer = final_answer(conn, scram.get_client_final())
        assert answer["error_code"] == 0, answer
        scram.set_server_final(bytes(answer["auth_bytes"]).decode())


@pytest.fixture
def scram_broker(start) -> BackgroundBroker:
    broker = start(
        sasl_props("SCRAM-SHA-512", **{"connection.failed.authentication.delay.ms": "0"})
    )
    set_scram(broker, "carol", "carol-secret")
    return broker


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda m: re.sub(r"r=([^,]+)", lambda g: f"r={g[1]}x", m), id="nonce"),
        pytest.param(
            lambda m: re.sub(r"p=(.)", lambda g: "p=" + ("A" if g[1] != "A" else "B"), m),
            id="proof",
        ),
        pytest.param(lambda m: m.replace("c=biws", "c=eSws"), id="channel-binding"),
        pytest.param(lambda m: m.split(",p=")[0], id="no-proof"),
    ],
)
def test_a_tampered_scram_final_message_fails_and_closes(scram_broker, tamper) -> None:
    """The honest client's final message with its nonce extended, a proof byte changed, the
    channel binding changed or the proof cut off: SASL_AUTHENTICATION_FAILED, the connection
    is closed, and an honest login afterwards succeeds."""
    with Client(scram_broker.bootstrap_for("CLIENTS"), timeout_s=10) as conn:
        scram = ScramClient(["SCRAM-SHA-512"], "carol", "carol-secret")
        scram.set_server_first(scram_first(conn, scram.get_client_first()))
        answer = final_answer(conn, tamper(scram.get_client_final()))
        assert answer["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED, answer
        assert conn.is_closed_by_peer()
    good_login(scram_broker)


def test_a_replayed_scram_final_message_is_refused(scram_broker) -> None:
    """An eavesdropper replays a login it saw: the same client-first message on a new
    connection gets a new server nonce, so the recorded final message (whose proof signs the
    old one) fails, and so does sending it again on the original, logged-in connection."""
    bootstrap = scram_broker.bootstrap_for("CLIENTS")
    scram = ScramClient(["SCRAM-SHA-512"], "carol", "carol-secret")
    client_first = scram.get_client_first()
    with Client(bootstrap, timeout_s=10) as conn:
        scram.set_server_first(scram_first(conn, client_first))
        recorded = scram.get_client_final()
        assert final_answer(conn, recorded)["error_code"] == 0
        again = final_answer(conn, recorded)
        assert again["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED
    with Client(bootstrap, timeout_s=10) as replay:
        assert replay.call(HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-512"})["error_code"] == 0
        first = replay.call(AUTHENTICATE, 2, {"auth_bytes": client_first.encode()})
        assert first["error_code"] == 0
        answer = final_answer(replay, recorded)
        assert answer["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED, answer
        assert replay.is_closed_by_peer()
    good_login(scram_broker)


def test_garbage_login_messages_are_refused_for_every_mechanism(start, tmp_path) -> None:
    """200 random messages (seeded; random lengths up to 4 KiB, random bytes, and mangled
    versions of real messages) sent as the first SaslAuthenticate of PLAIN, SCRAM-SHA-512
    and OAUTHBEARER: each is answered SASL_AUTHENTICATION_FAILED (or, for a client-first
    SCRAM message that happens to parse, a server-first one the client cannot follow) and
    never crashes the connection handling; an honest login works afterwards."""
    idp = Provider()
    oauth = {
        "listener.name.clients.oauthbearer.sasl.server.callback.handler.class": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
        ),
        "sasl.oauthbearer.jwks.endpoint.url": idp.write(tmp_path / "jwks.json"),
        "connection.failed.authentication.delay.ms": "0",
    }
    broker = start(sasl_props("PLAIN,SCRAM-SHA-512,OAUTHBEARER", **oauth))
    set_scram(broker, "carol", "carol-secret")
    rng = random.Random(SEED)
    seeds = [
        b"\x00alice\x00alice-secret",
        b"n,,n=carol,r=abcdef",
        f"n,,\x01auth=Bearer {idp.token()}\x01\x01".encode(),
    ]
    refused = 0
    for i in range(200):
        mechanism = ("PLAIN", "SCRAM-SHA-512", "OAUTHBEARER")[i % 3]
        if i % 2:
            message = bytes(rng.randrange(256) for _ in range(rng.randrange(4096)))
        else:
            base = bytearray(seeds[i % 3])
            for _ in range(rng.randrange(1, 8)):
                base[rng.randrange(len(base))] = rng.randrange(256)
            message = bytes(base)
        with Client(broker.bootstrap_for("CLIENTS"), timeout_s=10) as conn:
            assert conn.call(HANDSHAKE, 1, {"mechanism": mechanism})["error_code"] == 0
            answer = conn.call(AUTHENTICATE, 2, {"auth_bytes": message})
            if answer["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED:
                refused += 1
                assert answer["error_message"]
            else:
                # Only a SCRAM client-first message may pass its step (a server-first answer).
                assert mechanism == "SCRAM-SHA-512" and answer["error_code"] == 0, answer
    assert refused >= 190
    good_login(broker)


def test_a_login_frame_above_sasl_server_max_receive_size_closes(start) -> None:
    """sasl.server.max.receive.size=4096: a 5 KiB SaslAuthenticate frame from a client that
    has not logged in is refused by its size prefix alone (the connection closes, nothing is
    read into memory), while a 3 KiB one is answered; after a login, a 5 KiB request is
    served as any other."""
    broker = start(sasl_props("PLAIN", **{"sasl.server.max.receive.size": "4096"}))
    host, port = broker.bootstrap_for("CLIENTS").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", 5 * 1024) + b"\x00" * 64)
        assert sock.recv(1) == b""
    with Client(broker.bootstrap_for("CLIENTS"), timeout_s=10) as conn:
        assert conn.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})["error_code"] == 0
        answer = conn.call(AUTHENTICATE, 2, {"auth_bytes": b"\x00" * 3072})
        assert answer["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED
    with Client(broker.bootstrap_for("CLIENTS"), timeout_s=10) as conn:
        assert conn.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})["error_code"] == 0
        login = conn.call(AUTHENTICATE, 2, {"auth_bytes": b"\x00alice\x00alice-secret"})
        assert login["error_code"] == 0
        big = conn.call(3, 12, {"topics": [{"name": "t" * 5000, "topic_id": None}]})
        assert big["topics"][0]["name"] == "t" * 5000


def test_kafka_python_and_aiokafka_log_in_with_scram_over_sasl_ssl(start, tmp_path) -> None:
    """kafka-python and aiokafka with SCRAM-SHA-512 over SASL_SSL (the broker's certificate
    checked against its CA): each produces one record; both records are read back."""
    from kafka import KafkaProducer
    from tls_certs import CA, make_files

    files = make_files(tmp_path / "certs", CA())
    broker = start(
        {
            **sasl_props("SCRAM-SHA-512"),
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(files.keystore),
        }
    )
    set_scram(broker, "dana", "dana-secret")
    common = {
        "bootstrap_servers": broker.bootstrap_for("CLIENTS"),
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "dana",
        "sasl_plain_password": "dana-secret",
    }
    context = ssl.create_default_context(cafile=str(files.ca))
    producer = KafkaProducer(**common, ssl_context=context)
    producer.send("scram-ssl", b"kafka-python").get(TIMEOUT_S)
    producer.close()

    got = asyncio.run(produce_then_read("scram-ssl", b"aiokafka", 2, **common, ssl_context=context))
    assert got == [b"kafka-python", b"aiokafka"]
