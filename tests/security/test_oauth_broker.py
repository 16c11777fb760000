"""OAUTHBEARER listeners in a running broker: signed JWTs from a test identity provider, with
confluent-kafka (librdkafka's ``oauth_cb``), kafka-python and aiokafka (token providers).

Each broker has a PLAINTEXT listener (where the test, anonymous, administers it) and a
SASL_PLAINTEXT one with OAUTHBEARER. Each test says what was tried and what must hold."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from typing import Any

import pytest
from acl_helpers import binding, create
from aio_helpers import produce_then_read
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AclOperation,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from oauth_helpers import AUDIENCE, ISSUER, JwksServer, Provider, SigningKey, oauth_props

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.errors import InvalidConfigError

TIMEOUT_S = 30


def bearer(broker: BackgroundBroker, token: str) -> dict[str, Any]:
    """librdkafka settings that log in with ``token`` (its callback says it lasts 5 min)."""
    return {
        "bootstrap.servers": broker.bootstrap_for("CLIENTS"),
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": lambda _config: (token, time.time() + 300),
    }


def roundtrip(
    conf: dict[str, Any], topic: str, value: bytes, group: str, passing: tuple[str, ...] = ()
) -> bytes:
    """Produce one record and read it back in a consumer group, both with ``conf``; client
    errors whose text holds one of ``passing`` may come before the login succeeds."""
    errors: list[Any] = []
    p = Producer({**conf, "message.timeout.ms": 20_000, "error_cb": errors.append})
    p.produce(topic, value, on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(TIMEOUT_S) == 0, errors
    assert all(any(text in e.str() for text in passing) for e in errors), errors
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                return bytes(msg.value())
        raise AssertionError(f"nothing read over OAUTHBEARER in {TIMEOUT_S} s")
    finally:
        c.close()


def login_error(conf: dict[str, Any]) -> str:
    """The message of the authentication error a producer meets first."""
    seen: list[KafkaError] = []
    p = Producer({**conf, "error_cb": seen.append, "message.timeout.ms": 3000})
    p.produce("anything", b"x")
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        p.poll(0.1)
        refused = [e for e in seen if e.code() == KafkaError._AUTHENTICATION]
        if refused:
            p.purge()
            p.flush(5)
            return refused[0].str()
    raise AssertionError(f"no authentication error in {TIMEOUT_S} s: {seen}")


def test_a_signed_token_logs_in_and_acls_judge_its_subject(start, tmp_path) -> None:
    """A token signed with the JWKS's RSA key, for the expected audience and issuer, logs in
    with confluent-kafka: alice produces and consumes in a group on the topic her ACLs allow.
    The principal is the token's ``sub``: bob's token logs in too, but the authorizer refuses
    him the topic (TOPIC_AUTHORIZATION_FAILED)."""
    idp = Provider()
    broker = start(
        oauth_props(
            idp.write(tmp_path / "jwks.json"),
            **{
                "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                "super.users": "User:ANONYMOUS",
            },
        )
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    for fut in admin.create_topics([NewTopic("oauth-t", 1, 1)]).values():
        fut.result(TIMEOUT_S)
    create(
        admin,
        [
            binding(ResourceType.TOPIC, "oauth-t", "User:alice", AclOperation.ALL),
            binding(
                ResourceType.GROUP,
                "oauth-",
                "User:alice",
                AclOperation.READ,
                pattern=ResourcePatternType.PREFIXED,
            ),
        ],
    )
    assert roundtrip(bearer(broker, idp.token("alice")), "oauth-t", b"hi", "oauth-g") == b"hi"

    seen: list[Any] = []
    p = Producer({**bearer(broker, idp.token("bob")), "message.timeout.ms": 10_000})
    p.produce("oauth-t", b"no", on_delivery=lambda err, msg: seen.append(err))
    p.flush(TIMEOUT_S)
    assert [e.code() for e in seen] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], seen


def test_kafka_python_and_aiokafka_log_in_with_token_providers(start, tmp_path) -> None:
    """kafka-python's and aiokafka's OAUTHBEARER token providers (ECDSA-signed tokens this
    time): each produces a record and reads back both records."""
    from aiokafka.abc import AbstractTokenProvider as AioTokenProvider
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.net.sasl.oauth import AbstractTokenProvider

    idp = Provider([SigningKey.ec("ec-1")])
    broker = start(oauth_props(idp.write(tmp_path / "jwks.json")))
    host_port = broker.bootstrap_for("CLIENTS")
    token = idp.token("carol")

    class Tokens(AbstractTokenProvider):
        def token(self) -> str:
            return token

    common = {
        "bootstrap_servers": host_port,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": Tokens(),
    }
    producer = KafkaProducer(**common)
    producer.send("oauth-py", b"from kafka-python").get(TIMEOUT_S)
    producer.close()

    class AioTokens(AioTokenProvider):
        async def token(self) -> str:
            return token

    aio_conf = {**common, "sasl_oauth_token_provider": AioTokens()}
    got = asyncio.run(produce_then_read("oauth-py", b"from aiokafka", 2, **aio_conf))
    assert got == [b"from kafka-python", b"from aiokafka"]
    consumer = KafkaConsumer(
        "oauth-py", auto_offset_reset="earliest", consumer_timeout_ms=10_000, **common
    )
    try:
        assert [m.value for m in consumer][:2] == [b"from kafka-python", b"from aiokafka"]
    finally:
        consumer.close()


def _stranger() -> SigningKey:
    return SigningKey.rsa("k1")  # the JWKS's key id, another key


REFUSED = {
    "expired": (lambda idp: idp.token(expires_in_s=-120), "expired"),
    "signed by another key": (lambda idp: idp.token(key=_stranger()), "signature"),
    "another audience": (lambda idp: idp.token(aud="someone-else"), "audience"),
    "another issuer": (lambda idp: idp.token(iss="https://evil.example"), "issuer"),
    "unknown key id": (lambda idp: idp.token(kid="k9"), "key id"),
    "no subject": (lambda idp: idp.token(sub=None), "'sub' claim"),
    "no expiry": (lambda idp: _no_exp(idp), "exp"),
    "shared-secret HS256": (lambda idp: _hs256(), "algorithm"),
    "unsigned (alg none)": (lambda idp: _unsigned(), "algorithm"),
    "not a JWT": (lambda idp: "not-a-token", "not a signed JWT"),
}


def _hs256() -> str:
    import jwt

    claims = {"sub": "mallory", "aud": AUDIENCE, "iss": ISSUER, "exp": time.time() + 300}
    return jwt.encode(claims, "k" * 32, "HS256", headers={"kid": "k1"})


def _unsigned() -> str:
    import jwt

    claims = {"sub": "mallory", "aud": AUDIENCE, "iss": ISSUER, "exp": time.time() + 300}
    return jwt.encode(claims, None, "none", headers={"kid": "k1"})


def _no_exp(idp: Provider) -> str:
    import jwt

    key = idp.keys[0]
    claims = {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER}
    return jwt.encode(claims, key.private, key.alg, headers={"kid": key.kid})


def test_bad_tokens_are_refused_with_a_reason(start, tmp_path) -> None:
    """Expired, wrongly signed, wrong-audience, wrong-issuer, unknown-key, subject-less and
    expiry-less tokens, shared-secret and unsigned ones and garbage: each login fails with
    SASL_AUTHENTICATION_FAILED and a message that says why; a good token still logs in
    afterwards (the failures left the broker serving)."""
    idp = Provider()
    broker = start(oauth_props(idp.write(tmp_path / "jwks.json")))
    for case, (make, reason) in REFUSED.items():
        message = login_error(bearer(broker, make(idp)))
        assert reason in message, (case, message)
    assert roundtrip(bearer(broker, idp.token()), "after", b"ok", "oauth-after") == b"ok"


def test_jwks_over_http_is_refreshed_when_a_token_names_a_new_key(start) -> None:
    """The JWKS comes from an HTTP endpoint, read when the broker starts. The provider then
    rotates in a second key: the first login with a token of the new key id fails and
    starts a refresh, and librdkafka's retry logs in with the refreshed set."""
    idp = Provider()
    with JwksServer(idp) as jwks:
        broker = start(
            oauth_props(
                jwks.url,
                **{"sasl.oauthbearer.jwks.endpoint.retry.backoff.ms": "50"},
            )
        )
        assert jwks.requests == 1
        new = SigningKey.rsa("k2", "PS256")
        idp.keys.append(new)
        token = idp.token("dave", key=new)
        passing = ("key id 'k2'", "brokers are down")
        assert roundtrip(bearer(broker, token), "rotated", b"r", "oauth-r", passing) == b"r"
        assert jwks.requests >= 2


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"listener.name.clients.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": None},
            "jwks.endpoint.url is not set",
        ),
        (
            {"listener.name.clients.oauthbearer.sasl.server.callback.handler.class": None},
            "sasl.server.callback.handler.class",
        ),
        (
            {"listener.name.clients.oauthbearer.sasl.jaas.config": "x.Y required ;"},
            "OAuthBearerLoginModule",
        ),
        ({"sasl.oauthbearer.clock.skew.seconds": "soon"}, "clock.skew.seconds"),
        ({"sasl.oauthbearer.token.endpoint.url": "http://x"}, "sasl.oauthbearer.token"),
    ],
)
def test_oauthbearer_settings_that_cannot_work_are_refused(change, named) -> None:
    """No key set, Kafka's unsecured default handler, another login module, a non-number and
    a client-side setting on the broker each stop the start, naming what is wrong."""
    props = oauth_props("file:///nonexistent/jwks.json")
    for key, value in change.items():
        if value is None:
            del props[key]
        else:
            props[key] = value
    with pytest.raises(InvalidConfigError, match=named):
        BrokerConfig.from_properties(props)


