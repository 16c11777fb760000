"""Starting, watching and stopping the servers a comparison talks to, and describing the machine.

Every server binds 127.0.0.1 only, keeps its data in a temporary directory of the run, and is
stopped by the PID we started, never by name: other people's processes on a shared machine are
not ours to end. ``Server`` is a context manager so Ctrl-C and failures stop it as well.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType

from ...cluster.processes import spawn

PEER_PACKAGES = {
    "redis-server": "redis-server",
    "redis-benchmark": "redis-tools",
    "nats-server": "nats-server",
}


class ServerError(RuntimeError):
    """A server did not come up; the message carries the tail of its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until 127.0.0.1:port accepts a connection (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"nothing listening on 127.0.0.1:{port} after {timeout_s:.0f} s")


class Server:
    """A child process whose output is kept (the last lines) and which is stopped by PID.

    ``ready`` is either a port to wait for, or a regular expression that the server prints
    once it listens (its first group, if any, becomes ``match``).
    """

    def __init__(
        self,
        argv: Sequence[str],
        name: str,
        ready_port: int | None = None,
        ready_pattern: str | None = None,
        timeout_s: float = 20.0,
        cwd: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self.ready_port = ready_port
        self.ready_pattern = re.compile(ready_pattern) if ready_pattern else None
        self.timeout_s = timeout_s
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.match: re.Match[str] | None = None
        self.lines: deque[str] = deque(maxlen=40)
        self._matched = threading.Event()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _pump(self) -> None:
        """Read the child's output (so its pipe never fills) and look for the ready line."""
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            if self.ready_pattern and not self._matched.is_set():
                m = self.ready_pattern.search(line)
                if m:
                    self.match = m
                    self._matched.set()

    def tail(self, n: int = 8) -> str:
        return " | ".join(list(self.lines)[-n:])

    def __enter__(self) -> Server:
        self.proc = spawn(self.argv, subprocess.PIPE, cwd=self.cwd)
        threading.Thread(target=self._pump, name=f"{self.name}-output", daemon=True).start()
        try:
            if self.ready_pattern is not None:
                deadline = time.monotonic() + self.timeout_s
                while not self._matched.wait(0.05):
                    if self.proc.poll() is not None:
                        time.sleep(0.1)  # let the pump read the last lines
                        raise ServerError(
                            f"{self.name} exited with status {self.proc.returncode}: {self.tail()}"
                        )
                    if time.monotonic() > deadline:
                        raise ServerError(
                            f"{self.name} printed no ready line in {self.timeout_s:.0f} s: "
                            f"{self.tail()}"
                        )
            if self.ready_port is not None:
                try:
                    wait_port(self.ready_port, self.timeout_s, self.proc)
                except ServerError as exc:
                    raise ServerError(f"{self.name}: {exc}: {self.tail()}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM to our child (by PID), then SIGKILL if it does not exit in time."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(grace_s)
        except ProcessLookupError:
            pass


def install_peers(progress_say: object) -> str | None:
    """apt-get install the Debian peers that are missing; None on success, else the reason."""
    missing = sorted({pkg for exe, pkg in PEER_PACKAGES.items() if shutil.which(exe) is None})
    if not missing:
        return None
    if os.geteuid() != 0:
        return f"--install-peers needs root to apt-get install {' '.join(missing)}"
    say = progress_say if callable(progress_say) else print
    say(f"installing peers with apt-get: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            return f"{' '.join(argv)} failed: {result.stderr.strip()[-300:]}"
    return None


def _first_line(argv: Sequence[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def peer_versions() -> dict[str, str]:
    """Versions of everything a figure depends on (missing ones say so)."""
    import sqlite3

    import numpy

    versions: dict[str, str] = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "sqlite": sqlite3.sqlite_version,
    }
    try:
        from edplog import __version__ as edplog_version

        versions["edplog"] = edplog_version
    except ImportError as exc:
        versions["edplog"] = f"not importable ({exc})"
    for exe in ("redis-server", "redis-benchmark", "nats-server"):
        line = _first_line([exe, "--version"]) if shutil.which(exe) else None
        versions[exe] = line or "not installed"
    try:
        import confluent_kafka

        versions["confluent-kafka"] = (
            f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"
        )
    except ImportError:
        versions["confluent-kafka"] = "not installed"
    return versions


def _filesystem_of(path: str) -> str:
    """'ext4 on /dev/vda mounted at /' for the mount that holds path (longest prefix)."""
    real = os.path.realpath(path)
    best: tuple[str, str, str] | None = None
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
                if inside and (best is None or len(mnt) >= len(best[1])):
                    best = (dev, mnt, fstype)
    except OSError:
        pass
    if best is None:
        return "unknown filesystem"
    return f"{best[2]} on {best[0]} mounted at {best[1]}"


def machine(data_dir: str) -> dict[str, str]:
    """Cores, CPU model, memory, kernel and the filesystem of the data directory."""
    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / (1 << 20):.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": f"{os.cpu_count()} ({model})",
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "filesystem": f"{_filesystem_of(data_dir)} (data dir {data_dir})",
        "python": sys.version.split()[0],
    }
