"""TLS for a listener: Kafka's ``ssl.*`` properties made into a server ``ssl.SSLContext``.

What is read (Kafka's names; a listener's ``listener.name.<name>.ssl.*`` overrides the
broker-wide ``ssl.*``, see :func:`listener_properties`):

- the key and certificate chain: ``ssl.keystore.type`` ``PEM`` or ``PKCS12`` with
  ``ssl.keystore.location`` (a PEM file holding the private key and the chain, or a PKCS #12
  file) and ``ssl.keystore.password`` / ``ssl.key.password``; or inline PEM (KIP-651):
  ``ssl.keystore.key`` and ``ssl.keystore.certificate.chain``;
- the certificate authorities client certificates are checked against: ``ssl.truststore.type``
  ``PEM`` or ``PKCS12`` with ``ssl.truststore.location`` (and ``ssl.truststore.password`` for
  PKCS #12), or inline ``ssl.truststore.certificates``;
- ``ssl.client.auth``: ``required`` (mTLS: no certificate, no connection), ``requested`` (a
  certificate is checked when sent) or ``none`` (the default);
- ``ssl.enabled.protocols`` / ``ssl.protocol``: TLSv1.2 and TLSv1.3 only — an older protocol
  is refused, never silently dropped; ``ssl.cipher.suites`` in Kafka's (IANA) names or
  OpenSSL's, for TLS 1.2 (see :func:`_cipher_list` for TLS 1.3);
- ``ssl.principal.mapping.rules`` (:mod:`.ssl_principal`);
- ``ssl.endpoint.identification.algorithm``: ``https`` (the default) or empty, for this
  broker's own connections to other brokers' listener (:func:`build_client_context`): whether
  it checks that their certificates name the address it connects to. A broker never checks
  a client's host name, nor does Kafka.

Any other ``ssl.*`` property is refused by name (``edplog.broker.properties``): JKS key
stores, ``ssl.provider``, ``ssl.engine.factory.class``, the Java key/trust manager settings.

Python's ``ssl`` loads keys and certificates from files only, so inline PEM and PKCS #12
contents are handed to it through an anonymous memory file (``memfd_create``): key material
never lands on a disk. File-based stores are reloaded without a restart:
:meth:`ServerTls.reload_if_changed` (called on a timer by the broker) builds a new context
when a file's size, mtime or inode changed; new connections get it, established ones keep
the session they have. A store that fails to load (a half-written file) keeps the old context
and is tried again on the next check.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ..errors import InvalidConfigError
from .ssl_principal import PrincipalMapper

log = logging.getLogger("edplog.security")

#: The ``ssl.*`` properties a listener honours (see the module docstring).
SSL_PROPERTIES = frozenset(
    {
        "ssl.keystore.type",
        "ssl.keystore.location",
        "ssl.keystore.password",
        "ssl.key.password",
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.truststore.password",
        "ssl.truststore.certificates",
        "ssl.client.auth",
        "ssl.enabled.protocols",
        "ssl.protocol",
        "ssl.cipher.suites",
        "ssl.principal.mapping.rules",
        "ssl.endpoint.identification.algorithm",
    }
)
#: Properties whose values are secrets (never logged or echoed in an error).
SENSITIVE = frozenset(
    {"ssl.keystore.password", "ssl.key.password", "ssl.truststore.password", "ssl.keystore.key"}
)

_PROTOCOLS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_OLD_PROTOCOLS = ("SSL", "SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
_CLIENT_AUTH = {
    "required": ssl.CERT_REQUIRED,
    "requested": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}
_STORE_TYPES = ("PEM", "PKCS12")
# TLS 1.3's suites, which Python 3.11's ssl cannot restrict (no SSL_CTX_set_ciphersuites).
_TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}) | {
    "TLS_CHACHA20_POLY1305_SHA256"
}
# Kafka (Java) names TLS 1.2 suites by their IANA names; OpenSSL by its own.
_IANA_TO_OPENSSL = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": "ECDHE-RSA-AES256-SHA384",
}
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def listener_properties(props: Mapping[str, str], listener: str) -> dict[str, str]:
    """The ``ssl.*`` settings of one listener: the broker-wide ``ssl.*`` with the listener's
    ``listener.name.<name>.ssl.*`` over them (the name in any case, as Kafka lower-cases it)."""
    out = {k: v for k, v in props.items() if k.startswith("ssl.")}
    prefix = f"listener.name.{listener.lower()}."
    for key, value in props.items():
        if key.lower().startswith(prefix) and key[len(prefix) :].startswith("ssl."):
            out[key[len(prefix) :]] = value
    return out


@dataclass(frozen=True)
class TlsSettings:
    """One listener's TLS settings, checked (files are read by :func:`build_context`)."""

    listener: str
    keystore_type: str = "PEM"
    keystore_location: str | None = None
    keystore_password: str | None = field(default=None, repr=False)
    key_password: str | None = field(default=None, repr=False)
    keystore_key: str | None = field(default=None, repr=False)
    keystore_chain: str | None = None
    truststore_type: str = "PEM"
    truststore_location: str | None = None
    truststore_password: str | None = field(default=None, repr=False)
    truststore_certificates: str | None = None
    client_auth: str = "none"
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    ciphers: str | None = None
    mapper: PrincipalMapper = field(default_factory=lambda: PrincipalMapper.parse(None))
    # ssl.endpoint.identification.algorithm=https (Kafka's default): as a client, this
    # broker checks that the other broker's certificate names the address it connects to.
    check_hostname: bool = True

    @classmethod
    def from_properties(cls, listener: str, props: Mapping[str, str]) -> TlsSettings:
        """Check a listener's ``ssl.*`` settings (from :func:`listener_properties`)."""

        def where(key: str, value: str | None = None) -> str:
            shown = key if value is None else f"{key}={value}"
            return f"{shown} (listener {listener})"

        def get(key: str) -> str | None:
            value = props.get(key)
            return None if value is None or not value.strip() else value.strip()

        keystore_type = (get("ssl.keystore.type") or "").upper()
        location = get("ssl.keystore.location")
        inline_key, inline_chain = get("ssl.keystore.key"), get("ssl.keystore.certificate.chain")
        if location is None and inline_key is None:
            raise InvalidConfigError(
                f"listener {listener} is SSL but has no key: set ssl.keystore.location "
                "(with ssl.keystore.type PEM or PKCS12) or ssl.keystore.key and "
                "ssl.keystore.certificate.chain"
            )
        if location is not None and inline_key is not None:
            raise InvalidConfigError(
                f"{where('ssl.keystore.key')}: set ssl.keystore.location or the inline key, "
                "not both"
            )
        if inline_key is not None or inline_chain is not None:
            if inline_key is None or inline_chain is None:
                raise InvalidConfigError(
                    f"{where('ssl.keystore.key')}: ssl.keystore.key and "
                    "ssl.keystore.certificate.chain go together"
                )
            keystore_type = keystore_type or "PEM"
            if keystore_type != "PEM":
                raise InvalidConfigError(
                    f"{where('ssl.keystore.type', keystore_type)}: an inline key is PEM"
                )
        if not keystore_type:
            raise InvalidConfigError(
                f"{where('ssl.keystore.type')} is not set: Kafka's default, JKS, is Java's "
                "format; use PEM or PKCS12 (keytool -importkeystore converts a JKS store)"
            )
        if keystore_type not in _STORE_TYPES:
            raise InvalidConfigError(
                f"{where('ssl.keystore.type', keystore_type)} is not supported (PEM or PKCS12; "
                "keytool -importkeystore -deststoretype PKCS12 converts a JKS store)"
            )
        if keystore_type == "PEM" and props.get("ssl.keystore.password"):
            raise InvalidConfigError(
                f"{where('ssl.keystore.password')}: a PEM key store has no store password "
                "(as in Kafka); the key's password is ssl.key.password"
            )
        truststore_type = (get("ssl.truststore.type") or "").upper()
        trust_location = get("ssl.truststore.location")
        trust_inline = get("ssl.truststore.certificates")
        if trust_location is not None and trust_inline is not None:
            raise InvalidConfigError(
                f"{where('ssl.truststore.certificates')}: set ssl.truststore.location or the "
                "inline certificates, not both"
            )
        if trust_inline is not None:
            truststore_type = truststore_type or "PEM"
            if truststore_type != "PEM":
                raise InvalidConfigError(
                    f"{where('ssl.truststore.type', truststore_type)}: inline certificates are PEM"
                )
        if truststore_type == "PEM" and props.get("ssl.truststore.password"):
            raise InvalidConfigError(
                f"{where('ssl.truststore.password')}: a PEM trust store has no password "
                "(as in Kafka)"
            )
        if trust_location is not None and not truststore_type:
            raise InvalidConfigError(
                f"{where('ssl.truststore.type')} is not set: Kafka's default, JKS, is Java's "
                "format; use PEM or PKCS12"
            )
        if truststore_type and truststore_type not in _STORE_TYPES:
            raise InvalidConfigError(
                f"{where('ssl.truststore.type', truststore_type)} is not supported (PEM or PKCS12)"
            )
        client_auth = (get("ssl.client.auth") or "none").lower()
        if client_auth not in _CLIENT_AUTH:
            raise InvalidConfigError(
                f"{where('ssl.client.auth', client_auth)}: expected required, requested or none"
            )
        if client_auth != "none" and trust_location is None and trust_inline is None:
            raise InvalidConfigError(
                f"{where('ssl.client.auth', client_auth)} needs the authorities to check "
                "client certificates against: set ssl.truststore.location or "
                "ssl.truststore.certificates"
            )
        minimum, maximum = _protocol_range(listener, props)
        algorithm = (props.get("ssl.endpoint.identification.algorithm") or "").strip().lower()
        if algorithm not in ("", "https"):
            raise InvalidConfigError(
                f"{where('ssl.endpoint.identification.algorithm', algorithm)}: expected "
                "https or empty"
            )
        return cls(
            listener=listener,
            keystore_type=keystore_type,
            keystore_location=location,
            keystore_password=props.get("ssl.keystore.password"),
            key_password=props.get("ssl.key.password"),
            keystore_key=inline_key,
            keystore_chain=inline_chain,
            truststore_type=truststore_type or "PEM",
            truststore_location=trust_location,
            truststore_password=props.get("ssl.truststore.password"),
            truststore_certificates=trust_inline,
            client_auth=client_auth,
            minimum_version=minimum,
            maximum_version=maximum,
            ciphers=_cipher_list(listener, get("ssl.cipher.suites"), maximum),
            mapper=PrincipalMapper.parse(props.get("ssl.principal.mapping.rules")),
            check_hostname=props.get("ssl.endpoint.identification.algorithm", "https")
            .strip()
            .lower()
            == "https",
        )

    @property
    def watched_files(self) -> tuple[str, ...]:
        """The files a reload watches."""
        return tuple(p for p in (self.keystore_location, self.truststore_location) if p)


