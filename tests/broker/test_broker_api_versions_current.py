"""The newest versions of Metadata, Produce, ListOffsets, CreateTopics and DescribeCluster, and
the answers of ListOffsets MAX_TIMESTAMP and DescribeConfigs synonyms, over real sockets: our
raw client in explicit versions, confluent-kafka (librdkafka), kafka-python and kcat."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from broker_helpers import RawClient, create_topic, produce_body

from edplog._native import BatchBuilder
from edplog.security import AllowAll, Operation, Resource, authorized_operations
from edplog.security.principal import ANONYMOUS

OMITTED = -(2**31)
# Kafka's AclOperation codes of the operations each resource type has.
TOPIC_OPS = {3, 4, 5, 6, 7, 8, 10, 11}  # READ WRITE CREATE DELETE ALTER DESCRIBE D/A_CONFIGS
CLUSTER_OPS = {5, 7, 8, 9, 10, 11, 12}  # CREATE ALTER DESCRIBE CLUSTER_ACTION D/A_CONFIGS IDEM
UNKNOWN_TOPIC_ID = 100
MISMATCHED_ENDPOINT_TYPE = 114
DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5


def _bits(n: int) -> set[int]:
    return {i for i in range(32) if (n & 0xFFFFFFFF) >> i & 1}


def _metadata(c: RawClient, version: int, topics: list[dict] | None, **flags: bool) -> dict:
    body = {"topics": topics, "allow_auto_topic_creation": False, **flags}
    return c.call(3, version, body)


def _batch_with_timestamps(timestamps: list[int], compression: str | None = None) -> bytes:
    b = BatchBuilder()
    for i, ts in enumerate(timestamps):
        b.append(b"value-%d" % i, timestamp_ms=ts)
    return b.build(compression=compression)


def _list_offsets(c: RawClient, version: int, topic: str, ts: int) -> dict:
    body = {
        "replica_id": -1,
        "isolation_level": 0,
        "topics": [
            {
                "name": topic,
                "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": ts}],
            }
        ],
        "timeout_ms": 1000,
    }
    return c.call(2, version, body)["topics"][0]["partitions"][0]


class _ReadOnly(AllowAll):
    """An authorizer that refuses every write-like operation (test double of the seam)."""

    def authorize(self, principal, host, operation, resource):  # type: ignore[no-untyped-def]
        return operation in (Operation.READ, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS)


def test_authorized_operations_ask_the_authorizer_per_operation() -> None:
    """The bit set is built from the authorizer's answers: everything of the resource type
    for allow-all, only READ (3), DESCRIBE (8) and DESCRIBE_CONFIGS (10) for a read-only one,
    and nothing of another type's operations."""
    topic = Resource("Topic", "t")
    assert _bits(authorized_operations(AllowAll(), ANONYMOUS, "h", topic)) == TOPIC_OPS
    assert _bits(authorized_operations(_ReadOnly(), ANONYMOUS, "h", topic)) == {3, 8, 10}
    cluster = Resource("Cluster", "kafka-cluster")
    assert _bits(authorized_operations(AllowAll(), ANONYMOUS, "h", cluster)) == CLUSTER_OPS
    assert _bits(authorized_operations(_ReadOnly(), ANONYMOUS, "h", cluster)) == {8, 10}


