"""Secrets in broker configuration: ENC[...] values (AES-256-GCM) and Kafka's config
providers (${file:...}, ${env:...}, ${dir:...}), from the cipher up to a running broker that
a confluent-kafka client logs in to with a password the properties never held in clear.
Each test says what was tried and what must hold."""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.errors import InvalidConfigError
from edplog.security.secrets import SecretError, SecretKey, resolve

TIMEOUT_S = 30
FILE = "org.apache.kafka.common.config.provider.FileConfigProvider"
ENV = "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
DIR = "org.apache.kafka.common.config.provider.DirectoryConfigProvider"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "broker.key"
    SecretKey.generate().write(path)
    return path


def test_round_trip_and_a_fresh_nonce_each_time() -> None:
    """A value encrypted twice gives two different ENC[v1:<key id>:...] texts (a fresh
    nonce), and both decrypt to the value, unicode included."""
    key = SecretKey.generate()
    one, two = key.encrypt("pässword 1"), key.encrypt("pässword 1")
    assert one != two
    assert one.startswith(f"ENC[v1:{key.key_id}:") and one.endswith("]")
    assert key.decrypt(one) == key.decrypt(two) == "pässword 1"


def test_wrong_key_and_edited_values_are_refused() -> None:
    """Another key, an edited ciphertext, an edited key id (forged to match the other key)
    and an edited version are each refused with an error, never decrypted to garbage."""
    key, other = SecretKey.generate(), SecretKey.generate()
    token = key.encrypt("alice-secret")
    with pytest.raises(SecretError, match="cannot decrypt: wrong key or edited value"):
        other.decrypt(token)
    inner = token[4:-1]
    version, key_id, data = inner.split(":")
    raw = bytearray(base64.b64decode(data))
    raw[20] ^= 1
    edited = f"ENC[{version}:{key_id}:{base64.b64encode(bytes(raw)).decode()}]"
    with pytest.raises(SecretError, match="cannot decrypt: wrong key or edited value"):
        key.decrypt(edited)
    forged = f"ENC[{version}:{other.key_id}:{data}]"
    with pytest.raises(SecretError, match="cannot decrypt: wrong key or edited value"):
        other.decrypt(forged)
    with pytest.raises(SecretError, match="unknown version 'v9'"):
        key.decrypt(f"ENC[v9:{key_id}:{data}]")


def test_keys_from_a_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key file is written 0600 and read back as the same key; the same text in an
    environment variable is the same key; a short key and an unset variable are refused."""
    key = SecretKey.generate()
    key.write(tmp_path / "k")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert SecretKey.from_file(tmp_path / "k").key_id == key.key_id
    monkeypatch.setenv("EDPLOG_TEST_KEY", key.text())
    assert SecretKey.from_env("EDPLOG_TEST_KEY").decrypt(key.encrypt("x")) == "x"
    monkeypatch.setenv("EDPLOG_TEST_KEY", base64.b64encode(b"short").decode())
    with pytest.raises(SecretError, match="a key is 32 bytes"):
        SecretKey.from_env("EDPLOG_TEST_KEY")
    with pytest.raises(SecretError, match="EDPLOG_NO_SUCH_KEY"):
        SecretKey.from_env("EDPLOG_NO_SUCH_KEY")


def test_providers_resolve_file_env_and_directory_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${file:path:key}, ${env:NAME} and ${dir:path:name} inside values are replaced; the
    properties naming them are sensitive; the provider settings are not passed on."""
    (tmp_path / "creds.properties").write_text("password = from-file\n")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "p").write_text("from-dir")
    monkeypatch.setenv("EDPLOG_TEST_PW", "from-env")
    got = resolve(
        {
            "config.providers": "file,env,dir",
            "config.providers.file.class": FILE,
            "config.providers.env.class": ENV,
            "config.providers.dir.class": DIR,
            "config.providers.dir.param.allowed.paths": str(tmp_path / "keys"),
            "a.password": f"${{file:{tmp_path}/creds.properties:password}}",
            "b.password": "x-${env:EDPLOG_TEST_PW}-y",
            "c.password": f"${{dir:{tmp_path}/keys:p}}",
            "num.partitions": "3",
        }
    )
    assert got.properties == {
        "a.password": "from-file",
        "b.password": "x-from-env-y",
        "c.password": "from-dir",
        "num.partitions": "3",
    }
    assert got.sensitive == {"a.password", "b.password", "c.password"}


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"x": "${vault:a:b}"}, r"x: \$\{vault:a:b\}: no config provider 'vault'"),
        (
            {"config.providers": "f", "config.providers.f.class": "com.acme.Vault"},
            "not a config provider edplog has",
        ),
        (
            {"config.providers": "f", "config.providers.f.class": FILE, "x": "${f:/nonexistent:k}"},
            r"x: \$\{f:/nonexistent:k\}: cannot read /nonexistent",
        ),
        (
            {"config.providers": "e", "config.providers.e.class": ENV, "x": "${e:EDPLOG_UNSET}"},
            "EDPLOG_UNSET is not set",
        ),
        (
            {
                "config.providers": "e",
                "config.providers.e.class": ENV,
                "x": "1",
                "config.providers.e.param.ttl": "5",
            },
            "not a parameter of EnvVarConfigProvider",
        ),
        ({"config.providers.g.class": FILE}, "g is not a provider of config.providers"),
        ({"x": "ENC[v1:abcd:AAAA]"}, "x holds an encrypted value .* names the key"),
    ],
)
def test_bad_settings_and_references_refuse_to_start(props: dict[str, str], expected: str) -> None:
    """An unknown provider, class or parameter, an unreadable file, an unset variable and an
    ENC value without a key each refuse the configuration, naming property and reference."""
    with pytest.raises(InvalidConfigError, match=expected):
        BrokerConfig.from_properties(props)


