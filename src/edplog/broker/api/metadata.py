"""Discovery APIs: ApiVersions, Metadata, FindCoordinator and DescribeCluster.

This broker is its own controller, coordinator and the leader of every partition; the answers
say so in the shape clients check (a real ``controller_id``, a non-null ``cluster_id``), since
some clients refuse to do admin work without them. A partition that could not be opened is
listed with KAFKA_STORAGE_ERROR and this node in ``offline_replicas``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...protocol import SUPPORTED
from ..context import INTERNAL_TOPICS, ErrorCode, RequestContext, Services, code_for
from .registry import ApiSpec, top_level_error

Body = dict[str, Any]
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
TRANSACTION_KEY = 1


async def api_versions(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Exactly the ranges in ``edplog.protocol.SUPPORTED`` (the rejected low versions are
    advertised on purpose: old librdkafka enables features by testing for them)."""
    return {
        "error_code": ErrorCode.NONE,
        "api_keys": [
            {"api_key": key, "min_version": lo, "max_version": hi}
            for key, (lo, hi) in sorted(SUPPORTED.items())
        ],
        "throttle_time_ms": 0,
    }


def _broker_list(services: Services) -> list[Body]:
    host, port = services.config.advertised
    return [{"node_id": services.config.node_id, "host": host, "port": port, "rack": None}]


def _partition_entry(services: Services, name: str, index: int) -> Body:
    node = services.config.node_id
    entry: Body = {
        "error_code": ErrorCode.NONE,
        "partition_index": index,
        "leader_id": node,
        "leader_epoch": 0,
        "replica_nodes": [node],
        "isr_nodes": [node],
        "offline_replicas": [],
    }
    try:
        partition = services.replicas.partition(name, index)
    except Exception as exc:
        entry["error_code"] = code_for(exc)
        entry["offline_replicas"] = [node]
        return entry
    if partition is not None:
        entry["leader_id"] = partition.leader_id
        entry["leader_epoch"] = partition.leader_epoch
        entry["replica_nodes"] = list(partition.replicas)
        entry["isr_nodes"] = list(partition.isr)
    return entry


def _topic_entry(services: Services, name: str, code: int = ErrorCode.NONE) -> Body:
    count = services.replicas.partition_count(name) if code == ErrorCode.NONE else None
    return {
        "error_code": code,
        "name": name,
        "topic_id": services.store.topic_id(name) if count is not None else None,
        "is_internal": name in INTERNAL_TOPICS,
        "partitions": [_partition_entry(services, name, i) for i in range(count or 0)],
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def _name_of_id(services: Services, topic_id: object) -> str | None:
    for name in services.store.topics():
        if services.store.topic_id(name) == topic_id:
            return name
    return None


async def _auto_create(services: Services, name: str) -> int:
    """Create ``name`` with the broker defaults (off the event loop: it is disk work); the
    error code (0 when created)."""
    try:
        await asyncio.get_running_loop().run_in_executor(
            None, services.store.create_topic, name, services.config.num_partitions
        )
    except Exception as exc:
        return code_for(exc)
    return ErrorCode.NONE


async def metadata(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Brokers, controller, and topics (all of them when the request names none)."""
    requested = req.get("topics")
    if requested is None or (ctx.api_version == 0 and not requested):
        topics = [_topic_entry(services, name) for name in sorted(services.store.topics())]
    else:
        allow = (
            bool(req.get("allow_auto_topic_creation", True)) and services.config.auto_create_topics
        )
        topics = []
        known = services.store.topics()
        for item in requested:
            name = item.get("name")
            if name is None:  # a lookup by topic id (v10+), as consumer-protocol clients do
                name = _name_of_id(services, item.get("topic_id"))
                if name is None:
                    entry = _topic_entry(services, "", ErrorCode.UNKNOWN_TOPIC_ID)
                    entry["name"], entry["topic_id"] = None, item.get("topic_id")
                    topics.append(entry)
                    continue
            if name in known:
                topics.append(_topic_entry(services, name))
                continue
            code = (
                await _auto_create(services, name)
                if allow
                else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            )
            if code == ErrorCode.TOPIC_ALREADY_EXISTS:
                code = ErrorCode.NONE
            topics.append(_topic_entry(services, name, code))
    return {
        "throttle_time_ms": 0,
        "brokers": _broker_list(services),
        "cluster_id": services.config.cluster_id,
        "controller_id": services.config.node_id,
        "topics": topics,
        "cluster_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
        "error_code": ErrorCode.NONE,
    }


def _coordinator_error(services: Services, key: str | None, key_type: int) -> ErrorCode:
    groups = services.groups
    if key_type == TRANSACTION_KEY or groups is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE  # no transaction coordinator yet
    if not groups.find_coordinator_key_ok(key or "", key_type):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    return ErrorCode.NONE


async def find_coordinator(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Every group is coordinated by this broker (unless its offsets partition is offline)."""
    host, port = services.config.advertised
    node = services.config.node_id
    key_type = req.get("key_type", 0)
    keys = req.get("coordinator_keys") or [req.get("key")]
    first = _coordinator_error(services, keys[0], key_type)
    return {
        "throttle_time_ms": 0,
        "error_code": first,
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
                "error_code": _coordinator_error(services, k, key_type),
                "error_message": None,
            }
            for k in keys
            if k is not None
        ],
    }


async def describe_cluster(ctx: RequestContext, services: Services, req: Body) -> Body:
    host, port = services.config.advertised
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "endpoint_type": 1,
        "cluster_id": services.config.cluster_id,
        "controller_id": services.config.node_id,
        "brokers": [
            {
                "broker_id": services.config.node_id,
                "host": host,
                "port": port,
                "rack": None,
                "is_fenced": False,
            }
        ],
        "cluster_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def _metadata_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "brokers": [],
        "cluster_id": None,
        "controller_id": -1,
        "topics": [
            {
                "error_code": code,
                "name": t.get("name") or "",
                "topic_id": None,
                "is_internal": False,
                "partitions": [],
                "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
            }
            for t in req.get("topics") or ()
        ],
        "cluster_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
        "error_code": code,
    }


def _coordinator_error_body(req: Body, code: ErrorCode) -> Body:
    keys = req.get("coordinator_keys") or [req.get("key")]
    return {
        "throttle_time_ms": 0,
        "error_code": code,
        "error_message": None,
        "node_id": -1,
        "host": "",
        "port": -1,
        "coordinators": [
            {"key": k, "node_id": -1, "host": "", "port": -1, "error_code": code}
            for k in keys
            if k is not None
        ],
    }


APIS = [
    ApiSpec(18, api_versions, top_level_error({"api_keys": []})),
    ApiSpec(3, metadata, _metadata_error),
    ApiSpec(10, find_coordinator, _coordinator_error_body),
    ApiSpec(60, describe_cluster, top_level_error({"brokers": [], "cluster_id": ""})),
]
