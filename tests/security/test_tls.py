"""TLS settings without a broker: Kafka's ``ssl.*`` properties checked and made into server
contexts (PEM files, an encrypted key, inline KIP-651 PEM, PKCS #12), refused with the
property's name when wrong or not implemented; ``ssl.principal.mapping.rules`` with Kafka's
own examples; a changed key store file reloaded, a half-written one kept out."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from tls_certs import CA, make_files, write_pem_keystore, write_pkcs12

from edplog.broker.config import BrokerConfig
from edplog.errors import InvalidConfigError
from edplog.security.ssl_principal import NoMatchingRule, PrincipalMapper
from edplog.security.tls import ServerTls, TlsSettings, build_context, listener_properties

SSL_LISTENER = {"listeners": "SSL://127.0.0.1:0"}


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


def pem_props(files, **extra: str) -> dict[str, str]:
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca),
        **extra,
    }


def test_pem_key_store_and_trust_store_make_a_server_context(tmp_path: Path, ca: CA) -> None:
    files = make_files(tmp_path, ca)
    settings = TlsSettings.from_properties(
        "SSL", pem_props(files, **{"ssl.client.auth": "required"})
    )
    ctx = build_context(settings)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert [c["subject"] for c in ctx.get_ca_certs()] == [
        ((("organizationName", "edplog tests"),), (("commonName", "edplog test CA"),))
    ]


def test_encrypted_pem_key_needs_ssl_key_password(tmp_path: Path, ca: CA) -> None:
    files = make_files(tmp_path, ca)
    server = ca.issue(server=True, CN="localhost")
    write_pem_keystore(files.keystore, server, ca, password="s3cret")
    build_context(
        TlsSettings.from_properties("SSL", pem_props(files, **{"ssl.key.password": "s3cret"}))
    )
    with pytest.raises(InvalidConfigError, match="ssl.keystore.location.*ssl.key.password"):
        build_context(
            TlsSettings.from_properties("SSL", pem_props(files, **{"ssl.key.password": "wrong"}))
        )


def test_pem_key_store_refuses_a_store_password_as_kafka_does(tmp_path: Path, ca: CA) -> None:
    files = make_files(tmp_path, ca)
    with pytest.raises(InvalidConfigError, match="ssl.keystore.password"):
        TlsSettings.from_properties("SSL", pem_props(files, **{"ssl.keystore.password": "x"}))


def test_inline_pem_from_a_properties_file_with_joined_lines(tmp_path: Path, ca: CA) -> None:
    """KIP-651: the key and chain inline; a properties file's continued lines arrive joined
    by spaces, which the PEM reader undoes. The key never touches the disk."""
    server = ca.issue(server=True, CN="localhost")
    text = (
        "listeners=SSL://127.0.0.1:0\n"
        "ssl.keystore.type=PEM\n"
        "ssl.keystore.key=" + " \\\n    ".join(server.key_pem().decode().splitlines()) + "\n"
        "ssl.keystore.certificate.chain="
        + " \\\n    ".join(server.cert_pem().decode().splitlines())
        + "\n"
        "ssl.truststore.certificates=" + " \\\n  ".join(ca.cert_pem().decode().splitlines()) + "\n"
        "ssl.client.auth=requested\n"
    )
    from edplog.broker.config import parse_properties

    cfg = BrokerConfig.from_properties(parse_properties(text))
    tls = cfg.listeners[0].tls
    assert tls is not None and tls.keystore_key is not None and "\n" not in tls.keystore_key
    ctx = build_context(tls)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert len(ctx.get_ca_certs()) == 1


def test_pkcs12_key_store_and_trust_store(tmp_path: Path, ca: CA) -> None:
    server = ca.issue(server=True, CN="localhost")
    keystore = write_pkcs12(tmp_path / "server.p12", server, ca, "changeit")
    truststore = write_pkcs12(tmp_path / "trust.p12", ca.issue(server=False, CN="x"), ca, "pw")
    props = {
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(keystore),
        "ssl.keystore.password": "changeit",
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(truststore),
        "ssl.truststore.password": "pw",
        "ssl.client.auth": "required",
    }
    ctx = build_context(TlsSettings.from_properties("SSL", props))
    assert any((("commonName", "edplog test CA"),) in c["subject"] for c in ctx.get_ca_certs())
    with pytest.raises(InvalidConfigError, match="PKCS12"):
        build_context(
            TlsSettings.from_properties("SSL", {**props, "ssl.keystore.password": "wrong"})
        )


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"ssl.enabled.protocols": "TLSv1.1,TLSv1.2"}, "ssl.enabled.protocols.*TLSv1.1 refused"),
        ({"ssl.enabled.protocols": "TLSv1"}, "ssl.enabled.protocols"),
        ({"ssl.protocol": "TLSv1.1"}, "ssl.protocol=TLSv1.1"),
        ({"ssl.protocol": "SSL"}, "ssl.protocol=SSL"),
        ({"ssl.client.auth": "always"}, "ssl.client.auth"),
        ({"ssl.truststore.password": "x"}, "ssl.truststore.password"),
        ({"ssl.keystore.type": "JKS"}, "ssl.keystore.type=JKS"),
        ({"ssl.truststore.type": "JKS"}, "ssl.truststore.type=JKS"),
        ({"ssl.cipher.suites": "TLS_AES_128_GCM_SHA256"}, "ssl.cipher.suites.*TLS 1.3"),
        ({"ssl.cipher.suites": "TLS_RSA_WITH_NOTHING"}, "ssl.cipher.suites.*NOTHING"),
        ({"ssl.endpoint.identification.algorithm": "ldap"}, "ssl.endpoint.identification"),
        ({"ssl.principal.mapping.rules": "RULE:^CN=(.*)$/$1/X"}, "ssl.principal.mapping.rules"),
    ],
)
def test_wrong_ssl_settings_are_refused_by_name(tmp_path: Path, ca: CA, extra, named) -> None:
    files = make_files(tmp_path, ca)
    props = {**SSL_LISTENER, **pem_props(files), **extra}
    with pytest.raises(InvalidConfigError, match=named):
        BrokerConfig.from_properties(props)


@pytest.mark.parametrize(
    "name",
    [
        "ssl.keymanager.algorithm",
        "ssl.trustmanager.algorithm",
        "ssl.provider",
        "ssl.engine.factory.class",
        "ssl.secure.random.implementation",
        "ssl.keystore.certificate.chain.location",
        "listener.name.ssl.ssl.provider",
        "listener.name.ssl.sasl.enabled.mechanisms",
        "listener.name.ssl.plain.sasl.jaas.config",
    ],
)
def test_ssl_settings_not_implemented_are_refused_with_their_names(
    tmp_path: Path, ca: CA, name: str
) -> None:
    files = make_files(tmp_path, ca)
    with pytest.raises(InvalidConfigError, match=name.replace(".", r"\.")):
        BrokerConfig.from_properties({**SSL_LISTENER, **pem_props(files), name: "x"})


def test_tls_12_only_and_kafka_cipher_names(tmp_path: Path, ca: CA) -> None:
    files = make_files(tmp_path, ca)
    settings = TlsSettings.from_properties(
        "SSL",
        pem_props(
            files,
            **{
                "ssl.enabled.protocols": "TLSv1.2",
                "ssl.cipher.suites": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            },
        ),
    )
    ctx = build_context(settings)
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES256-GCM-SHA384"]


def test_an_ssl_listener_without_a_key_or_needing_a_trust_store_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="listener SSL is SSL but has no key"):
        BrokerConfig.from_properties(SSL_LISTENER)
    with pytest.raises(InvalidConfigError, match="ssl.client.auth=required .*needs"):
        TlsSettings.from_properties(
            "SSL",
            {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": "/x",
                "ssl.client.auth": "required",
            },
        )


def test_a_missing_key_store_file_is_named(tmp_path: Path) -> None:
    settings = TlsSettings.from_properties(
        "SSL", {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(tmp_path / "none.pem")}
    )
    with pytest.raises(InvalidConfigError, match="ssl.keystore.location=.*none.pem"):
        build_context(settings)


def test_listener_overrides_win_over_the_broker_wide_settings() -> None:
    props = {
        "ssl.client.auth": "none",
        "ssl.keystore.type": "PEM",
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.INTERNAL.ssl.keystore.location": "/internal.pem",
    }
    got = listener_properties(props, "INTERNAL")
    assert got == {
        "ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": "/internal.pem",
    }
    assert listener_properties(props, "EXTERNAL")["ssl.client.auth"] == "none"


def test_named_listeners_map_to_ssl_and_each_is_advertised(tmp_path: Path, ca: CA) -> None:
    files = make_files(tmp_path, ca)
    cfg = BrokerConfig.from_properties(
        {
            "listeners": "INTERNAL://127.0.0.1:9092,EXTERNAL://127.0.0.1:9093",
            "advertised.listeners": "EXTERNAL://ext.example:19093,INTERNAL://int.example:9092",
            "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:SSL",
            **{f"listener.name.external.{k}": v for k, v in pem_props(files).items()},
        }
    )
    assert [(lc.name, lc.protocol) for lc in cfg.listeners] == [
        ("INTERNAL", "PLAINTEXT"),
        ("EXTERNAL", "SSL"),
    ]
    assert cfg.listeners[0].tls is None and cfg.listeners[1].tls is not None
    assert cfg.advertised == ("int.example", 9092)
    assert cfg.advertised_for("INTERNAL") == ("int.example", 9092)
    assert cfg.advertised_for("EXTERNAL") == ("ext.example", 19093)


def test_a_sasl_listener_without_mechanisms_is_refused() -> None:
    """Kafka's default mechanism (GSSAPI) is not implemented: a SASL listener must name
    its mechanisms (docs/security.md, Authentication: SASL)."""
    with pytest.raises(InvalidConfigError, match="sasl.enabled.mechanisms"):
        BrokerConfig.from_properties({"listeners": "SASL_PLAINTEXT://127.0.0.1:9094"})


# ---- ssl.principal.mapping.rules ---------------------------------------------------------

KAFKA_DOC_RULES = (
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,"
    "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,"
    "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,"
    "DEFAULT"
)


@pytest.mark.parametrize(
    ("dn", "name"),
    [
        # Kafka's documentation examples (security.html, "Customizing SSL User Name").
        ("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", "serviceuser"),
        ("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", "adminuser@admin"),
        ("CN=Bob.Smith,O=Acme", "bob.smith"),
        ("O=Acme,C=GB", "O=Acme,C=GB"),
    ],
)
def test_kafkas_documented_mapping_rules(dn: str, name: str) -> None:
    assert PrincipalMapper.parse(KAFKA_DOC_RULES).map(dn) == name


def test_mapping_rules_upper_case_new_lines_and_escaped_slashes() -> None:
    rules = PrincipalMapper.parse("RULE:^CN=([^,]*),.*$/$1/U\n RULE:^O=(.*)$/org\\/$1/")
    assert rules.map("CN=alice,O=Acme") == "ALICE"
    assert rules.map("O=Acme") == "org/Acme"


def test_no_matching_rule_refuses_and_default_is_the_whole_subject() -> None:
    with pytest.raises(NoMatchingRule):
        PrincipalMapper.parse("RULE:^CN=(.*),OU=eng$/$1/").map("CN=alice,OU=ops")
    assert PrincipalMapper.parse(None).map("CN=alice,OU=eng") == "CN=alice,OU=eng"
    assert PrincipalMapper.parse("DEFAULT").map("CN=a") == "CN=a"


# ---- reload ------------------------------------------------------------------------------


def test_a_changed_key_store_is_reloaded_and_a_broken_one_is_kept_out(
    tmp_path: Path, ca: CA
) -> None:
    files = make_files(tmp_path, ca)
    tls = ServerTls(TlsSettings.from_properties("SSL", pem_props(files)))
    first = tls.context
    assert not tls.reload_if_changed()
    half = tmp_path / "half.pem"
    half.write_bytes(files.keystore.read_bytes()[:100])
    os.replace(half, files.keystore)
    assert not tls.reload_if_changed() and tls.context is first  # kept the old one
    write_pem_keystore(files.keystore, ca.issue(server=True, CN="localhost"), ca)
    assert tls.reload_if_changed() and tls.context is not first
    assert tls.reloads == 1