def _protocol_range(
    listener: str, props: Mapping[str, str]
) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    protocol = (props.get("ssl.protocol") or "TLSv1.3").strip()
    if protocol in _OLD_PROTOCOLS:
        raise InvalidConfigError(
            f"ssl.protocol={protocol} (listener {listener}): protocols older than TLSv1.2 "
            "are refused"
        )
    if protocol not in ("TLS", "TLSv1.2", "TLSv1.3"):
        raise InvalidConfigError(
            f"ssl.protocol={protocol} (listener {listener}): expected TLSv1.3, TLSv1.2 or TLS"
        )
    text = props.get("ssl.enabled.protocols") or "TLSv1.2,TLSv1.3"
    names = [p.strip() for p in text.split(",") if p.strip()]
    old = [p for p in names if p in _OLD_PROTOCOLS]
    if old:
        raise InvalidConfigError(
            f"ssl.enabled.protocols={text} (listener {listener}): {', '.join(old)} refused; "
            "only TLSv1.2 and TLSv1.3 are served"
        )
    unknown = [p for p in names if p not in _PROTOCOLS]
    if unknown or not names:
        raise InvalidConfigError(
            f"ssl.enabled.protocols={text} (listener {listener}): expected TLSv1.2 and/or TLSv1.3"
        )
    versions = sorted(_PROTOCOLS[p] for p in names)
    return versions[0], versions[-1]