def test_errors_never_quote_a_resolved_secret(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value error that quotes the value (num.partitions is not an integer) names the
    property but shows <secret> for text from a provider or ENC[...]; a wrong key and a
    missing key in a provider's file name the reference, not the file's other values."""
    monkeypatch.setenv("EDPLOG_TEST_NUM", "hunter2")
    env = {"config.providers": "env", "config.providers.env.class": ENV}
    with pytest.raises(InvalidConfigError) as caught:
        BrokerConfig.from_properties({**env, "num.partitions": "${env:EDPLOG_TEST_NUM}"})
    assert "num.partitions" in str(caught.value) and "<secret>" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    token = SecretKey.from_file(key_file).encrypt("swordfish")
    with pytest.raises(InvalidConfigError) as caught:
        BrokerConfig.from_properties(
            {"config.secret.key.file": str(key_file), "log.retention.hours": token}
        )
    assert "log.retention.hours" in str(caught.value) and "swordfish" not in str(caught.value)
    other = tmp_path / "other.key"
    SecretKey.generate().write(other)
    with pytest.raises(InvalidConfigError, match="x: cannot decrypt: wrong key"):
        BrokerConfig.from_properties({"config.secret.key.file": str(other), "x": token})
    (tmp_path / "c.properties").write_text("password=swordfish\n")
    ref = f"${{file:{tmp_path}/c.properties:pass}}"
    with pytest.raises(InvalidConfigError) as caught:
        BrokerConfig.from_properties(
            {"config.providers": "file", "config.providers.file.class": FILE, "y": ref}
        )
    assert f"y: {ref}" in str(caught.value) and "has no key pass" in str(caught.value)
    assert "swordfish" not in str(caught.value)


def sasl_broker_props(jaas: str, **extra: str) -> dict[str, str]:
    return {
        "listeners": "PLAINTEXT://127.0.0.1:0,CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "listener.name.clients.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.clients.plain.sasl.jaas.config": jaas,
        **extra,
    }


def produce_as(broker: BackgroundBroker, user: str, password: str) -> list[Any]:
    """Produce one record over SASL PLAIN; the errors met (empty: logged in and written)."""
    errors: list[Any] = []
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap_for("CLIENTS"),
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": user,
            "sasl.password": password,
            "message.timeout.ms": 10_000,
            "error_cb": errors.append,
        }
    )
    p.produce("secret-t", b"v", on_delivery=lambda err, msg: errors.append(err) if err else None)
    p.flush(TIMEOUT_S)
    return errors


def describe_broker(broker: BackgroundBroker) -> dict[str, Any]:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    futures = admin.describe_configs([ConfigResource("broker", "0")])
    return dict(next(iter(futures.values())).result(TIMEOUT_S))


def test_a_broker_with_encrypted_and_provided_passwords(
    start, tmp_path: Path, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker whose PLAIN JAAS password for alice is ENC[...] (key from a file) and for bob
    comes from ${file:...}: both log in with confluent-kafka and produce, a wrong password is
    refused; DescribeConfigs answers the JAAS property and an ENC-valued property as
    sensitive with value None; the broker's log, at DEBUG, holds neither secret."""
    caplog.set_level(logging.DEBUG, logger="edplog")
    token = SecretKey.from_file(key_file).encrypt("alice-Secret-9")
    (tmp_path / "bob.properties").write_text("bob.password=bob-Secret-7\n")
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_alice="{token}" '
        f'user_bob="${{file:{tmp_path}/bob.properties:bob.password}}";'
    )
    broker = start(
        sasl_broker_props(
            jaas,
            **{
                "config.secret.key.file": str(key_file),
                "config.providers": "file",
                "config.providers.file.class": FILE,
                "group.initial.rebalance.delay.ms": "0",
                "custom.note": token,  # a property edplog does not know, encrypted
            },
        )
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    for fut in admin.create_topics([NewTopic("secret-t", 1, 1)]).values():
        fut.result(TIMEOUT_S)
    assert produce_as(broker, "alice", "alice-Secret-9") == []
    assert produce_as(broker, "bob", "bob-Secret-7") == []
    assert produce_as(broker, "alice", "not-it") != []
    configs = describe_broker(broker)
    for name in ("listener.name.clients.plain.sasl.jaas.config", "custom.note"):
        assert configs[name].is_sensitive, name
        assert configs[name].value is None, name
    assert configs["num.partitions"].is_sensitive is False
    assert "alice-Secret-9" not in caplog.text and "bob-Secret-7" not in caplog.text
    assert caplog.text  # the broker did log (its start, the failed login)


def test_a_broker_with_the_key_in_the_environment(start, monkeypatch: pytest.MonkeyPatch) -> None:
    """config.secret.key.env names a variable holding the key: the ENC[...] password in the
    JAAS configuration works for a confluent-kafka login."""
    key = SecretKey.generate()
    monkeypatch.setenv("EDPLOG_TEST_BROKER_KEY", key.text())
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_carol="{key.encrypt("carol-pw")}";'
    )
    broker = start(sasl_broker_props(jaas, **{"config.secret.key.env": "EDPLOG_TEST_BROKER_KEY"}))
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")})
    for fut in admin.create_topics([NewTopic("secret-t", 1, 1)]).values():
        fut.result(TIMEOUT_S)
    assert produce_as(broker, "carol", "carol-pw") == []
