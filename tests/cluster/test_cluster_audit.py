"""The audit topic in a cluster: three in-process brokers and a real ZooKeeper, each broker
writing its own chain into partition 0 of one replicated audit topic; confluent-kafka and
``edplog audit verify --topic`` read it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cluster_helpers import InProcessCluster, wait_for
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from security.audit_helpers import verify_topic

AUDIT_TOPIC = "__edplog_audit"
TIMEOUT_S = 30


def audit_records(bootstrap: str) -> list[dict[str, Any]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "r", "enable.auto.commit": False})
    out: list[dict[str, Any]] = []
    try:
        low, high = c.get_watermark_offsets(TopicPartition(AUDIT_TOPIC, 0), timeout=TIMEOUT_S)
        c.assign([TopicPartition(AUDIT_TOPIC, 0, low)])
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < high - low and time.monotonic() < deadline:
            for m in c.consume(500, timeout=1.0):
                assert m.error() is None, m.error()
                out.append(json.loads(m.value()))
    finally:
        c.close()
    return out


def by_source(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["source"], []).append(r)
    return out


def started(records: list[dict[str, Any]]) -> int:
    return sum(r["type"] == "io.edplog.audit.started" for r in records)


def test_every_broker_keeps_its_chain_in_the_replicated_topic_across_a_leader_move(
    zookeeper: str, tmp_path: Path
) -> None:
    """Three brokers audit every Create decision into one audit topic, which the first of
    them creates with the cluster's replication factor (3). Topics are created, the audit
    partition's leader is stopped (its leadership moves) and more topics are created, then it
    starts again. The topic must hold three chains (one per broker, each 0, 1, 2 ... with no
    hole), the restarted broker's continuing after a second started record, and verify
    --topic must pass with three writers."""
    cluster = InProcessCluster(
        zookeeper,
        tmp_path,
        3,
        **{
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "super.users": "User:ANONYMOUS",
            "audit.log.topic": AUDIT_TOPIC,
            "audit.log.topics.write": "*",
        },
    )
    cluster.start_all()
    try:
        wait_for(
            lambda: (
                AUDIT_TOPIC in cluster.metadata([AUDIT_TOPIC]).topics
                and started(audit_records(cluster.bootstrap)) == 3
            ),
            what="a started record of each broker",
        )
        part = cluster.wait_isr(AUDIT_TOPIC, 0, 3)
        assert sorted(part.replicas) == [1, 2, 3]
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        for name in ("a1", "a2"):
            admin.create_topics([NewTopic(name, 1, 3)])[name].result(TIMEOUT_S)
        leader = part.leader_id
        cluster.stop(leader)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        for name in ("b1", "b2"):
            admin.create_topics([NewTopic(name, 1, 2)])[name].result(TIMEOUT_S)
        cluster.start(leader)
        cluster.wait_isr(AUDIT_TOPIC, 0, 3)

        def created(got: list[dict[str, Any]]) -> set[str]:
            return {
                r["data"]["resource"]["name"]
                for r in got
                if r["type"].endswith("authorization") and r["data"]["operation"] == "Create"
            }

        got = wait_for(
            lambda: (
                (g := audit_records(cluster.bootstrap))
                and started(g) == 4
                and {"a1", "a2", "b1", "b2"} <= created(g)
                and g
            ),
            what="every Create decision and the restarted broker's started record",
        )
        chains = by_source(got)
        assert len(chains) == 3
        for source, chain in chains.items():
            assert [r["sequence"] for r in chain] == list(range(len(chain))), source
            assert chain[0]["type"] == "io.edplog.audit.started"
        (restarted,) = [c for c in chains.values() if started(c) == 2]
        second = [r for r in restarted if r["type"] == "io.edplog.audit.started"][1]
        assert second["data"]["previous_sequence"] == second["sequence"] - 1
        assert restarted[0]["source"].endswith(f"/broker/{leader}")

        out = verify_topic(cluster.bootstrap, AUDIT_TOPIC)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "3 writer(s)" in out.stdout and out.stdout.count("intact") == 3
    finally:
        cluster.stop_all()