def _cipher_list(listener: str, text: str | None, maximum: ssl.TLSVersion) -> str | None:
    """``ssl.cipher.suites`` as an OpenSSL cipher list for TLS 1.2 (None: OpenSSL's defaults).

    TLS 1.3's three suites are always on: Python 3.11's ``ssl`` has no way to restrict them
    (``SSL_CTX_set_ciphersuites`` is not exposed). A list that names some TLS 1.3 suites but
    not all while TLSv1.3 is enabled is therefore refused rather than half-applied."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    tls13 = [n for n in names if n in _TLS13_SUITES]
    if tls13 and maximum is ssl.TLSVersion.TLSv1_3 and set(tls13) != _TLS13_SUITES:
        raise InvalidConfigError(
            f"ssl.cipher.suites (listener {listener}): TLS 1.3 suites cannot be restricted "
            f"(all of {', '.join(sorted(_TLS13_SUITES))} stay on); list all three, or none, "
            "or leave TLSv1.3 out of ssl.enabled.protocols"
        )
    openssl = [_IANA_TO_OPENSSL.get(n, n) for n in names if n not in _TLS13_SUITES]
    if not openssl:
        return None
    check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    known = {c["name"] for c in check.get_ciphers()}
    check.set_ciphers("ALL")
    known |= {c["name"] for c in check.get_ciphers()}
    bad = [n for n in names if n not in _TLS13_SUITES and _IANA_TO_OPENSSL.get(n, n) not in known]
    if bad:
        raise InvalidConfigError(
            f"ssl.cipher.suites (listener {listener}): unknown or unavailable suites "
            f"{', '.join(bad)}"
        )
    return ":".join(openssl)


def normalize_pem(text: str) -> str:
    """PEM blocks as OpenSSL reads them. An inline PEM value in ``server.properties`` (continued
    lines joined, Kafka's KIP-651 style) loses its line breaks; the base64 is re-wrapped."""
    blocks = []
    for kind, body in _PEM_BLOCK.findall(text):
        lines = body.strip().splitlines()
        headers = [ln.strip() for ln in lines if ":" in ln]  # Proc-Type / DEK-Info
        data = "".join("".join(ln.split()) for ln in lines if ":" not in ln)
        wrapped = [data[i : i + 64] for i in range(0, len(data), 64)]
        extra = [*headers, ""] if headers else []
        blocks.append(
            "\n".join([f"-----BEGIN {kind}-----", *extra, *wrapped, f"-----END {kind}-----"])
        )
    if not blocks:
        raise ValueError("no PEM block found")
    return "\n".join(blocks) + "\n"


@contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that exists only in memory (Linux ``memfd_create``)."""
    fd = os.memfd_create("edplog-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InvalidConfigError(f"{what}={path}: {exc.strerror}") from None


def _pkcs12_as_pem(data: bytes, password: str | None, what: str) -> bytes:
    """A PKCS #12 key store's key and chain as one unencrypted PEM (for a memory file)."""
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None
        )
    except ValueError as exc:
        raise InvalidConfigError(f"{what}: cannot open the PKCS12 store: {exc}") from None
    if key is None or cert is None:
        raise InvalidConfigError(f"{what}: the PKCS12 store holds no private key and certificate")
    out = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for c in (cert, *(extra or ())):
        out += c.public_bytes(serialization.Encoding.PEM)
    return out