def test_metadata_v13_operations_topic_ids_and_error_code(kafka_broker: str) -> None:
    """Metadata v13 answers a top-level error_code 0; topic operations only when asked
    (-2147483648 otherwise); v10 cluster operations when asked; v12 finds a topic by its id
    and answers UNKNOWN_TOPIC_ID for an id no topic has."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "meta13", 2)
        plain = _metadata(c, 13, [{"topic_id": None, "name": "meta13"}])
        assert plain["error_code"] == 0
        (topic,) = plain["topics"]
        assert topic["topic_authorized_operations"] == OMITTED
        assert len(topic["partitions"]) == 2
        asked = _metadata(
            c, 13, [{"topic_id": None, "name": "meta13"}], include_topic_authorized_operations=True
        )
        assert _bits(asked["topics"][0]["topic_authorized_operations"]) == TOPIC_OPS
        v10 = _metadata(
            c,
            10,
            None,
            include_cluster_authorized_operations=True,
            include_topic_authorized_operations=False,
        )
        assert _bits(v10["cluster_authorized_operations"]) == CLUSTER_OPS
        assert _metadata(c, 10, None)["cluster_authorized_operations"] == OMITTED
        topic_id = topic["topic_id"]
        assert isinstance(topic_id, uuid.UUID) and topic_id.int != 0
        by_id = _metadata(c, 12, [{"topic_id": topic_id, "name": None}])["topics"][0]
        assert (by_id["error_code"], by_id["name"], by_id["topic_id"]) == (0, "meta13", topic_id)
        stranger = uuid.uuid4()
        missing = _metadata(c, 13, [{"topic_id": stranger, "name": None}])["topics"][0]
        assert missing["error_code"] == UNKNOWN_TOPIC_ID
        assert missing["topic_id"] == stranger and missing["name"] is None


@pytest.mark.parametrize("version", [9, 10, 11, 12])
def test_produce_v9_to_v12_appends_and_answers(kafka_broker: str, version: int) -> None:
    """Produce in each version from 9 to 12: the batch lands at the next offset, the response
    decodes in that version, and no KIP-951 leader hint is sent for a successful append."""
    with RawClient(kafka_broker) as c:
        create_topic(c, f"p{version}")
        for expect in (0, 3):
            resp = c.call(
                0, version, produce_body(f"p{version}", 0, _batch_with_timestamps([1, 2, 3]))
            )
            part = resp["responses"][0]["partition_responses"][0]
            assert (part["error_code"], part["base_offset"]) == (0, expect)
            # absent (a decoder gives the defaults): the tag is not on the wire
            assert part.get("current_leader") in (None, {"leader_id": -1, "leader_epoch": -1})
        assert not resp.get("node_endpoints")


def test_produce_v13_names_topics_by_id(kafka_broker: str) -> None:
    """Produce v13 (KIP-516): a topic named by the id Metadata gives is appended to and
    answered by id; an id no topic has gets UNKNOWN_TOPIC_ID for its partition and nothing
    is written anywhere."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "p13")
        topic_id = _metadata(c, 12, [{"topic_id": None, "name": "p13"}])["topics"][0]["topic_id"]
        stranger = uuid.uuid4()
        body = {
            "transactional_id": None,
            "acks": 1,
            "timeout_ms": 5000,
            "topic_data": [
                {"topic_id": t, "partition_data": [{"index": 0, "records": data}]}
                for t, data in (
                    (topic_id, _batch_with_timestamps([1, 2])),
                    (stranger, _batch_with_timestamps([3])),
                )
            ],
        }
        known, unknown = c.call(0, 13, body)["responses"]
        assert known["topic_id"] == topic_id
        assert known["partition_responses"][0]["error_code"] == 0
        assert unknown["topic_id"] == stranger
        assert unknown["partition_responses"][0]["error_code"] == UNKNOWN_TOPIC_ID
        assert _list_offsets(c, 10, "p13", -1)["offset"] == 2


@pytest.mark.parametrize("compression", [None, "gzip", "snappy", "lz4", "zstd"])
def test_list_offsets_special_timestamps_v7_to_v10(kafka_broker: str, compression) -> None:
    """Two batches, the second of 10 records with its largest timestamp at record 4 (offset
    3 + 4 = 7): MAX_TIMESTAMP (-3) answers offset 7 with that timestamp in v7-v10 (not the
    batch's last offset 12); EARLIEST_LOCAL (-4, v8+) answers the log start offset; and
    LATEST_TIERED (-5, v9+) answers -1/-1, as a broker without tiered storage does."""
    ts = [2_000 + i for i in range(10)]
    ts[4] = 9_999
    with RawClient(kafka_broker) as c:
        create_topic(c, "lo")
        for data in (
            _batch_with_timestamps([10, 20, 30], compression),
            _batch_with_timestamps(ts, compression),
        ):
            resp = c.call(0, 9, produce_body("lo", 0, data))
            assert resp["responses"][0]["partition_responses"][0]["error_code"] == 0
        for version in (7, 8, 9, 10):
            found = _list_offsets(c, version, "lo", -3)
            assert (found["error_code"], found["offset"], found["timestamp"]) == (0, 7, 9_999)
        for version in (8, 9, 10):
            local = _list_offsets(c, version, "lo", -4)
            assert (local["error_code"], local["offset"]) == (0, 0)
        for version in (9, 10):
            tiered = _list_offsets(c, version, "lo", -5)
            assert (tiered["error_code"], tiered["offset"], tiered["timestamp"]) == (0, -1, -1)
            assert tiered["leader_epoch"] == -1


