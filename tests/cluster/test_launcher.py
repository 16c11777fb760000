"""LocalCluster (edplog.cluster.launcher): ZooKeeper and broker processes on loopback aliases,
started, faulted by PID and stopped."""

from __future__ import annotations

import importlib.util
import os
import signal

import pytest

from edplog.client import Client
from edplog.cluster import zookeeper_server
from edplog.cluster.launcher import ClusterError, LocalCluster, broker_host, log_tail
from edplog.cluster.zookeeper_server import ruok

needs_zookeeper = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)
# The broker side of clustering (edplog.cluster.node) is what makes a broker accept
# zookeeper.connect; until it is there, only the start-failure path can run.
needs_cluster_mode = pytest.mark.skipif(
    importlib.util.find_spec("edplog.cluster.node") is None,
    reason="needs the broker's cluster mode (edplog.cluster.node)",
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _listed_brokers(address: str) -> set[int]:
    with Client(address, timeout_s=5) as client:
        return {b.node_id for b in client.metadata([]).brokers}


def test_addresses_and_layout_before_start(tmp_path):
    """Without starting anything: broker i binds 127.0.0.<i+1> on a fixed port, the bootstrap
    names every broker, and each broker's properties name its id, listener, log directory
    under broker-<i>/ and the private ZooKeeper's chroot."""
    cluster = LocalCluster(tmp_path, 3, properties={"min.insync.replicas": "2"})
    assert [broker_host(b) for b in cluster.broker_ids] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert cluster.bootstrap.split(",") == [cluster.address(b) for b in (1, 2, 3)]
    props = cluster.broker_properties(2)
    assert props["broker.id"] == "2"
    assert props["listeners"] == f"PLAINTEXT://{cluster.address(2)}"
    assert props["log.dirs"] == str(tmp_path / "broker-2" / "data")
    assert props["min.insync.replicas"] == "2"
    assert props["zookeeper.connect"].endswith("/edplog")
    assert props["zookeeper.session.timeout.ms"] == "6000"
    assert cluster.pid(1) is None
    with pytest.raises(ValueError):
        cluster.address(4)


def test_external_zookeeper_is_used_as_given(tmp_path):
    """With an external connect string no ZooKeeper is started: the brokers get it as is."""
    cluster = LocalCluster(tmp_path, 1, zookeeper="127.0.0.1:2181/elsewhere")
    assert cluster.zookeeper is None
    assert cluster.broker_properties(1)["zookeeper.connect"] == "127.0.0.1:2181/elsewhere"


@needs_zookeeper
def test_broker_that_exits_at_start_is_reported_and_everything_stops(tmp_path):
    """A property every broker refuses (num.partitions=0) makes the brokers exit at start:
    start() raises a ClusterError quoting the exit code and the broker's log, and leaves no
    broker and no ZooKeeper running."""
    cluster = LocalCluster(tmp_path, 2, properties={"num.partitions": "0"})
    with pytest.raises(ClusterError) as caught:
        cluster.start(timeout_s=60)
    message = str(caught.value)
    assert "exited with 2" in message
    assert "edplog broker:" in message
    assert any(str(tmp_path / f"broker-{b}" / "broker.log") in message for b in (1, 2))
    assert (tmp_path / "broker-1" / "server.properties").read_text().startswith("broker.id=1\n")
    server = cluster.zookeeper
    assert server is not None and server.process is not None
    assert server.process.poll() is not None
    assert not ruok(server.host, server.port)
    assert cluster.live_brokers() == []


def test_log_tail_keeps_the_last_lines(tmp_path):
    """log_tail gives the last lines of a long log, and nothing for a missing one."""
    path = tmp_path / "broker.log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert log_tail(path, 3).splitlines() == ["line 997", "line 998", "line 999"]
    assert log_tail(tmp_path / "missing.log") == ""


@needs_zookeeper
@needs_cluster_mode
def test_cluster_starts_and_every_broker_lists_all(tmp_path):
    """Started, every broker answers Metadata on its own alias listing all three; stop()
    ends every broker process and ZooKeeper."""
    with LocalCluster(tmp_path, 3) as cluster:
        pids = [cluster.pid(b) for b in cluster.broker_ids]
        assert all(pids)
        for broker_id in cluster.broker_ids:
            assert _listed_brokers(cluster.address(broker_id)) == {1, 2, 3}
        server = cluster.zookeeper
        assert server is not None
    assert all(_gone(pid) for pid in pids if pid)
    assert server.process is not None and server.process.poll() is not None


@needs_zookeeper
@needs_cluster_mode
def test_kill_pause_terminate_and_restart_by_pid(kafka_cluster):
    """SIGKILL of broker 3: it is down, not reported as an unexpected exit, and the others
    stop listing it; restarted on the same address it is listed again. SIGSTOP pauses
    broker 2 (its process stays, marked paused) and SIGCONT resumes it. SIGTERM stops
    broker 1 cleanly (exit status 0) and restart() brings it back."""
    cluster = kafka_cluster
    old = cluster.pid(3)
    cluster.kill(3)
    assert old is not None and _gone(old)
    assert cluster.exited() == []
    cluster.check()
    assert not cluster.is_running(3)
    cluster.restart(3)
    assert cluster.pid(3) not in (None, old)
    assert _listed_brokers(cluster.address(3)) == {1, 2, 3}

    paused = cluster.pid(2)
    cluster.pause(2)
    assert cluster.is_paused(2) and cluster.live_brokers() == [1, 3]
    assert paused is not None and not _gone(paused)
    cluster.resume(2)
    assert not cluster.is_paused(2)
    assert _listed_brokers(cluster.address(2)) >= {2}

    cluster.terminate(1)
    assert not cluster.is_running(1)
    cluster.restart(1)
    cluster.wait_ready(timeout_s=60)


@needs_zookeeper
@needs_cluster_mode
def test_unexpected_exit_is_reported_with_the_log(kafka_cluster):
    """A broker killed behind the launcher's back (SIGKILL from outside) is an unexpected
    exit: check() raises naming it and quoting its log."""
    cluster = kafka_cluster
    pid = cluster.pid(2)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert cluster.exited() == [2]
    with pytest.raises(ClusterError, match="broker 2"):
        cluster.check()


def _docs_page():
    # The section lives in docs/cluster-chaos.md until it is merged into docs/cluster.md.
    from docs_examples import ROOT

    for name in ("cluster.md", "cluster-chaos.md"):
        path = ROOT / "docs" / name
        if path.exists() and "def test_survives_a_broker" in path.read_text():
            return path
    raise AssertionError("no docs page holds the kafka_cluster example")


@needs_zookeeper
@needs_cluster_mode
def test_docs_fixture_example_runs(tmp_path):
    """The kafka_cluster example of the docs, run by pytest through the installed plugin:
    acks=all sends succeed before and after one of the three brokers is SIGKILLed."""
    from docs_examples import example, run_as_pytest

    run_as_pytest(example(_docs_page(), "def test_survives_a_broker"), tmp_path)
