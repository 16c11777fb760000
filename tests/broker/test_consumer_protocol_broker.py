"""The consumer protocol's broker settings and durability, over the wire with the raw client:
Kafka's group.consumer.* properties (bounds, assignors, migration policy) and a group that
keeps its epochs across a broker restart."""

from __future__ import annotations

from typing import Any

import pytest
from broker_helpers import RawClient, create_topic

from edplog.broker.config import BrokerConfig
from edplog.errors import ErrorCode, InvalidConfigError
from edplog.testing import start_broker


def _join(group: str, member_id: str, topics: list[str], assignor: str | None = None) -> dict:
    return {
        "group_id": group,
        "member_id": member_id,
        "member_epoch": 0,
        "instance_id": None,
        "rack_id": None,
        "rebalance_timeout_ms": 5000,
        "subscribed_topic_names": topics,
        "subscribed_topic_regex": None,
        "server_assignor": assignor,
        "topic_partitions": [],
    }


def _beat(group: str, member_id: str, epoch: int) -> dict:
    body = _join(group, member_id, [])
    body.update(
        member_epoch=epoch,
        rebalance_timeout_ms=-1,
        subscribed_topic_names=None,
        topic_partitions=None,
    )
    return body


def _partitions(resp: dict) -> list[int]:
    return sorted(p for tp in resp["assignment"]["topic_partitions"] for p in tp["partitions"])


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("group.consumer.migration.policy", "bidirectional"),
        ("group.consumer.migration.policy", "upgrade"),
        ("group.consumer.assignors", "org.apache.kafka.coordinator.group.assignor.Custom"),
        ("group.coordinator.rebalance.protocols", "classic"),
        ("group.coordinator.rebalance.protocols", "classic,consumer,share"),
    ],
)
def test_unimplemented_consumer_settings_are_refused(prop: str, value: str) -> None:
    """Online protocol migration, custom assignors and turning a protocol off (or on the
    share protocol) are not served: refused at start."""
    with pytest.raises(InvalidConfigError, match=prop.replace(".", r"\.")):
        BrokerConfig.from_properties({"log.dirs": "/nonexistent", prop: value})


def test_session_timeout_outside_its_bounds_stops_the_start(tmp_path: Any) -> None:
    """group.consumer.session.timeout.ms below group.consumer.min.session.timeout.ms (45 s
    by default, as in Kafka) is refused when the broker starts."""
    with pytest.raises(RuntimeError) as info:
        start_broker(tmp_path, group_consumer_session_timeout_ms=2000)
    assert "group.consumer.session.timeout.ms" in str(info.value.__cause__)


def test_heartbeat_interval_and_default_assignor_come_from_the_broker(
    kafka_broker_factory: Any,
) -> None:
    """The heartbeat interval answered is the broker's; with group.consumer.assignors=range,
    uniform the range assignor is the default and gives contiguous ranges, and a member may
    ask for uniform instead."""
    broker = kafka_broker_factory(
        group_consumer_heartbeat_interval_ms=700,
        group_consumer_min_heartbeat_interval_ms=100,
        group_consumer_assignors="range,uniform",
    )
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "cp-a", 4)
        first = raw.call(68, 1, _join("g1", "m1", ["cp-a"]))
        assert first["error_code"] == 0 and first["heartbeat_interval_ms"] == 700
        assert _partitions(first) == [0, 1, 2, 3]
        desc = raw.call(69, 1, {"group_ids": ["g1"], "include_authorized_operations": False})
        assert desc["groups"][0]["assignor_name"] == "range"
        raw.call(68, 1, _join("g2", "u1", ["cp-a"], assignor="uniform"))
        desc = raw.call(69, 1, {"group_ids": ["g2"], "include_authorized_operations": False})
        assert desc["groups"][0]["assignor_name"] == "uniform"
        bad = raw.call(68, 1, _join("g3", "x", ["cp-a"], assignor="sticky"))
        assert bad["error_code"] == ErrorCode.UNSUPPORTED_ASSIGNOR


def test_group_epoch_and_member_survive_a_broker_restart(
    kafka_broker_factory: Any, tmp_path
) -> None:
    """A member joins (epoch 1); the broker stops and starts on the same logs; the group is
    described with the same epoch and member, and the member's heartbeat at its epoch is
    accepted without rejoining."""
    broker = kafka_broker_factory(tmp_path)
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "cp-b", 2)
        joined = raw.call(68, 1, _join("gr", "member-1", ["cp-b"]))
        assert joined["member_epoch"] == 1
    broker.stop()
    broker = kafka_broker_factory(tmp_path)
    with RawClient(broker.bootstrap) as raw:
        desc = raw.call(69, 1, {"group_ids": ["gr"], "include_authorized_operations": False})
        group = desc["groups"][0]
        assert group["error_code"] == 0 and group["group_epoch"] == 1
        assert [(m["member_id"], m["member_epoch"]) for m in group["members"]] == [("member-1", 1)]
        again = raw.call(68, 1, _beat("gr", "member-1", 1))
        assert again["error_code"] == 0 and again["member_epoch"] == 1
        listed = raw.call(16, 5, {"states_filter": [], "types_filter": ["consumer"]})
        assert [g["group_id"] for g in listed["groups"]] == ["gr"]


def test_classic_admin_apis_see_consumer_groups_as_kafka_does(kafka_broker_factory: Any) -> None:
    """ListGroups v4 (no type field) lists a consumer-protocol group with protocol type
    ``consumer``; DescribeGroups (classic groups only) answers for it as for an unknown group
    (Dead), while ConsumerGroupDescribe describes it; DeleteGroups of it with a member is
    NON_EMPTY_GROUP."""
    broker = kafka_broker_factory()
    with RawClient(broker.bootstrap) as raw:
        create_topic(raw, "cp-c", 1)
        assert raw.call(68, 1, _join("gc", "m1", ["cp-c"]))["error_code"] == 0
        listed = raw.call(16, 4, {"states_filter": ["stable"]})
        assert [
            (g["group_id"], g["protocol_type"], g["group_state"]) for g in listed["groups"]
        ] == [("gc", "consumer", "Stable")]
        described = raw.call(15, 5, {"groups": ["gc"], "include_authorized_operations": False})
        assert described["groups"][0]["group_state"] == "Dead"
        assert described["groups"][0]["members"] == []
        modern = raw.call(69, 0, {"group_ids": ["gc"], "include_authorized_operations": True})
        assert modern["groups"][0]["group_state"] == "Stable"
        assert modern["groups"][0]["authorized_operations"] != -(2**31)
        deleted = raw.call(42, 2, {"groups_names": ["gc"]})
        assert deleted["results"][0]["error_code"] == ErrorCode.NON_EMPTY_GROUP
