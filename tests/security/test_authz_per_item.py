"""Requests naming several resources are answered per item, as Kafka answers them: an item the
principal may not touch gets its own error code and the others are served. Real clients
(confluent-kafka's AdminClient, kafka-python's admin for OffsetDelete) against a running
broker.

The setting of every test: allow.everyone.if.no.acl.found=true, so resources without ACLs are
open to the anonymous plaintext client; ACLs for ``User:bob`` alone on the prefixes
``locked`` (topics and groups) and on the cluster take those away from it. Each test says what
was tried and what must hold."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from acl_helpers import TIMEOUT_S, binding, create
from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    ElectionType,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclOperation,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourcePatternType,
    ResourceType,
)

from edplog.client import Client

Locked = tuple[Any, AdminClient, dict[str, uuid.UUID]]  # broker, admin client, topic ids
TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = KafkaError.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED = KafkaError.CLUSTER_AUTHORIZATION_FAILED


def _error_code(fut: Any) -> int:
    """The error code a future fails with (NO_ERROR when it succeeds)."""
    try:
        fut.result(TIMEOUT_S)
    except KafkaException as exc:
        return int(exc.args[0].code())
    return int(KafkaError.NO_ERROR)


def _uuid(topic_id: Any) -> uuid.UUID:
    """confluent-kafka's Uuid (two signed 64-bit halves) as a UUID."""
    mask = (1 << 64) - 1
    high = topic_id.get_most_significant_bits() & mask
    return uuid.UUID(int=high << 64 | topic_id.get_least_significant_bits() & mask)


@pytest.fixture
def locked(kafka_broker_factory: Any) -> Locked:
    """A broker with topics ok-a, ok-b, locked-a, locked-b (one partition, two records each)
    and committed offsets of groups g-ok and locked-g on ok-a and locked-a; then the ACLs
    that lock ``locked*`` and the cluster away from the anonymous client."""
    broker = kafka_broker_factory(
        authorizer_class_name="kafka.security.authorizer.AclAuthorizer",
        allow_everyone_if_no_acl_found="true",
        group_initial_rebalance_delay_ms="0",
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    names = ("ok-a", "ok-b", "locked-a", "locked-b")
    for fut in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        fut.result(TIMEOUT_S)
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": broker.bootstrap})
    for n in names:
        p.produce(n, b"1")
        p.produce(n, b"2")
    assert p.flush(TIMEOUT_S) == 0
    described = admin.describe_topics(TopicCollection(list(names)))
    ids = {n: _uuid(f.result(TIMEOUT_S).topic_id) for n, f in described.items()}
    for group in ("g-ok", "locked-g"):
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition("ok-a", 0, 1), TopicPartition("locked-a", 0, 1)]
        )
        admin.alter_consumer_group_offsets([request])[group].result(TIMEOUT_S)
    bob = "User:bob"
    prefixed = ResourcePatternType.PREFIXED
    acls = [
        binding(kind, "locked", bob, AclOperation.ALL, pattern=prefixed)
        for kind in (ResourceType.TOPIC, ResourceType.GROUP)
    ]
    acls.append(binding(ResourceType.BROKER, "kafka-cluster", bob, AclOperation.ALL))
    create(admin, acls)
    return broker, admin, ids