def test_a_broker_whose_key_set_cannot_be_read_does_not_start(tmp_path) -> None:
    """A JWKS URL that names a missing file, and a file that is not a key set: the start
    fails, naming the URL, instead of a listener that refuses every login."""
    for content in (None, '{"keys": "nope"}'):
        path = tmp_path / "jwks.json"
        if content is not None:
            path.write_text(content)
        props = {**oauth_props(path.as_uri()), "log.dirs": str(tmp_path / "data")}
        with pytest.raises(RuntimeError) as info:
            BackgroundBroker(BrokerConfig.from_properties(props)).start()
        assert isinstance(info.value.__cause__, InvalidConfigError)
        assert f"JWKS at {path.as_uri()}" in str(info.value.__cause__)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_unsigned_tokens_are_refused(start, tmp_path) -> None:
    """Debian 12's kcat (librdkafka 2.0.2 without libcurl: no OIDC) can only make unsigned
    tokens itself (``enable.sasl.oauthbearer.unsecure.jwt``). Listing metadata with one must
    fail with a SASL authentication error that names the algorithm, and the broker keeps
    serving signed tokens afterwards (docs/security.md)."""
    idp = Provider()
    broker = start(oauth_props(idp.write(tmp_path / "jwks.json")))
    out = subprocess.run(
        [
            "kcat",
            "-L",
            "-b",
            broker.bootstrap_for("CLIENTS"),
            "-m",
            "5",
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanisms=OAUTHBEARER",
            "-X",
            "enable.sasl.oauthbearer.unsecure.jwt=true",
            "-X",
            "sasl.oauthbearer.config=principal=alice",
        ],
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    assert out.returncode != 0, out.stdout
    text = out.stderr.decode(errors="replace")
    assert "SASL authentication error" in text and "algorithm" in text, text
    assert roundtrip(bearer(broker, idp.token()), "kcat-after", b"ok", "kcat-after") == b"ok"