def _create(c: RawClient, name: str, validate_only: bool, configs: list[dict]) -> dict:
    body = {
        "topics": [
            {
                "name": name,
                "num_partitions": 1,
                "replication_factor": 1,
                "assignments": [],
                "configs": configs,
            }
        ],
        "timeout_ms": 5000,
        "validate_only": validate_only,
    }
    return c.call(19, 7, body)["topics"][0]


def test_create_topics_v7_returns_the_topic_id_and_effective_configs(kafka_broker: str) -> None:
    """CreateTopics v7 answers the id Metadata then shows for the topic (all zero for
    validate_only, which creates nothing), and the effective configs: the override as
    DYNAMIC_TOPIC_CONFIG, the rest DEFAULT_CONFIG."""
    with RawClient(kafka_broker) as c:
        dry = _create(c, "ct7", True, [])
        assert dry["error_code"] == 0 and dry["topic_id"] in (None, uuid.UUID(int=0))
        made = _create(c, "ct7", False, [{"name": "retention.ms", "value": "4242"}])
        assert made["error_code"] == 0
        assert isinstance(made["topic_id"], uuid.UUID) and made["topic_id"].int != 0
        meta = _metadata(c, 12, [{"topic_id": None, "name": "ct7"}])
        assert meta["topics"][0]["topic_id"] == made["topic_id"]
        configs = {e["name"]: e for e in made["configs"]}
        assert configs["retention.ms"]["value"] == "4242"
        assert configs["retention.ms"]["config_source"] == DYNAMIC_TOPIC_CONFIG
        assert configs["segment.bytes"]["config_source"] == DEFAULT_CONFIG


def test_describe_cluster_v0_to_v2(kafka_broker: str) -> None:
    """DescribeCluster v0-v2: this broker, never fenced (v2), cluster operations only when
    asked; asked for controller endpoints (v1 endpoint_type 2) it answers
    MISMATCHED_ENDPOINT_TYPE."""
    with RawClient(kafka_broker) as c:
        for version in (0, 1, 2):
            body = {"include_cluster_authorized_operations": True, "endpoint_type": 1}
            body["include_fenced_brokers"] = True
            resp = c.call(60, version, body)
            assert resp["error_code"] == 0
            assert _bits(resp["cluster_authorized_operations"]) == CLUSTER_OPS
            (broker,) = resp["brokers"]
            if version == 2:
                assert broker["is_fenced"] is False
        quiet = c.call(60, 2, {"include_cluster_authorized_operations": False})
        assert quiet["cluster_authorized_operations"] == OMITTED
        wrong = c.call(60, 1, {"include_cluster_authorized_operations": False, "endpoint_type": 2})
        assert wrong["error_code"] == MISMATCHED_ENDPOINT_TYPE and wrong["brokers"] == []


def _describe_configs(c: RawClient, rtype: int, name: str, synonyms: bool, docs: bool) -> dict:
    body = {
        "resources": [{"resource_type": rtype, "resource_name": name, "configuration_keys": None}],
        "include_synonyms": synonyms,
        "include_documentation": docs,
    }
    result = c.call(32, 4, body)["results"][0]
    assert result["error_code"] == 0, result
    return {e["name"]: e for e in result["configs"]}