def test_topic_administration_is_answered_per_topic(locked: Locked) -> None:
    """CreateTopics (no Create on the cluster: Create on each topic decides), CreatePartitions,
    DeleteRecords, ListOffsets and DeleteTopics each name an open topic and a locked one: the
    open one is served (created, grown, truncated, its end offset listed, deleted) and the
    locked one alone answers TOPIC_AUTHORIZATION_FAILED."""
    broker, admin, ids = locked
    created = admin.create_topics([NewTopic("ok-new", 1, 1), NewTopic("locked-new", 1, 1)])
    assert _error_code(created["ok-new"]) == KafkaError.NO_ERROR
    assert _error_code(created["locked-new"]) == TOPIC_DENIED

    grown = admin.create_partitions([NewPartitions("ok-a", 2), NewPartitions("locked-a", 2)])
    assert _error_code(grown["ok-a"]) == KafkaError.NO_ERROR
    assert _error_code(grown["locked-a"]) == TOPIC_DENIED

    ok, bad = TopicPartition("ok-b", 0, 1), TopicPartition("locked-b", 0, 1)
    deleted = admin.delete_records([ok, bad])
    assert deleted[ok].result(TIMEOUT_S).low_watermark == 1
    assert _error_code(deleted[bad]) == TOPIC_DENIED

    ends = admin.list_offsets({ok: OffsetSpec.latest(), bad: OffsetSpec.latest()})
    assert ends[ok].result(TIMEOUT_S).offset == 2
    assert _error_code(ends[bad]) == TOPIC_DENIED

    gone = admin.delete_topics(["ok-b", "locked-b"], operation_timeout=TIMEOUT_S)
    assert _error_code(gone["ok-b"]) == KafkaError.NO_ERROR
    assert _error_code(gone["locked-b"]) == TOPIC_DENIED
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    assert {"ok-new", "locked-a"} & set(topics) == {"ok-new"}  # locked-a: not Describe-able
    assert len(topics["ok-a"].partitions) == 2 and "ok-b" not in topics


def test_configs_are_answered_per_resource(locked: Locked) -> None:
    """DescribeConfigs of an open topic, a locked topic and the broker: the open topic's
    configs come back, the locked one answers TOPIC_AUTHORIZATION_FAILED and the broker
    CLUSTER_AUTHORIZATION_FAILED (no DescribeConfigs on the cluster). AlterConfigs and
    IncrementalAlterConfigs of an open and a locked topic change the open one only."""
    broker, admin, ids = locked
    node = next(iter(admin.list_topics(timeout=TIMEOUT_S).brokers))
    res = [
        ConfigResource(ConfigResource.Type.TOPIC, "ok-a"),
        ConfigResource(ConfigResource.Type.TOPIC, "locked-a"),
        ConfigResource(ConfigResource.Type.BROKER, str(node)),
    ]
    described = admin.describe_configs(res)
    assert "retention.ms" in described[res[0]].result(TIMEOUT_S)
    assert _error_code(described[res[1]]) == TOPIC_DENIED
    assert _error_code(described[res[2]]) == CLUSTER_DENIED

    altered = admin.alter_configs(  # AlterConfigs (deprecated by Kafka, still served)
        [
            ConfigResource(ConfigResource.Type.TOPIC, "ok-a", set_config={"retention.ms": "7"}),
            ConfigResource(ConfigResource.Type.TOPIC, "locked-a", set_config={"retention.ms": "7"}),
        ]
    )
    codes = {r.name: _error_code(f) for r, f in altered.items()}
    assert codes == {"ok-a": KafkaError.NO_ERROR, "locked-a": TOPIC_DENIED}

    entry = ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)
    incremental = admin.incremental_alter_configs(
        [
            ConfigResource(ConfigResource.Type.TOPIC, "ok-a", incremental_configs=[entry]),
            ConfigResource(ConfigResource.Type.TOPIC, "locked-a", incremental_configs=[entry]),
        ]
    )
    codes = {r.name: _error_code(f) for r, f in incremental.items()}
    assert codes == {"ok-a": KafkaError.NO_ERROR, "locked-a": TOPIC_DENIED}
    now = admin.describe_configs([res[0]])[res[0]].result(TIMEOUT_S)
    assert now["retention.ms"].value == "7" and now["cleanup.policy"].value == "compact"


def test_groups_are_answered_per_group_and_listed_when_describable(
    locked: Locked,
) -> None:
    """Without Describe on the cluster, ListGroups lists g-ok and leaves locked-g out;
    DescribeGroups of both describes g-ok and answers GROUP_AUTHORIZATION_FAILED for
    locked-g, and so does ConsumerGroupDescribe (edplog's client; g-ok, not a
    consumer-protocol group, gets its own error); DeleteGroups of both deletes g-ok only.
    ElectLeaders (Alter on the cluster) is refused whole, CLUSTER_AUTHORIZATION_FAILED, as in
    Kafka."""
    broker, admin, ids = locked
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    assert {g.group_id for g in listed.valid} == {"g-ok"}

    described = admin.describe_consumer_groups(["g-ok", "locked-g"])
    assert described["g-ok"].result(TIMEOUT_S).group_id == "g-ok"
    assert _error_code(described["locked-g"]) == GROUP_DENIED

    deleted = admin.delete_consumer_groups(["g-ok", "locked-g"])
    assert _error_code(deleted["g-ok"]) == KafkaError.NO_ERROR
    assert _error_code(deleted["locked-g"]) == GROUP_DENIED
    with Client(broker.bootstrap) as client:  # ConsumerGroupDescribe (KIP-848), by hand
        answer = client.call(69, 0, {"group_ids": ["g-ok", "locked-g"]})
    codes = {g["group_id"]: g["error_code"] for g in answer["groups"]}
    assert codes["locked-g"] == GROUP_DENIED and codes["g-ok"] != GROUP_DENIED

    elected = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("ok-a", 0)])
    assert _error_code(elected) == CLUSTER_DENIED


