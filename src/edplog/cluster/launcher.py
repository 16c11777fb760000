"""A development cluster on one machine: one ZooKeeper and N ``edplog broker`` processes.

Broker ``i`` (ids 1..N) listens on ``127.0.0.<i+1>`` and binds its outgoing sockets there too,
so iptables rules between loopback aliases cut exactly the links a test names (ZooKeeper
stays on 127.0.0.1). Each broker keeps everything under ``base_dir/broker-<id>/``: its
``server.properties``, its log directory ``data/`` and its output ``broker.log``; a private
ZooKeeper keeps its data under ``base_dir/zookeeper/``.

Every process is a child started in a session of its own (a Ctrl-C in the terminal reaches
only the launcher, which then stops them in order) and is signalled by its PID alone. A
broker that exits without being asked to is reported with the tail of its log, so that a
failed start or a crash under a fault campaign says why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ..client import Client
from ..errors import EdplogError
from .processes import spawn
from .waiting import wait_until
from .zookeeper_server import ZooKeeperServer, free_port

#: The chroot a private ZooKeeper's cluster lives under.
CHROOT = "/edplog"
#: Lines of a broker's log quoted when it exits unexpectedly.
LOG_TAIL_LINES = 40


class ClusterError(EdplogError):
    """The cluster could not be started, or a broker exited without being asked to."""


def broker_host(broker_id: int) -> str:
    """The loopback alias broker ``broker_id`` binds to (1 -> 127.0.0.2)."""
    if not 1 <= broker_id <= 253:
        raise ValueError(f"broker ids of a local cluster are 1..253, not {broker_id}")
    return f"127.0.0.{broker_id + 1}"


def broker_command(config_path: Path, python_options: Sequence[str] = ()) -> list[str]:
    """The command line of a broker process reading ``config_path``."""
    return [
        sys.executable,
        *python_options,
        "-m",
        "edplog",
        "broker",
        "--config",
        str(config_path),
        "--log-level",
        "INFO",
    ]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` (empty when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class BrokerProcess:
    """One broker: its id, fixed address, directory and (while running) its process."""

    def __init__(self, broker_id: int, base_dir: Path, port: int) -> None:
        self.broker_id = broker_id
        self.host = broker_host(broker_id)
        self.port = port
        self.dir = base_dir / f"broker-{broker_id}"
        self.process: subprocess.Popen[bytes] | None = None
        #: False while the broker is down on purpose (killed, terminated, stopped).
        self.expected_up = False
        self.paused = False
        #: Interpreter options before ``-m edplog`` (perf compare profiles a broker with
        #: ``-m cProfile -o FILE``).
        self.python_options: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.dir / "broker.log"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def write_config(self, properties: Mapping[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        text = "".join(f"{key}={value}\n" for key, value in properties.items())
        self.config_path.write_text(text, encoding="utf-8")

    def spawn(self) -> None:
        with open(self.log_path, "ab") as out:
            out.write(f"---- launcher: starting broker {self.broker_id} ----\n".encode())
            out.flush()
            self.process = spawn(broker_command(self.config_path, self.python_options), out)
        self.expected_up = True
        self.paused = False

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def wait_exit(self, timeout_s: float) -> bool:
        """Wait for the process to exit; True when it has (or never ran)."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def exit_report(self) -> str:
        code = self.process.returncode if self.process is not None else None
        tail = log_tail(self.log_path)
        return (
            f"broker {self.broker_id} ({self.address}) exited with {code}; "
            f"last lines of {self.log_path}:\n{tail}"
        )