def test_describe_configs_synonyms_types_and_documentation(kafka_broker_factory) -> None:
    """With log.retention.ms set on the broker and retention.ms overridden on the topic, the
    topic's retention.ms lists the override, the broker property and the default, in that
    order, with Kafka's source codes; segment.bytes lists only its default. Without
    include_synonyms no synonyms come back; documentation only with include_documentation,
    and config_type always (LONG 5, INT 3, LIST 7)."""
    broker = kafka_broker_factory(log_retention_ms=777000)
    with RawClient(broker.bootstrap) as c:
        _create(c, "syn", False, [{"name": "retention.ms", "value": "1234"}])
        full = _describe_configs(c, 2, "syn", True, True)
        retention = full["retention.ms"]
        assert retention["value"] == "1234" and retention["config_source"] == DYNAMIC_TOPIC_CONFIG
        assert [(s["name"], s["value"], s["source"]) for s in retention["synonyms"]] == [
            ("retention.ms", "1234", DYNAMIC_TOPIC_CONFIG),
            ("log.retention.ms", "777000", STATIC_BROKER_CONFIG),
            ("log.retention.ms", "604800000", DEFAULT_CONFIG),
        ]
        segment = full["segment.bytes"]
        assert [(s["name"], s["source"]) for s in segment["synonyms"]] == [
            ("log.segment.bytes", DEFAULT_CONFIG)
        ]
        assert (retention["config_type"], segment["config_type"]) == (5, 3)
        assert full["cleanup.policy"]["config_type"] == 7
        assert all(e["documentation"] for e in full.values())
        bare = _describe_configs(c, 2, "syn", False, False)
        assert all(e["synonyms"] == [] and e["documentation"] is None for e in bare.values())
        assert bare["retention.ms"]["config_type"] == 5
        # A topic without the override takes the broker's value, sourced STATIC_BROKER_CONFIG.
        _create(c, "syn2", False, [])
        other = _describe_configs(c, 2, "syn2", True, False)["retention.ms"]
        assert (other["value"], other["config_source"]) == ("777000", STATIC_BROKER_CONFIG)
        brokers = _describe_configs(c, 4, "", True, True)
        assert brokers["num.partitions"]["synonyms"][0]["source"] == STATIC_BROKER_CONFIG
        assert brokers["num.partitions"]["config_type"] == 3
        assert brokers["num.partitions"]["documentation"]


# ---- real clients --------------------------------------------------------------------------


def test_confluent_admin_synonyms_cluster_operations_topic_ids_and_max_timestamp(
    kafka_broker: str,
) -> None:
    """confluent-kafka: create_topics, then describe_topics shows the topic id Metadata v12
    serves and the topic's authorized operations; describe_cluster(include_authorized_
    operations) lists the cluster's; describe_configs (librdkafka asks for synonyms) gives
    the override's synonyms with their sources; list_offsets(max_timestamp) finds the exact
    record (offset 4 of a 10-record batch), after producing with explicit timestamps."""
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka import Producer, TopicCollection, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

    admin = AdminClient({"bootstrap.servers": kafka_broker})
    futures = admin.create_topics(
        [NewTopic("ck-new", 1, 1, config={"retention.ms": "3600000"})], operation_timeout=10
    )
    futures["ck-new"].result(15)
    desc = admin.describe_topics(TopicCollection(["ck-new"]), include_authorized_operations=True)[
        "ck-new"
    ].result(15)
    with RawClient(kafka_broker) as c:
        ours = _metadata(c, 12, [{"topic_id": None, "name": "ck-new"}])["topics"][0]["topic_id"]
    msb = desc.topic_id.get_most_significant_bits() & (2**64 - 1)
    lsb = desc.topic_id.get_least_significant_bits() & (2**64 - 1)
    assert uuid.UUID(int=msb << 64 | lsb) == ours
    assert {op.value for op in desc.authorized_operations} == TOPIC_OPS
    cluster = admin.describe_cluster(include_authorized_operations=True).result(15)
    assert {op.value for op in cluster.authorized_operations} == CLUSTER_OPS
    # librdkafka always asks for synonyms (DescribeConfigs v1+ include_synonyms)
    configs = admin.describe_configs([ConfigResource("topic", "ck-new")])
    (entries,) = [f.result(15) for f in configs.values()]
    retention = entries["retention.ms"]
    assert retention.value == "3600000"
    assert retention.source == ck.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    sources = [s.source for s in retention.synonyms.values()]
    assert sources[0] == ck.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert ck.admin.ConfigSource.DEFAULT_CONFIG.value in sources

    p = Producer({"bootstrap.servers": kafka_broker, "linger.ms": 1000, "batch.num.messages": 10})
    for i in range(10):
        p.produce(
            "ck-new", value=b"v%d" % i, partition=0, timestamp=50_000 if i == 4 else 1_000 + i
        )
    assert p.flush(30) == 0
    tp = TopicPartition("ck-new", 0)
    found = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(15)
    assert (found.offset, found.timestamp) == (4, 50_000)
    earliest = admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(15)
    assert earliest.offset == 0