def test_group_offsets_are_answered_per_topic(locked: Locked) -> None:
    """OffsetFetch of all of g-ok's topics lists ok-a only (locked-a, which it may not
    Describe, is left out), and naming locked-a answers TOPIC_AUTHORIZATION_FAILED for its
    partition; OffsetCommit of ok-a and locked-a commits ok-a only (locked-a: no Read);
    OffsetDelete (kafka-python) of both deletes ok-a's and refuses locked-a's; a group the
    principal may not Read (locked-g) is refused whole, GROUP_AUTHORIZATION_FAILED."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import NoError, TopicAuthorizationFailedError
    from kafka.structs import TopicPartition as KTP

    broker, admin, ids = locked
    every = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g-ok")])
    assert [(t.topic, t.offset) for t in every["g-ok"].result(TIMEOUT_S).topic_partitions] == [
        ("ok-a", 1)
    ]
    named = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions("g-ok", [TopicPartition("locked-a", 0)])]
    )
    [part] = named["g-ok"].result(TIMEOUT_S).topic_partitions
    assert part.error is not None and part.error.code() == TOPIC_DENIED

    commit = ConsumerGroupTopicPartitions(
        "g-ok", [TopicPartition("ok-a", 0, 2), TopicPartition("locked-a", 0, 2)]
    )
    result = admin.alter_consumer_group_offsets([commit])["g-ok"].result(TIMEOUT_S)
    errors = {t.topic: t.error.code() if t.error else None for t in result.topic_partitions}
    assert errors == {"ok-a": None, "locked-a": TOPIC_DENIED}
    again = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g-ok")])
    assert [(t.topic, t.offset) for t in again["g-ok"].result(TIMEOUT_S).topic_partitions] == [
        ("ok-a", 2)
    ]
    refused = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("locked-g")])
    assert _error_code(refused["locked-g"]) == GROUP_DENIED

    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30_000)
    try:
        ok, bad = KTP("ok-a", 0), KTP("locked-a", 0)
        assert kadmin.delete_group_offsets("g-ok", [ok, bad]) == {
            ok: NoError,
            bad: TopicAuthorizationFailedError,
        }
    finally:
        kadmin.close()
    left = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g-ok")])
    assert left["g-ok"].result(TIMEOUT_S).topic_partitions == []


def test_topics_named_by_id_are_judged_by_their_name(locked: Locked) -> None:
    """OffsetCommit v10 names topics by id (edplog's client, by hand): ok-a's id is
    committed, locked-a's answers TOPIC_AUTHORIZATION_FAILED (an id does not get round the
    ACL on the name), and an id no topic has stays UNKNOWN_TOPIC_ID."""
    broker, admin, ids = locked
    part = {"partition_index": 0, "committed_offset": 2, "committed_metadata": ""}
    body = {
        "group_id": "by-id",
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "topics": [
            {"topic_id": ids["ok-a"], "partitions": [part]},
            {"topic_id": ids["locked-a"], "partitions": [part]},
            {"topic_id": uuid.uuid4(), "partitions": [part]},
        ],
    }
    with Client(broker.bootstrap) as client:
        got = client.call(8, 10, body)["topics"]
    codes = {t["topic_id"]: t["partitions"][0]["error_code"] for t in got}
    assert codes[ids["ok-a"]] == KafkaError.NO_ERROR
    assert codes[ids["locked-a"]] == TOPIC_DENIED
    assert sorted(codes.values()).count(KafkaError.UNKNOWN_TOPIC_ID) == 1
