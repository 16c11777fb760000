"""Discovery APIs: ApiVersions, Metadata, FindCoordinator and DescribeCluster.

This broker is its own controller, coordinator and the leader of every partition; the
answers say so in the shape clients check (a real ``controller_id``, a non-null
``cluster_id``, leader epoch 0), since some clients refuse to do admin work without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol import SUPPORTED, RequestHeader
from .errors import (
    NONE,
    UNKNOWN_TOPIC_OR_PARTITION,
    error_code,
)

if TYPE_CHECKING:
    from .server import Broker

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)


async def handle_api_versions(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Exactly the ranges in ``edplog.protocol.SUPPORTED`` (the rejected low versions are
    advertised on purpose: old librdkafka enables features by testing for them)."""
    return {
        "error_code": NONE,
        "api_keys": [
            {"api_key": key, "min_version": lo, "max_version": hi}
            for key, (lo, hi) in sorted(SUPPORTED.items())
        ],
        "throttle_time_ms": 0,
    }


def _broker_list(broker: Broker) -> list[dict[str, Any]]:
    host, port = broker.config.advertised
    return [{"node_id": broker.config.node_id, "host": host, "port": port, "rack": None}]


def _topic_entry(broker: Broker, name: str, code: int = NONE) -> dict[str, Any]:
    parts = broker.partitions(name) if code == NONE else None
    partitions = [
        {
            "error_code": NONE,
            "partition_index": p.index,
            "leader_id": p.leader_id,
            "leader_epoch": p.leader_epoch,
            "replica_nodes": list(p.replicas),
            "isr_nodes": list(p.isr),
            "offline_replicas": [],
        }
        for p in parts or ()
    ]
    topic_id = broker.store.topic_id(name) if parts is not None else None
    return {
        "error_code": code,
        "name": name,
        "topic_id": topic_id,
        "is_internal": name in INTERNAL_TOPICS,
        "partitions": partitions,
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def auto_create(broker: Broker, name: str) -> int:
    """Create ``name`` with the broker defaults; the error code (0 when created)."""
    try:
        broker.store.create_topic(name, broker.config.num_partitions)
    except Exception as exc:
        return error_code(exc)
    return NONE


async def handle_metadata(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Brokers, controller, and topics (all of them when the request names none)."""
    requested = req.get("topics")
    if requested is None or (header.api_version == 0 and not requested):
        names = sorted(broker.store.topics())
        topics = [_topic_entry(broker, name) for name in names]
    else:
        allow = (
            bool(req.get("allow_auto_topic_creation", True)) and broker.config.auto_create_topics
        )
        topics = []
        known = broker.store.topics()
        for item in requested:
            name = item.get("name")
            if name is None:  # a topic id lookup: ids are not served yet
                topics.append(_topic_entry(broker, "", UNKNOWN_TOPIC_OR_PARTITION))
                continue
            if name in known:
                topics.append(_topic_entry(broker, name))
                continue
            code = auto_create(broker, name) if allow else UNKNOWN_TOPIC_OR_PARTITION
            topics.append(_topic_entry(broker, name, NONE if code == 36 else code))
    return {
        "throttle_time_ms": 0,
        "brokers": _broker_list(broker),
        "cluster_id": broker.config.cluster_id,
        "controller_id": broker.config.node_id,
        "topics": topics,
        "cluster_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
        "error_code": NONE,
    }


async def handle_find_coordinator(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Every group (and transactional id) is coordinated by this broker."""
    host, port = broker.config.advertised
    node = broker.config.node_id
    keys = req.get("coordinator_keys") or [req.get("key")]
    code = NONE
    coord = broker.coordinator
    if coord is None or not coord.find_coordinator_key_ok(keys[0] or "", req.get("key_type", 0)):
        code = 15  # COORDINATOR_NOT_AVAILABLE: no transaction coordinator yet
    return {
        "throttle_time_ms": 0,
        "error_code": code,
        "error_message": None,
        "node_id": node,
        "host": host,
        "port": port,
        "coordinators": [
            {
                "key": k,
                "node_id": node,
                "host": host,
                "port": port,
                "error_code": code,
                "error_message": None,
            }
            for k in keys
            if k is not None
        ],
    }


async def handle_describe_cluster(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    host, port = broker.config.advertised
    return {
        "throttle_time_ms": 0,
        "error_code": NONE,
        "error_message": None,
        "endpoint_type": 1,
        "cluster_id": broker.config.cluster_id,
        "controller_id": broker.config.node_id,
        "brokers": [
            {
                "broker_id": broker.config.node_id,
                "host": host,
                "port": port,
                "rack": None,
                "is_fenced": False,
            }
        ],
        "cluster_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


HANDLERS = {
    18: handle_api_versions,
    3: handle_metadata,
    10: handle_find_coordinator,
    60: handle_describe_cluster,
}