def test_confluent_produce_and_metadata_at_its_newest_versions(kafka_broker: str) -> None:
    """librdkafka negotiates its newest Produce and Metadata versions from our ApiVersions;
    a produce and a full metadata listing work at them and show the topic."""
    pytest.importorskip("confluent_kafka")
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka_broker, "linger.ms": 5})
    errors: list = []
    for i in range(20):
        p.produce("ck-prod", value=b"x%d" % i, on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0 and errors == []
    md = p.list_topics(timeout=10)
    assert "ck-prod" in md.topics and md.topics["ck-prod"].error is None
    with RawClient(kafka_broker) as c:
        part = _list_offsets(c, 10, "ck-prod", -1)
    assert part["offset"] == 20


def test_kafka_python_admin_offsets_and_configs(kafka_broker: str) -> None:
    """kafka-python: list_partition_offsets with MAX_TIMESTAMP (ListOffsets v7+), EARLIEST_LOCAL
    (v8+) and LATEST_TIERED (v9+); the consumer's offsets_for_times; describe_configs with
    synonyms; describe_cluster."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, OffsetSpec

    ts = [7_000 + i for i in range(10)]
    ts[4] = 90_000
    with RawClient(kafka_broker) as c:
        _create(c, "kp", False, [{"name": "retention.ms", "value": "86400000"}])
        c.call(0, 9, produce_body("kp", 0, _batch_with_timestamps(ts, "zstd")))
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker, request_timeout_ms=10000)
    try:
        tp = TopicPartition("kp", 0)
        found = admin.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP})[tp]
        assert (found.offset, found.timestamp) == (4, 90_000)
        assert admin.list_partition_offsets({tp: OffsetSpec.EARLIEST_LOCAL})[tp].offset == 0
        assert admin.list_partition_offsets({tp: OffsetSpec.LATEST_TIERED})[tp].offset == -1
        out = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "kp")], include_synonyms=True
        )
        retention = out["topic"]["kp"]["retention.ms"]
        assert retention["value"] == "86400000"
        assert retention["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert [s["source"] for s in retention["synonyms"]] == [
            "DYNAMIC_TOPIC_CONFIG",
            "DEFAULT_CONFIG",
        ]
        assert admin.describe_cluster()["cluster_id"]
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker, request_timeout_ms=10000)
    try:
        at = consumer.offsets_for_times({tp: 7_003})[tp]
        assert (at.offset, at.timestamp) == (3, 7_003)
        # the first record at or after 7005 is the one stamped 90000, before 7005 itself
        at = consumer.offsets_for_times({tp: 7_005})[tp]
        assert (at.offset, at.timestamp) == (4, 90_000)
    finally:
        consumer.close()


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_metadata_listing(kafka_broker: str) -> None:
    """kcat -L lists the broker and a topic with its partition count."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "kcat-l", 3)
    out = subprocess.run(
        ["kcat", "-b", kafka_broker, "-L", "-t", "kcat-l"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert 'topic "kcat-l" with 3 partitions' in out
    assert "1 brokers" in out


def test_described_groups_carry_the_operations_the_authorizer_allows(kafka_broker_factory) -> None:
    """Tried: DescribeGroups v5 and ConsumerGroupDescribe v0 asking for authorized operations,
    first with the allow-all authorizer, then with a read-only one plugged into the seam.
    Must hold: the bit sets are the authorizer's answers for the group (READ 3, DELETE 6,
    DESCRIBE 8, then READ and DESCRIBE only), and not asking gives -2147483648."""
    background = kafka_broker_factory()
    with RawClient(background.bootstrap) as c:

        def described(api: int, version: int, ask: bool) -> int:
            body = {"groups": ["g-ops"], "include_authorized_operations": ask}
            if api == 69:
                body = {"group_ids": ["g-ops"], "include_authorized_operations": ask}
            return c.call(api, version, body)["groups"][0]["authorized_operations"]

        assert _bits(described(15, 5, True)) == {3, 6, 8}
        assert _bits(described(69, 0, True)) == {3, 6, 8}
        assert described(15, 5, False) == OMITTED
        assert background.broker is not None
        background.broker.services.authorizer = _ReadOnly()
        assert _bits(described(15, 5, True)) == {3, 8}
        assert _bits(described(69, 0, True)) == {3, 8}
