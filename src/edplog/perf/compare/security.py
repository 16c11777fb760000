"""What security costs, on one broker, in the same run: TLS against plaintext, and logins.

One broker child process (``python -m edplog broker --config``) has three listeners over the
same logs: ``PLAINTEXT``, ``SSL`` (TLS 1.2+, a self-signed ECDSA certificate made for the run)
and ``SASL_PLAINTEXT`` with SCRAM-SHA-512. Figures, at 1 KiB:

- produce with confluent-kafka over PLAINTEXT and over SSL: the broker settings and client
  batching of the broker family (lz4, linger.ms 5, 1 MiB batches, acks=1);
- raw Fetch v4 over PLAINTEXT (the broker serves it with ``sendfile``) and over SSL (the
  broker reads the file regions into a staging buffer and OpenSSL encrypts them), with the
  broker family's client given a plain socket or an ``ssl.SSLSocket``;
- fetch with kernel TLS, where the kernel and Python offer it (``tcp_available_ulp`` lists
  ``tls`` and ``ssl`` has ``OP_ENABLE_KTLS``); otherwise the figure says what is missing;
- SCRAM-SHA-512 logins per second: a new connection, SaslHandshake and the two
  SaslAuthenticate steps (``scramp`` on the client side), against a credential of 8,192
  iterations set through AlterUserScramCredentials;
- produce with ACLs on: a second broker, the same but with ``authorizer.class.name`` and
  1,004 ACLs (four allowing the producer's principal its topics, groups, transactional ids
  and idempotent writes, 1,000 for other users on other topics), against the first
  broker's PLAINTEXT produce.

Each figure's runs follow one another (``Context.measure``), the plaintext side first; the
other-load column says how busy the machine was meanwhile.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import broker
from .model import Budget, Context, Sample, Spec
from .procs import Server, ServerError, free_port

SIZE = 1024
SCRAM_USER = "perf"
SCRAM_PASSWORD = "perf-secret"
SCRAM_ITERATIONS = 8192
OTHER_ACLS = 1000
WRITE, IDEMPOTENT = 4, 12  # Kafka's AclOperation codes


def _specs() -> dict[str, Spec]:
    client = "confluent-kafka (librdkafka)"
    batching = "lz4, linger.ms 5, batch.size 1 MiB"
    raw = "edplog.client, no decode"
    fetching = "8 MiB per partition, 1 in flight"
    return {
        "produce_plain": Spec(
            "security.produce.plaintext", "security", "produce, PLAINTEXT", SIZE, batching,
            "acks=1, page cache", client,
        ),
        "produce_tls": Spec(
            "security.produce.tls", "security", "produce, SSL", SIZE, batching,
            "acks=1, page cache", client,
        ),
        "fetch_plain": Spec(
            "security.fetch.plaintext", "security", "raw Fetch v4, PLAINTEXT (sendfile)", SIZE,
            fetching, "page cache", raw,
        ),
        "fetch_tls": Spec(
            "security.fetch.tls", "security", "raw Fetch v4, SSL (reads + OpenSSL)", SIZE,
            fetching, "page cache", raw,
        ),
        "fetch_ktls": Spec(
            "security.fetch.ktls", "security", "raw Fetch v4, SSL with kernel TLS", SIZE,
            fetching, "page cache", raw,
        ),
        "produce_acls": Spec(
            "security.produce.acls", "security", "produce, PLAINTEXT, ACLs on", SIZE, batching,
            "acks=1, page cache", client,
        ),
        "scram": Spec(
            "security.scram_logins", "security", "SCRAM-SHA-512 logins", SIZE,
            f"new connection each, {SCRAM_ITERATIONS} iterations", "-", "edplog.client + scramp",
        ),
    }  # fmt: skip


def ktls_missing() -> str | None:
    """Why kernel TLS cannot be used here, or None when the kernel and Python offer it."""
    try:
        ulps = Path("/proc/sys/net/ipv4/tcp_available_ulp").read_text().split()
    except OSError:
        ulps = []
    reasons = []
    if "tls" not in ulps:
        reasons.append(
            f"the kernel offers no tls upper-layer protocol (tcp_available_ulp: "
            f"{' '.join(ulps) or 'unreadable'})"
        )
    if not hasattr(ssl, "OP_ENABLE_KTLS"):
        reasons.append(f"Python {sys.version.split()[0]}'s ssl has no OP_ENABLE_KTLS")
    return "; ".join(reasons) or None


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (key store PEM, trust store PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edplog-perf")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    keystore = directory / "perf-server.pem"
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keystore.write_bytes(private + cert_pem)
    truststore = directory / "perf-ca.pem"
    truststore.write_bytes(cert_pem)
    return keystore, truststore


def scram_logins(host: str, port: int, budget: Budget) -> Sample:
    """SCRAM-SHA-512 logins, each on a new connection, until the time cap (at most 10,000)."""
    from scramp import ScramClient

    from ...client import Client

    logins = 0
    start = time.perf_counter()
    deadline = start + budget.seconds
    while logins < 10_000 and time.perf_counter() < deadline:
        with Client(f"{host}:{port}", client_id="edplog-perf", timeout_s=30) as client:
            shake = client.call(17, 1, {"mechanism": "SCRAM-SHA-512"})
            if shake["error_code"]:
                raise RuntimeError(f"SaslHandshake refused: {shake}")
            scram = ScramClient(["SCRAM-SHA-512"], SCRAM_USER, SCRAM_PASSWORD)
            first = client.call(36, 2, {"auth_bytes": scram.get_client_first().encode()})
            if first["error_code"]:
                raise RuntimeError(f"SCRAM login refused: {first['error_message']}")
            scram.set_server_first(bytes(first["auth_bytes"]).decode())
            final = client.call(36, 2, {"auth_bytes": scram.get_client_final().encode()})
            if final["error_code"]:
                raise RuntimeError(f"SCRAM login refused: {final['error_message']}")
            scram.set_server_final(bytes(final["auth_bytes"]).decode())
        logins += 1
    return Sample(logins, 0, time.perf_counter() - start)


def _set_credential(bootstrap: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(SCRAM_USER, info, SCRAM_PASSWORD.encode())
    for fut in admin.alter_user_scram_credentials([upsert]).values():
        fut.result(30)


def _start(ctx: Context, work: Path, name: str, properties: str) -> Server:
    """A broker child process with these properties; its PID joins the CPU probe."""
    config = work / f"{name}.properties"
    config.write_text(properties)
    argv = [sys.executable, "-m", "edplog", "broker", "--data-dir", str(work / name)]
    server = Server(
        [*argv, "--config", str(config)], "edplog broker", ready_pattern=broker.READY, timeout_s=30
    )
    server.__enter__()
    ctx.server_pids.append(server.pid)
    return server


def _stop(ctx: Context, server: Server) -> None:
    if server.pid in ctx.server_pids:
        ctx.server_pids.remove(server.pid)
    server.stop()


def write_acls(data_dir: Path, principal: str, prefix: str) -> None:
    """acls.json for the broker with ACLs on (read when it starts): ``principal`` may do
    everything on topics, groups and transactional ids named ``prefix...`` and write
    idempotently; OTHER_ACLS more for other users on other topics."""
    import json

    from ...security.acl import OPERATION_ALL, AclBinding, PatternType, Permission, ResourceType

    def allow(kind: Any, name: str, pattern: Any, who: str, op: int) -> AclBinding:
        return AclBinding(kind, name, pattern, who, "*", op, Permission.ALLOW)

    acls = [
        allow(ResourceType.TOPIC, prefix, PatternType.PREFIXED, principal, OPERATION_ALL),
        allow(ResourceType.GROUP, prefix, PatternType.PREFIXED, principal, OPERATION_ALL),
        allow(
            ResourceType.TRANSACTIONAL_ID, prefix, PatternType.PREFIXED, principal, OPERATION_ALL
        ),
        allow(ResourceType.CLUSTER, "kafka-cluster", PatternType.LITERAL, principal, IDEMPOTENT),
    ]
    acls += [
        allow(ResourceType.TOPIC, f"team-{i}", PatternType.LITERAL, f"User:u{i}", WRITE)
        for i in range(OTHER_ACLS)
    ]
    data_dir.mkdir(parents=True, exist_ok=True)
    document = {"version": 0, "acls": [a.to_json() for a in acls]}
    (data_dir / "acls.json").write_text(json.dumps(document))


def run(ctx: Context) -> None:
    """Start the brokers; every figure; stop them by PID."""
    specs = _specs()
    try:
        import confluent_kafka  # noqa: F401
        import scramp  # noqa: F401
    except ImportError as exc:
        for spec in specs.values():
            ctx.skip(spec, f"{exc.name} is not installed")
        return
    work = Path(ctx.workdir) / "security"
    work.mkdir(parents=True, exist_ok=True)
    keystore, truststore = make_certificate(work)
    plain, tls_port, sasl_port = free_port(), free_port(), free_port()
    try:
        server = _start(
            ctx,
            work,
            "open",
            f"listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls_port},"
            f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}\n"
            "ssl.keystore.type=PEM\n"
            f"ssl.keystore.location={keystore}\n"
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512\n"
            "connection.failed.authentication.delay.ms=0\n",
        )
    except (ServerError, OSError) as exc:
        for spec in specs.values():
            ctx.skip(spec, f"the edplog broker did not start: {exc}")
        return
    try:
        # The ACL broker's produce runs right after the plaintext one it is divided by.
        acls = lambda: _acl_figure(ctx, specs["produce_acls"], work)  # noqa: E731
        _figures(ctx, specs, plain, tls_port, sasl_port, truststore, acls)
    finally:
        _stop(ctx, server)


def _acl_figure(ctx: Context, spec: Spec, work: Path) -> None:
    """Produce to the second broker, with ACLs on; the topic is created through them."""
    port = free_port()
    write_acls(work / "acls", "User:ANONYMOUS", "perf-")
    try:
        server = _start(
            ctx,
            work,
            "acls",
            f"listeners=PLAINTEXT://127.0.0.1:{port}\n"
            "authorizer.class.name=kafka.security.authorizer.AclAuthorizer\n"
            "allow.everyone.if.no.acl.found=false\n",
        )
    except (ServerError, OSError) as exc:
        ctx.skip(spec, f"the edplog broker with ACLs did not start: {exc}")
        return
    try:
        bootstrap = f"127.0.0.1:{port}"
        try:
            broker.create_topic(bootstrap, "not-allowed")
        except RuntimeError:
            pass  # refused, as its ACLs say
        else:
            ctx.skip(spec, "the broker with ACLs created a topic no ACL allows: ACLs not in force")
            return
        broker.create_topic(bootstrap, "perf-security")
        ctx.measure(spec, lambda b: broker.produce(bootstrap, "perf-security", "1", SIZE, b))
    finally:
        _stop(ctx, server)


def _figures(
    ctx: Context,
    specs: dict[str, Spec],
    plain: int,
    tls_port: int,
    sasl_port: int,
    truststore: Path,
    acls: Callable[[], None],
) -> None:
    host = "127.0.0.1"
    bootstrap = f"{host}:{plain}"
    tls_client: dict[str, Any] = {"security.protocol": "SSL", "ssl.ca.location": str(truststore)}
    context = ssl.create_default_context(cafile=str(truststore))
    topic = "perf-security"
    broker.create_topic(bootstrap, topic)
    ctx.measure(specs["produce_plain"], lambda b: broker.produce(bootstrap, topic, "1", SIZE, b))
    acls()
    over_tls = f"{host}:{tls_port}"
    ctx.measure(
        specs["produce_tls"],
        lambda b: broker.produce(over_tls, topic, "1", SIZE, b, extra=tls_client),
    )
    with socket.create_connection((host, tls_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as probe:
            session = f"{probe.version()} {(probe.cipher() or ('?',))[0]}"
    ctx.notes.append(f"security family: TLS sessions are {session}, {ssl.OPENSSL_VERSION}")
    ctx.measure(specs["fetch_plain"], lambda b: broker.raw_fetch(host, plain, topic, SIZE, b))
    ctx.measure(
        specs["fetch_tls"],
        lambda b: broker.raw_fetch(host, tls_port, topic, SIZE, b, tls=context),
    )
    missing = ktls_missing()
    ctx.skip(
        specs["fetch_ktls"],
        f"kernel TLS is not available: {missing}"
        if missing
        else "kernel TLS is offered here, but the broker does not hand keys to the kernel yet",
    )
    try:
        _set_credential(bootstrap)
    except Exception as exc:  # noqa: BLE001 - the figure says why
        ctx.skip(specs["scram"], f"could not set the SCRAM credential: {exc}")
        return
    ctx.measure(specs["scram"], lambda b: scram_logins(host, sasl_port, b))
