"""Test certificates made with ``cryptography``: a CA, server certificates for 127.0.0.1 and
client certificates, written as the PEM files Kafka's ``ssl.keystore.type=PEM`` reads (the
private key and the certificate chain in one file) and as PKCS #12."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(**attrs: str) -> x509.Name:
    oids = {
        "CN": NameOID.COMMON_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "C": NameOID.COUNTRY_NAME,
    }
    # Most general first in the certificate, so RFC 2253 reads CN=...,OU=...,O=...,C=...
    order = ["C", "O", "OU", "CN"]
    return x509.Name([x509.NameAttribute(oids[k], attrs[k]) for k in order if k in attrs])


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def key_pem(self, password: str | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


class CA:
    """A certificate authority that issues server and client certificates."""

    def __init__(self, name: str = "edplog test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(CN=name, O="edplog tests")
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        *,
        server: bool,
        expired: bool = False,
        addresses: tuple[str, ...] = ("127.0.0.1",),
        client_too: bool = False,
        **subject: str,
    ) -> Issued:
        """A certificate for ``subject``: a server's for ``addresses`` (and localhost), also
        good as a client certificate with ``client_too`` (a broker's, for other brokers), or
        a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:  # valid for a day that ended a day ago
            now -= datetime.timedelta(days=2)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(**subject))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            names: list[x509.GeneralName] = [
                x509.IPAddress(ipaddress.ip_address(a)) for a in addresses
            ]
            usages = [ExtendedKeyUsageOID.SERVER_AUTH]
            if client_too:
                usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
            builder = builder.add_extension(
                x509.SubjectAlternativeName([*names, x509.DNSName("localhost")]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage(usages), False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
            )
        return Issued(key, builder.sign(self.key, hashes.SHA256()))


@dataclass
class Files:
    """Paths of one run's files."""

    ca: Path  # the CA certificate (a PEM trust store)
    keystore: Path  # the server's key + chain (PEM key store)
    client_key: Path
    client_cert: Path


def write_pem_keystore(path: Path, issued: Issued, ca: CA, password: str | None = None) -> Path:
    path.write_bytes(issued.key_pem(password) + issued.cert_pem() + ca.cert_pem())
    return path


def write_pkcs12(path: Path, issued: Issued, ca: CA, password: str) -> Path:
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"edplog",
            issued.key,
            issued.cert,
            [ca.cert],
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    return path


def make_files(directory: Path, ca: CA, client_cn: str = "alice") -> Files:
    """A trust store, a server key store for 127.0.0.1 and a client key pair in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(ca.cert_pem())
    server = ca.issue(server=True, CN="localhost", O="edplog tests")
    client = ca.issue(server=False, CN=client_cn, OU="eng", O="Acme", C="GB")
    (directory / "client.key").write_bytes(client.key_pem())
    (directory / "client.pem").write_bytes(client.cert_pem() + ca.cert_pem())
    return Files(
        ca=directory / "ca.pem",
        keystore=write_pem_keystore(directory / "server.pem", server, ca),
        client_key=directory / "client.key",
        client_cert=directory / "client.pem",
    )
