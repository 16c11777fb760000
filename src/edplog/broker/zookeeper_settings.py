"""A clustered broker's connection to ZooKeeper: TLS (Kafka's KIP-515 names) and znode ACLs.

- ``zookeeper.ssl.client.enable=true`` connects over TLS (to ZooKeeper's ``secureClientPort``)
  with ``zookeeper.ssl.keystore.*`` (PEM or PKCS12: the broker's certificate is its identity
  to ZooKeeper, whose X.509 provider names it by the subject) and ``zookeeper.ssl.truststore.*``
  (the authorities ZooKeeper's certificate is checked against), ``zookeeper.ssl.protocol`` /
  ``zookeeper.ssl.enabled.protocols`` (TLS 1.2+), ``zookeeper.ssl.cipher.suites`` and
  ``zookeeper.ssl.endpoint.identification.enable`` (default true: the certificate must name
  the ZooKeeper host). ``zookeeper.clientCnxnSocket`` may name Kafka's Netty socket, which is
  what a TLS connection needs in Kafka; certificate revocation (``zookeeper.ssl.crl.enable``,
  ``zookeeper.ssl.ocsp.enable``) is not checked, so turning it on is refused.
- ``zookeeper.set.acl=true`` creates every znode writable only by the identity that created it
  (all brokers of a cluster share one ZooKeeper identity: one certificate subject) and
  readable by everyone, except the SCRAM credentials, which no one else may read.
"""

from __future__ import annotations

import ssl

from ..errors import InvalidConfigError
from ..security.tls import TlsSettings, build_client_context

NETTY_SOCKET = "org.apache.zookeeper.ClientCnxnSocketNetty"
#: zookeeper.ssl.<x> -> the listener TLS setting ssl.<x> it means.
_SAME = (
    "keystore.location",
    "keystore.type",
    "truststore.location",
    "truststore.password",
    "truststore.type",
    "protocol",
    "enabled.protocols",
    "cipher.suites",
)
#: Every ZooKeeper connection property a broker reads.
PROPERTIES = frozenset(
    {
        "zookeeper.ssl.client.enable",
        "zookeeper.clientCnxnSocket",
        "zookeeper.set.acl",
        "zookeeper.ssl.keystore.password",
        "zookeeper.ssl.endpoint.identification.enable",
        "zookeeper.ssl.crl.enable",
        "zookeeper.ssl.ocsp.enable",
        *(f"zookeeper.ssl.{name}" for name in _SAME),
    }
)


def _flag(props: dict[str, str], key: str, default: bool) -> bool:
    value = props.get(key, "true" if default else "false").strip().lower()
    if value not in ("true", "false"):
        raise InvalidConfigError(f"{key}={value!r}: expected true or false")
    return value == "true"


def zookeeper_security(props: dict[str, str]) -> tuple[TlsSettings | None, bool]:
    """(the TLS settings of the connection to ZooKeeper or None, zookeeper.set.acl)."""
    for key in ("zookeeper.ssl.crl.enable", "zookeeper.ssl.ocsp.enable"):
        if _flag(props, key, False):
            raise InvalidConfigError(
                f"{key}=true: certificate revocation is not checked by edplog's ZooKeeper "
                "client, so it is refused rather than ignored"
            )
    socket_class = props.get("zookeeper.clientCnxnSocket", NETTY_SOCKET).strip()
    if socket_class != NETTY_SOCKET:
        raise InvalidConfigError(
            f"zookeeper.clientCnxnSocket={socket_class}: only {NETTY_SOCKET} (or nothing) "
            "means something here"
        )
    set_acl = _flag(props, "zookeeper.set.acl", False)
    if not _flag(props, "zookeeper.ssl.client.enable", False):
        stray = sorted(
            k
            for k in props
            if k.startswith("zookeeper.ssl.") and k != "zookeeper.ssl.client.enable"
        )
        if stray:
            raise InvalidConfigError(
                f"{', '.join(stray)}: set zookeeper.ssl.client.enable=true for TLS to ZooKeeper "
                "(nothing would read these settings otherwise)"
            )
        if set_acl:
            raise InvalidConfigError(
                "zookeeper.set.acl=true needs zookeeper.ssl.client.enable=true: the ACLs name "
                "the identity ZooKeeper knows the broker by, its TLS client certificate"
            )
        return None, False
    if not props.get("zookeeper.ssl.keystore.location", "").strip():
        raise InvalidConfigError(
            "zookeeper.ssl.client.enable=true needs zookeeper.ssl.keystore.location: the "
            "broker's certificate is its identity to ZooKeeper"
        )
    mapped = {
        f"ssl.{name}": props[f"zookeeper.ssl.{name}"]
        for name in _SAME
        if f"zookeeper.ssl.{name}" in props
    }
    password = props.get("zookeeper.ssl.keystore.password")
    if password:
        # ZooKeeper's PEM key store takes its key's password there.
        pem = mapped.get("ssl.keystore.type", "PEM").strip().upper() == "PEM"
        mapped["ssl.key.password" if pem else "ssl.keystore.password"] = password
    check = _flag(props, "zookeeper.ssl.endpoint.identification.enable", True)
    mapped["ssl.endpoint.identification.algorithm"] = "https" if check else ""
    return TlsSettings.from_properties("zookeeper", mapped), set_acl


def zookeeper_context(settings: TlsSettings | None) -> ssl.SSLContext | None:
    """The client context for ZooKeeper (reads the stores: off the event loop)."""
    return None if settings is None else build_client_context(settings)
