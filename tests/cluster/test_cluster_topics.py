"""Topic administration in a cluster: assignments, racks, configs and deletion reach every
broker (in-process brokers, a real ZooKeeper, confluent-kafka's AdminClient)."""

from __future__ import annotations

import os

import pytest
from cluster_helpers import InProcessCluster, wait_for
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from edplog.client import Client
from edplog.cluster import zookeeper_server

pytestmark = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)


def admin(cluster):
    return AdminClient({"bootstrap.servers": cluster.bootstrap})


def test_an_explicit_assignment_is_kept_and_only_its_brokers_hold_replicas(cluster):
    """CreateTopics with replica lists: Metadata shows exactly those lists, the first
    replica leads, and only the assigned brokers have a log for each partition."""
    topic = NewTopic("asg", 2, replica_assignment=[[2, 3], [3, 1]])
    a = admin(cluster)  # kept: a client destroyed early fails its futures
    a.create_topics([topic])["asg"].result(30)
    cluster.wait_isr("asg", 0, 2)
    cluster.wait_isr("asg", 1, 2)
    parts = cluster.metadata(["asg"]).topics["asg"].partitions
    assert [p.replicas for p in sorted(parts)] == [[2, 3], [3, 1]]
    assert [p.leader_id for p in sorted(parts)] == [2, 3]

    def held(broker):
        return sorted(p for (t, p) in cluster.brokers[broker].broker.store.logs() if t == "asg")

    wanted = {b: [p for p, reps in enumerate([[2, 3], [3, 1]]) if b in reps] for b in (1, 2, 3)}
    wait_for(lambda: all(held(b) == wanted[b] for b in (1, 2, 3)), what="the replicas opened")


def test_bad_replication_factors_and_assignments_are_refused(cluster):
    """A replication factor above the live brokers is INVALID_REPLICATION_FACTOR; an
    assignment naming an unknown broker or repeating one is INVALID_REPLICA_ASSIGNMENT."""
    a = admin(cluster)
    with pytest.raises(Exception, match="REPLICATION_FACTOR"):
        a.create_topics([NewTopic("rf4", 1, 4)])["rf4"].result(30)
    with pytest.raises(Exception, match="REPLICA_ASSIGNMENT"):
        a.create_topics([NewTopic("bad1", 1, replica_assignment=[[1, 9]])])["bad1"].result(30)
    with pytest.raises(Exception, match="REPLICA_ASSIGNMENT"):
        a.create_topics([NewTopic("bad2", 1, replica_assignment=[[1, 1]])])["bad2"].result(30)
    assert not {"rf4", "bad1", "bad2"} & set(cluster.metadata().topics)


def test_racks_spread_the_replicas(zookeeper, tmp_path):
    """Brokers on racks a, a, b, b: every partition of an RF-2 topic has one replica on
    each rack."""
    c = InProcessCluster(zookeeper, tmp_path, 4)
    racks = {1: "a", 2: "a", 3: "b", 4: "b"}
    try:
        for b in range(1, 5):
            c.properties["broker.rack"] = racks[b]
            c.start(b)
        wait_for(lambda: len(c.metadata().brokers) == 4, what="four brokers")
        assert {b.node_id: b.rack for b in c.metadata().brokers} == racks
        a = admin(c)
        a.create_topics([NewTopic("racked", 8, 2)])["racked"].result(30)
        for p in c.metadata(["racked"]).topics["racked"].partitions:
            assert {racks[r] for r in p.replicas} == {"a", "b"}
    finally:
        c.stop_all()


def test_configs_and_new_partitions_reach_every_broker(cluster):
    """AlterConfigs sent to one broker changes the topic's config on every replica's log;
    CreatePartitions adds partitions that every broker's Metadata shows, with replicas."""
    a = admin(cluster)
    a.create_topics([NewTopic("cfg", 1, 3)])["cfg"].result(30)
    cluster.wait_isr("cfg", 0, 3)
    resource = ConfigResource(
        "topic",
        "cfg",
        incremental_configs=[
            ConfigEntry("retention.ms", "123456", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in a.incremental_alter_configs([resource]).values():
        future.result(30)
    wait_for(
        lambda: all(
            cluster.local_log(b, "cfg", 0).config["retention.ms"] == 123456 for b in (1, 2, 3)
        ),
        what="the config on every replica",
    )
    a.create_partitions([NewPartitions("cfg", 3)])["cfg"].result(30)
    for broker in (1, 2, 3):
        with Client(cluster.brokers[broker].bootstrap) as client:
            parts = client.metadata(["cfg"]).topics["cfg"].partitions
            assert len(parts) == 3 and all(len(p.replicas) == 3 for p in parts)


def test_a_deleted_topic_leaves_no_replica_on_any_broker(cluster):
    """DeleteTopics sent to one broker: the topic disappears from every broker's Metadata
    and every broker removes its replicas' directories."""
    a = admin(cluster)
    a.create_topics([NewTopic("gone", 2, 3)])["gone"].result(30)
    cluster.wait_isr("gone", 1, 3)
    dirs = wait_for(
        lambda: [cluster.local_log(b, "gone", p).path for b in (1, 2, 3) for p in (0, 1)],
        what="every replica opened",
    )
    a.delete_topics(["gone"])["gone"].result(30)
    wait_for(lambda: not any(os.path.exists(d) for d in dirs), what="every replica removed")
    assert "gone" not in cluster.metadata().topics
