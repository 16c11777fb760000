"""The fault campaign's machinery on its own: iptables partitions between loopback aliases
(tests/cluster/nemesis.py). The faults against a replicated cluster are further down."""

from __future__ import annotations

import socket
import subprocess
import threading

import nemesis as nemesis_module
import pytest

from edplog.cluster.launcher import LocalCluster

needs_root = pytest.mark.skipif(
    not nemesis_module.iptables_available(), reason="iptables partitions need root and iptables"
)


class _Listener:
    """A TCP server on ``host`` that accepts and closes connections (bounded: a daemon
    thread, closed at the end)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.address = self.sock.getsockname()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for _ in range(1000):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _connects(source: str, address: tuple[str, int]) -> bool:
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.settimeout(1.0)
        try:
            sock.connect(address)
        except OSError:
            return False
        return True


def _rules(tag: str) -> list[str]:
    listed = subprocess.run(
        ["iptables", "-S", "INPUT"], check=True, capture_output=True, text=True
    ).stdout
    return [line for line in listed.splitlines() if tag in line]


@needs_root
def test_partition_between_aliases_and_heal_removes_only_its_rules(tmp_path):
    """A one-way cut from 127.0.0.2 to 127.0.0.3 stops connections between them in both
    directions (the handshake needs both) while 127.0.0.4 still connects; a second nemesis's
    rule survives the first one's heal(), which deletes exactly its own tagged rules."""
    cluster = LocalCluster(tmp_path, 3)
    first = nemesis_module.Nemesis(cluster, run_id="test-a-" + tmp_path.name[-8:])
    second = nemesis_module.Nemesis(cluster, run_id="test-b-" + tmp_path.name[-8:])
    listener = _Listener("127.0.0.3")
    try:
        assert _connects("127.0.0.2", listener.address)
        first.cut(["127.0.0.2"], ["127.0.0.3"], both=False)
        second.cut(["127.0.0.9"], ["127.0.0.10"])
        assert len(_rules(first.tag)) == 1 and len(_rules(second.tag)) == 2
        assert not _connects("127.0.0.2", listener.address)
        assert _connects("127.0.0.4", listener.address)
        assert first.heal() == 1
        assert _rules(first.tag) == [] and len(_rules(second.tag)) == 2
        assert _connects("127.0.0.2", listener.address)
    finally:
        first.heal()
        second.heal()
        listener.close()
    assert _rules(second.tag) == []


@needs_root
def test_isolating_a_broker_from_zookeeper_names_only_the_zookeeper_port(tmp_path):
    """isolate_from_zookeeper(2) drops 127.0.0.3 <-> ZooKeeper's port only: the alias still
    reaches another port on 127.0.0.1."""
    cluster = LocalCluster(tmp_path, 3)
    server = cluster.zookeeper
    assert server is not None
    other = _Listener("127.0.0.1")
    zk_like = socket.socket()
    zk_like.bind(("127.0.0.1", server.port))  # stands in for ZooKeeper's port
    zk_like.listen(4)
    tool = nemesis_module.Nemesis(cluster)
    try:
        assert _connects("127.0.0.3", ("127.0.0.1", server.port))
        tool.isolate_from_zookeeper(2)
        assert not _connects("127.0.0.3", ("127.0.0.1", server.port))
        assert _connects("127.0.0.2", ("127.0.0.1", server.port))
        assert _connects("127.0.0.3", other.address)
    finally:
        assert tool.heal() == 2
        zk_like.close()
        other.close()