class LocalCluster:
    """ZooKeeper (private unless ``zookeeper`` names an external connect string, with its
    chroot) and ``brokers`` broker processes under ``base_dir``.

    ``properties`` are extra broker properties (Kafka's names) written into every broker's
    ``server.properties``; ``session_timeout_ms`` is the brokers' ZooKeeper session timeout.
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        brokers: int = 3,
        *,
        zookeeper: str | None = None,
        properties: Mapping[str, str] | None = None,
        session_timeout_ms: int = 6000,
    ) -> None:
        if brokers < 1:
            raise ValueError("a cluster needs at least one broker")
        self.base_dir = Path(base_dir)
        self.properties = dict(properties or {})
        self.session_timeout_ms = session_timeout_ms
        self._external_zookeeper = zookeeper
        self._zookeeper: ZooKeeperServer | None = None
        if zookeeper is None:
            self._zookeeper = ZooKeeperServer(self.base_dir / "zookeeper", fsync=False)
        self._brokers: dict[int, BrokerProcess] = {}
        for broker_id in range(1, brokers + 1):
            port = free_port(broker_host(broker_id))
            self._brokers[broker_id] = BrokerProcess(broker_id, self.base_dir, port)

    # ---- addresses ------------------------------------------------------------------------

    @property
    def zookeeper(self) -> ZooKeeperServer | None:
        """The private ZooKeeper server, or None when the cluster uses an external one."""
        return self._zookeeper

    @property
    def zookeeper_connect(self) -> str:
        """The brokers' ``zookeeper.connect`` (with its chroot)."""
        if self._external_zookeeper is not None:
            return self._external_zookeeper
        assert self._zookeeper is not None
        return self._zookeeper.connect_string + CHROOT

    @property
    def broker_ids(self) -> list[int]:
        return list(self._brokers)

    @property
    def bootstrap(self) -> str:
        """Every broker's address, comma-separated (``bootstrap.servers``)."""
        return ",".join(b.address for b in self._brokers.values())

    def address(self, broker_id: int) -> str:
        return self._broker(broker_id).address

    def host(self, broker_id: int) -> str:
        return self._broker(broker_id).host

    def pid(self, broker_id: int) -> int | None:
        """The broker's process id while it runs (None when it is down)."""
        broker = self._broker(broker_id)
        return broker.process.pid if broker.running() and broker.process else None

    def log_path(self, broker_id: int) -> Path:
        return self._broker(broker_id).log_path

    def data_dir(self, broker_id: int) -> Path:
        return self._broker(broker_id).data_dir

    def is_running(self, broker_id: int) -> bool:
        return self._broker(broker_id).running()

    def is_paused(self, broker_id: int) -> bool:
        return self._broker(broker_id).paused

    def broker_properties(self, broker_id: int) -> dict[str, str]:
        """The full ``server.properties`` of a broker (the defaults below, then ours)."""
        broker = self._broker(broker_id)
        props = {
            "broker.id": str(broker_id),
            "listeners": f"PLAINTEXT://{broker.address}",
            "log.dirs": str(broker.data_dir),
            "zookeeper.connect": self.zookeeper_connect,
            "zookeeper.session.timeout.ms": str(self.session_timeout_ms),
            "num.partitions": "1",
            "default.replication.factor": str(min(3, len(self._brokers))),
            "offsets.topic.replication.factor": str(min(3, len(self._brokers))),
            "min.insync.replicas": "1",
            "unclean.leader.election.enable": "false",
            "controlled.shutdown.enable": "true",
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(self.properties)
        return props

    def _broker(self, broker_id: int) -> BrokerProcess:
        try:
            return self._brokers[broker_id]
        except KeyError:
            raise ValueError(f"no broker {broker_id} in this cluster") from None

    # ---- lifetime -------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> LocalCluster:
        """Start ZooKeeper, then every broker; return once each broker answers Metadata
        listing all brokers. On failure everything started is stopped again."""
        try:
            if self._zookeeper is not None:
                self._zookeeper.start(timeout_s)
            for broker_id, broker in self._brokers.items():
                broker.write_config(self.broker_properties(broker_id))
                broker.spawn()
            self.wait_ready(timeout_s=timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every broker (SIGCONT first for a paused one), wait, SIGKILL stragglers;
        ZooKeeper last, so that brokers shut down with their sessions still there."""
        live = [b for b in self._brokers.values() if b.running()]
        for broker in live:
            broker.expected_up = False
            if broker.paused:
                broker.signal(signal.SIGCONT)
                broker.paused = False
            broker.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for broker in live:
            if not broker.wait_exit(max(0.0, deadline - time.monotonic())):
                broker.signal(signal.SIGKILL)
                broker.wait_exit(10.0)
        for broker in self._brokers.values():
            broker.expected_up = False
        if self._zookeeper is not None:
            self._zookeeper.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- faults ---------------------------------------------------------------------------

    def kill(self, broker_id: int) -> None:
        """SIGKILL the broker and reap it (an unclean stop: nothing is flushed or handed over)."""
        broker = self._broker(broker_id)
        broker.expected_up = False
        broker.paused = False
        broker.signal(signal.SIGKILL)
        broker.wait_exit(30.0)

    def terminate(self, broker_id: int, timeout_s: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown when enabled) and wait for the exit; SIGKILL when it
        has not exited within ``timeout_s``."""
        broker = self._broker(broker_id)
        broker.expected_up = False
        if broker.paused:
            broker.signal(signal.SIGCONT)
            broker.paused = False
        broker.signal(signal.SIGTERM)
        if not broker.wait_exit(timeout_s):
            broker.signal(signal.SIGKILL)
            broker.wait_exit(10.0)

    def pause(self, broker_id: int) -> None:
        """SIGSTOP: the process keeps its sockets and state but stops answering (and stops
        heartbeating its ZooKeeper session)."""
        broker = self._broker(broker_id)
        if broker.running():
            broker.signal(signal.SIGSTOP)
            broker.paused = True

    def resume(self, broker_id: int) -> None:
        broker = self._broker(broker_id)
        if broker.paused:
            broker.signal(signal.SIGCONT)
            broker.paused = False

    def start_broker(self, broker_id: int, timeout_s: float = 60.0) -> None:
        """Start a broker that is down, on its address and data; wait until it answers."""
        broker = self._broker(broker_id)
        if broker.running():
            raise ClusterError(f"broker {broker_id} is already running")
        broker.write_config(self.broker_properties(broker_id))
        broker.spawn()
        self.wait_ready([broker_id], timeout_s=timeout_s)

    def restart(self, broker_id: int, *, timeout_s: float = 60.0, clean: bool = True) -> None:
        """Stop the broker (SIGTERM when ``clean``, else SIGKILL) if it runs, start it again
        on the same address and data, and wait until it answers Metadata."""
        if self._broker(broker_id).running():
            if clean:
                self.terminate(broker_id)
            else:
                self.kill(broker_id)
        self.start_broker(broker_id, timeout_s=timeout_s)

    # ---- health ---------------------------------------------------------------------------

    def exited(self) -> list[int]:
        """Brokers that should run but whose process has exited."""
        return [
            broker_id
            for broker_id, broker in self._brokers.items()
            if broker.expected_up
            and broker.process is not None
            and broker.process.poll() is not None
        ]

    def exit_report(self, broker_id: int) -> str:
        """How the broker's process ended, with the tail of its log."""
        return self._broker(broker_id).exit_report()

    def check(self) -> None:
        """Raise :class:`ClusterError` (with each one's log tail) when a broker that should
        run has exited."""
        gone = self.exited()
        if gone:
            reports = "\n\n".join(self._brokers[b].exit_report() for b in gone)
            raise ClusterError(reports)

    def live_brokers(self) -> list[int]:
        """Brokers running and not paused (the ones a client can reach)."""
        return [b for b, p in self._brokers.items() if p.running() and not p.paused]

    def metadata_brokers(self, broker_id: int, timeout_s: float = 2.0) -> set[int] | None:
        """The broker ids that ``broker_id`` lists in a Metadata answer (None when it does
        not answer)."""
        try:
            with Client(
                self.address(broker_id), connect_timeout_s=timeout_s, timeout_s=timeout_s
            ) as client:
                meta = client.metadata([])
        except (EdplogError, OSError):
            return None
        return {b.node_id for b in meta.brokers}

    def wait_ready(self, broker_ids: list[int] | None = None, *, timeout_s: float = 60.0) -> None:
        """Wait until each of ``broker_ids`` (default: all) answers Metadata listing every
        broker that should run. Raises :class:`ClusterError` on an exit or the timeout."""
        pending = set(self._brokers) if broker_ids is None else set(broker_ids)

        def ready() -> bool:
            self.check()
            wanted = {b for b, p in self._brokers.items() if p.expected_up}
            for broker_id in sorted(pending):
                listed = self.metadata_brokers(broker_id)
                if listed is not None and wanted <= listed:
                    pending.discard(broker_id)
            return not pending

        if not wait_until(ready, timeout_s, 0.2):
            details = "\n\n".join(
                f"broker {b} ({self.address(b)}) is not ready; last lines of "
                f"{self.log_path(b)}:\n{log_tail(self.log_path(b), 15)}"
                for b in sorted(pending)
            )
            raise ClusterError(f"the cluster was not ready within {timeout_s:.0f} s:\n{details}")
