"""The private ZooKeeper that development clusters and tests run."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient

from edplog.cluster import zookeeper_server
from edplog.cluster.zookeeper_server import ZooKeeperServer, ruok

pytestmark = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)


def test_server_answers_and_keeps_data_across_a_kill(tmp_path):
    """Started, the server answers ruok and stores a znode; SIGKILLed it stops answering; started
    again on the same data directory and port it still has the znode."""
    server = ZooKeeperServer(tmp_path / "zk")
    try:
        connect = server.start()
        assert ruok(server.host, server.port)
        zk = KazooClient(hosts=connect)
        zk.start(timeout=10)
        zk.create("/kept", b"v1")
        zk.stop()
        zk.close()
        server.kill()
        assert not ruok(server.host, server.port)
        server.start()
        zk = KazooClient(hosts=connect)
        zk.start(timeout=10)
        assert zk.get("/kept")[0] == b"v1"
        zk.stop()
        zk.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None


def test_chrooted_fixture_isolates_tests(zookeeper, zookeeper_server):
    """The `zookeeper` fixture names a chroot of its own on the session server."""
    assert zookeeper.startswith(zookeeper_server.connect_string + "/edplog-test-")
