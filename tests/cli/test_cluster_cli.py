"""``edplog cluster up``: the real command in a subprocess, stopped with SIGINT."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from edplog.client import Client
from edplog.cluster import zookeeper_server
from edplog.cluster.zookeeper_server import ruok

needs_zookeeper = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)
needs_cluster_mode = pytest.mark.skipif(
    importlib.util.find_spec("edplog.cluster.node") is None,
    reason="needs the broker's cluster mode (edplog.cluster.node)",
)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "edplog", "cluster", "up", *args]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _zookeeper_port(data_dir) -> int:
    config = (data_dir / "zookeeper" / "zoo.cfg").read_text()
    match = re.search(r"^clientPort=(\d+)$", config, re.MULTILINE)
    assert match
    return int(match[1])


def test_bad_property_is_a_usage_error(tmp_path):
    """--property without '=' is refused with exit status 2 before anything starts."""
    done = subprocess.run(
        _command("--data-dir", str(tmp_path / "c"), "--property", "novalue"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--property needs KEY=VALUE" in done.stderr
    assert not (tmp_path / "c").exists()


@needs_zookeeper
def test_broker_refusing_its_config_fails_the_start_and_stops_zookeeper(tmp_path):
    """A broker property every broker refuses: the command exits 1, quotes the broker's log,
    and the private ZooKeeper it started no longer answers."""
    data = tmp_path / "cluster"
    done = subprocess.run(
        _command("--brokers", "1", "--data-dir", str(data), "--property", "num.partitions=0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "broker 1" in done.stderr and "edplog broker:" in done.stderr
    assert (data / "broker-1" / "broker.log").exists()
    assert not ruok("127.0.0.1", _zookeeper_port(data))


@needs_zookeeper
@needs_cluster_mode
def test_up_serves_until_sigint_then_stops_everything(tmp_path):
    """Started with 3 brokers, the command prints each broker's address, pid and log and the
    bootstrap servers; a client sees all three brokers there. After SIGINT it exits 0 and no
    broker pid and no ZooKeeper is left; the data stays under --data-dir."""
    data = tmp_path / "cluster"
    proc = subprocess.Popen(
        _command("--brokers", "3", "--data-dir", str(data)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 150
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "ready" in line:
                break
        assert any("ready" in line for line in lines), "".join(lines) + proc.stderr.read()
        pids = [int(m[1]) for line in lines if (m := re.search(r"^broker \d+ .*\(pid (\d+)", line))]
        assert len(pids) == 3
        bootstrap = next(line for line in lines if line.startswith("bootstrap.servers="))
        first = bootstrap.strip().split("=", 1)[1].split(",")[0]
        with Client(first, timeout_s=10) as client:
            assert {b.node_id for b in client.metadata([]).brokers} == {1, 2, 3}
        proc.send_signal(signal.SIGINT)
        proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert all(_gone(pid) for pid in pids)
    assert not ruok("127.0.0.1", _zookeeper_port(data))
    assert (data / "broker-1" / "data").is_dir()
