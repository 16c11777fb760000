"""A private ZooKeeper for development and tests: Debian's ``zookeeper`` package, started
standalone on loopback with its own config and data directory (never ``/etc/zookeeper``).

``edplog cluster up`` and the ``kafka_cluster`` pytest fixture use it; production clusters
point ``zookeeper.connect`` at the ensemble they already run. The server is a child process
stopped by its PID; readiness is ZooKeeper's ``ruok`` four-letter command answering ``imok``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdplogError
from .processes import spawn
from .waiting import wait_until

#: Where Debian's package puts the server and its logging bridge; the server jar's manifest
#: lists the rest of its class path.
ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
SLF4J_JARS = ("/usr/share/java/slf4j-nop.jar", "/usr/share/java/slf4j-simple.jar")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


class ZooKeeperUnavailable(EdplogError):
    """ZooKeeper (or the Java it runs on) is not installed here."""


def classpath() -> str | None:
    """The class path of the installed ZooKeeper server, or None when it is not installed."""
    if not os.path.exists(ZOOKEEPER_JAR):
        return None
    logging_jar = next((jar for jar in SLF4J_JARS if os.path.exists(jar)), None)
    return ZOOKEEPER_JAR + (f":{logging_jar}" if logging_jar else "")


def available() -> bool:
    """Whether a ZooKeeper server can be started here (the package and a ``java``)."""
    return classpath() is not None and _java() is not None


def _java() -> str | None:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "java")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ruok(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when the server at (host, port) answers ``ruok`` with ``imok``."""
    try:
        with socket.create_connection((host, port), timeout_s) as sock:
            sock.sendall(b"ruok")
            return sock.recv(4) == b"imok"
    except OSError:
        return False


@dataclass(frozen=True)
class ServerTls:
    """TLS for a ZooKeeper server: its PEM key store (key and certificate chain in one file)
    and the PEM trust store client certificates are checked against. Clients must present a
    certificate (mutual TLS); ZooKeeper's X.509 provider then knows each client by its
    certificate's subject, the identity znode ACLs name."""

    keystore: str
    truststore: str


# The Netty jars ZooKeeper's TLS port needs beside the ones its own jar lists.
_NETTY_JARS = tuple(
    f"/usr/share/java/netty-{name}.jar"
    for name in ("codec", "resolver", "transport-native-unix-common")
)


class ZooKeeperServer:
    """One standalone ZooKeeper on ``host:port`` (a free port when 0) with its data under
    ``data_dir``. Sessions may last between 1 s and ``max_session_timeout_ms``; ``fsync=False``
    skips the fsync of its transaction log (tests on a shared disk: a SIGKILLed ZooKeeper then
    keeps what the page cache has, which is all a test needs). With ``tls`` it also serves TLS
    clients on ``secure_port`` (see :class:`ServerTls`)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tick_ms: int = 500,
        max_session_timeout_ms: int = 60_000,
        fsync: bool = True,
        tls: ServerTls | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.tls = tls
        self.secure_port = free_port(host) if tls is not None else None
        self.host = host
        self.port = port or free_port(host)
        self.tick_ms = tick_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secure_connect_string(self) -> str:
        """The TLS port's connect string (with ``tls``)."""
        if self.secure_port is None:
            raise ValueError("this ZooKeeper has no TLS port")
        return f"{self.host}:{self.secure_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "zookeeper.log"

    def _write_config(self) -> Path:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={self.tick_ms}",
            f"dataDir={self.data_dir / 'data'}",
            f"clientPort={self.port}",
            f"clientPortAddress={self.host}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,mntr",
            "minSessionTimeout=1000",
            f"maxSessionTimeout={self.max_session_timeout_ms}",
            "maxClientCnxns=0",
        ]
        if not self.fsync:
            lines.append("forceSync=no")
        if self.tls is not None:
            lines += [
                f"secureClientPort={self.secure_port}",
                f"secureClientPortAddress={self.host}",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={self.tls.keystore}",
                "ssl.keyStore.type=PEM",
                f"ssl.trustStore.location={self.tls.truststore}",
                "ssl.trustStore.type=PEM",
                "ssl.clientAuth=need",
                "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider",
            ]
        path = self.data_dir / "zoo.cfg"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout_s: float = 60.0) -> str:
        """Start the server and wait until it answers; returns the connect string."""
        cp, java = classpath(), _java()
        if cp is None or java is None:
            raise ZooKeeperUnavailable(
                "ZooKeeper is not installed: apt-get install -y zookeeper (it needs Java)"
            )
        config = self._write_config()
        if self.tls is not None:
            cp += "".join(f":{jar}" for jar in _NETTY_JARS if os.path.exists(jar))
        with open(self.log_path, "ab") as out:
            self.process = spawn(
                [
                    java,
                    "-Xms32m",
                    "-Xmx256m",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-cp",
                    cp,
                    MAIN_CLASS,
                    str(config),
                ],
                out,
            )
        process = self.process

        def answering() -> bool:
            if ruok(self.host, self.port):
                return True
            if process.poll() is not None:
                raise ZooKeeperUnavailable(
                    f"ZooKeeper exited with {process.returncode}: see {self.log_path}"
                )
            return False

        if not wait_until(answering, timeout_s, 0.05):
            self.kill()
            raise ZooKeeperUnavailable(
                f"ZooKeeper did not answer within {timeout_s:.0f} s: see {self.log_path}"
            )
        return self.connect_string

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()

    def restart(self, timeout_s: float = 60.0) -> str:
        """Stop (SIGKILL) and start again on the same port and data directory."""
        self.kill()
        return self.start(timeout_s)

    def __enter__(self) -> ZooKeeperServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
