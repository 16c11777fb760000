"""Admin and offset APIs over raw sockets, and topic configs surviving a restart."""

from __future__ import annotations

from broker_helpers import RawClient, batch, create_topic, produce_body

TOPIC_RESOURCE = 2


def _list_offset(c: RawClient, topic: str, ts: int) -> tuple[int, int]:
    resp = c.call(
        2,
        7,
        {
            "replica_id": -1,
            "isolation_level": 1,
            "topics": [
                {
                    "name": topic,
                    "partitions": [
                        {"partition_index": 0, "current_leader_epoch": 0, "timestamp": ts}
                    ],
                }
            ],
        },
    )
    part = resp["topics"][0]["partitions"][0]
    assert part["error_code"] == 0
    return part["offset"], part["timestamp"]


def test_delete_records_and_offset_lookups(kafka_broker: str) -> None:
    from edplog._native import BatchBuilder

    with RawClient(kafka_broker) as c:
        create_topic(c, "dr")
        b = BatchBuilder()
        for ts in (1000, 9000, 3000):
            b.append(b"v", timestamp_ms=ts)
        c.call(0, 9, produce_body("dr", 0, b.build()))
        c.call(0, 9, produce_body("dr", 0, batch([b"later"])))
        assert _list_offset(c, "dr", 2000)[0] == 1
        assert _list_offset(c, "dr", -3)[1] == max(9000, _list_offset(c, "dr", -3)[1])
        resp = c.call(
            21,
            2,
            {
                "topics": [{"name": "dr", "partitions": [{"partition_index": 0, "offset": 3}]}],
                "timeout_ms": 5000,
            },
        )
        part = resp["topics"][0]["partitions"][0]
        assert (part["error_code"], part["low_watermark"]) == (0, 3)
        assert _list_offset(c, "dr", -2)[0] == 3
        resp = c.call(
            21,
            2,
            {
                "topics": [{"name": "dr", "partitions": [{"partition_index": 0, "offset": 99}]}],
                "timeout_ms": 5000,
            },
        )
        assert resp["topics"][0]["partitions"][0]["error_code"] == 1


def test_offset_for_leader_epoch_and_describe_cluster(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "ep")
        c.call(0, 9, produce_body("ep", 0, batch([b"a", b"b"])))
        resp = c.call(
            23,
            4,
            {
                "replica_id": -1,
                "topics": [
                    {
                        "topic": "ep",
                        "partitions": [
                            {"partition": 0, "current_leader_epoch": 0, "leader_epoch": 0}
                        ],
                    }
                ],
            },
        )
        part = resp["topics"][0]["partitions"][0]
        assert (part["error_code"], part["leader_epoch"], part["end_offset"]) == (0, 0, 2)
        resp = c.call(
            23,
            4,
            {
                "replica_id": -1,
                "topics": [
                    {
                        "topic": "ep",
                        "partitions": [
                            {"partition": 0, "current_leader_epoch": 3, "leader_epoch": 0}
                        ],
                    }
                ],
            },
        )
        assert resp["topics"][0]["partitions"][0]["error_code"] == 75  # UNKNOWN_LEADER_EPOCH
        cluster = c.call(
            60, 1, {"include_cluster_authorized_operations": False, "endpoint_type": 1}
        )
        assert cluster["error_code"] == 0
        assert cluster["controller_id"] == cluster["brokers"][0]["broker_id"]


def test_topic_configs_persist_across_restart(kafka_broker_factory, tmp_path) -> None:
    broker = kafka_broker_factory(tmp_path)
    with RawClient(broker.bootstrap) as c:
        create_topic(c, "cfg", partitions=2)
        resp = c.call(
            44,
            1,
            {
                "resources": [
                    {
                        "resource_type": TOPIC_RESOURCE,
                        "resource_name": "cfg",
                        "configs": [
                            {"name": "retention.ms", "config_operation": 0, "value": "123456"},
                            {"name": "cleanup.policy", "config_operation": 2, "value": "compact"},
                        ],
                    }
                ],
                "validate_only": False,
            },
        )
        assert resp["responses"][0]["error_code"] == 0
        bad = c.call(
            44,
            1,
            {
                "resources": [
                    {
                        "resource_type": TOPIC_RESOURCE,
                        "resource_name": "cfg",
                        "configs": [
                            {"name": "no.such.config", "config_operation": 0, "value": "1"}
                        ],
                    }
                ],
                "validate_only": False,
            },
        )
        assert bad["responses"][0]["error_code"] == 40  # INVALID_CONFIG
    broker.stop()
    broker = kafka_broker_factory(tmp_path)
    with RawClient(broker.bootstrap) as c:
        resp = c.call(
            32,
            4,
            {
                "resources": [
                    {
                        "resource_type": TOPIC_RESOURCE,
                        "resource_name": "cfg",
                        "configuration_keys": None,
                    }
                ],
                "include_synonyms": False,
                "include_documentation": False,
            },
        )
        configs = {e["name"]: e for e in resp["results"][0]["configs"]}
        assert configs["retention.ms"]["value"] == "123456"
        assert configs["retention.ms"]["config_source"] == 1
        assert configs["cleanup.policy"]["value"] == "delete,compact"
        assert configs["segment.bytes"]["config_source"] == 5  # DEFAULT_CONFIG
        meta = c.call(
            3,
            12,
            {
                "topics": None,
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False,
            },
        )
        assert {t["name"]: len(t["partitions"]) for t in meta["topics"]}["cfg"] == 2