def _truststore_pem(settings: TlsSettings) -> str | None:
    if settings.truststore_certificates is not None:
        return normalize_pem(settings.truststore_certificates)
    if settings.truststore_location is None:
        return None
    data = _read(settings.truststore_location, "ssl.truststore.location")
    if settings.truststore_type == "PEM":
        return data.decode("ascii", "replace")
    password = settings.truststore_password
    try:
        store = pkcs12.load_pkcs12(data, password.encode() if password else None)
    except ValueError as exc:
        raise InvalidConfigError(
            f"ssl.truststore.location={settings.truststore_location}: cannot open the PKCS12 "
            f"store: {exc}"
        ) from None
    certs = [c.certificate for c in store.additional_certs]
    if store.cert is not None:
        certs.append(store.cert.certificate)
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def build_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server context from a listener's settings; InvalidConfigError names what failed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(ctx, settings)
    ctx.verify_mode = _CLIENT_AUTH[settings.client_auth]
    return ctx


def build_client_context(settings: TlsSettings) -> ssl.SSLContext:
    """The context this broker connects to other brokers' ``settings.listener`` with (the
    inter-broker listener): it trusts the listener's trust store (the system's authorities
    when it has none), presents its own key and certificate (for a listener that requires
    client certificates) and, with ``ssl.endpoint.identification.algorithm=https``, checks
    that the other broker's certificate names the address it connects to."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if _truststore_pem(settings) is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    _configure(ctx, settings)
    ctx.check_hostname = settings.check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _configure(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    """Versions, ciphers, the key and certificate chain, and the trust store."""
    ctx.minimum_version = settings.minimum_version
    ctx.maximum_version = settings.maximum_version
    # No renegotiation (TLS 1.2): a client could otherwise make the broker's writes wait
    # for reads; no compression (CRIME).
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    if settings.ciphers is not None:
        ctx.set_ciphers(settings.ciphers)
    where = "ssl.keystore.location" if settings.keystore_location else "ssl.keystore.key"
    try:
        if settings.keystore_location is not None and settings.keystore_type == "PEM":
            _read(settings.keystore_location, where)  # a clear error for a missing file
            ctx.load_cert_chain(settings.keystore_location, password=settings.key_password or None)
        else:
            if settings.keystore_location is not None:  # PKCS12
                pem = _pkcs12_as_pem(
                    _read(settings.keystore_location, where),
                    settings.keystore_password,
                    f"{where}={settings.keystore_location}",
                )
                password = None
            else:
                assert settings.keystore_key is not None and settings.keystore_chain is not None
                pem = (
                    normalize_pem(settings.keystore_key) + normalize_pem(settings.keystore_chain)
                ).encode()
                password = settings.key_password or None
            with _memory_file(pem) as path:
                ctx.load_cert_chain(path, password=password)
    except ssl.SSLError as exc:
        raise InvalidConfigError(
            f"{where} (listener {settings.listener}): cannot load the key and certificate "
            f"chain ({exc.reason or exc}); is ssl.key.password right?"
        ) from None
    except ValueError as exc:
        raise InvalidConfigError(f"{where} (listener {settings.listener}): {exc}") from None
    trusted = _truststore_pem(settings)
    if trusted is not None:
        try:
            ctx.load_verify_locations(cadata=trusted)
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidConfigError(
                f"ssl.truststore (listener {settings.listener}): cannot load the "
                f"certificates ({exc})"
            ) from None


def _fingerprint(paths: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((-1, -1, -1))
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class ServerTls:
    """A listener's current server context, rebuilt when its files change."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._seen = _fingerprint(settings.watched_files)
        self.context = build_context(settings)
        self.reloads = 0

    @property
    def mapper(self) -> PrincipalMapper:
        return self.settings.mapper

    def reload_if_changed(self) -> bool:
        """Rebuild the context if a watched file changed (blocking: it reads the files).
        Returns whether a new context is in use."""
        seen = _fingerprint(self.settings.watched_files)
        if seen == self._seen:
            return False
        try:
            context = build_context(self.settings)
        except InvalidConfigError as exc:
            log.warning(
                "TLS reload for listener %s failed, keeping the old one: %s",
                self.settings.listener,
                exc,
            )
            return False  # _seen unchanged: tried again on the next check
        self._seen = seen
        self.context = context
        self.reloads += 1
        log.info("TLS listener %s: key store or trust store reloaded", self.settings.listener)
        return True
