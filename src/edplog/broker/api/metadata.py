"""Discovery APIs: ApiVersions, Metadata, FindCoordinator and DescribeCluster.

This broker is its own controller, coordinator and the leader of every partition; the answers
say so in the shape clients check (a real ``controller_id``, a non-null ``cluster_id``), since
some clients refuse to do admin work without them. A partition that could not be opened is
listed with KAFKA_STORAGE_ERROR and this node in ``offline_replicas``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from ...group import OFFSETS_TOPIC
from ...group.offsets import partition_for
from ...protocol import SUPPORTED
from ...security import Resource, authorized_operations
from ..context import (
    INTERNAL_TOPICS,
    ErrorCode,
    Operation,
    RequestContext,
    Services,
    authorized,
    code_for,
)
from .registry import ApiSpec, top_level_error

log = logging.getLogger(__name__)

Body = dict[str, Any]
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
TRANSACTION_KEY = 1
CLUSTER = Resource("Cluster", "kafka-cluster")
BROKER_ENDPOINTS = 1  # DescribeCluster endpoint_type: 1 brokers, 2 controllers (KIP-919)
CONTROLLER_ENDPOINTS = 2


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


def _broker_list(ctx: RequestContext, services: Services) -> list[Body]:
    if services.cluster is not None:
        # Each broker at its listener of the name the client came on; a broker without one
        # is left out, as Kafka leaves it out.
        out = []
        for b, reg in sorted(services.cluster.cache.snapshot.brokers.items()):
            endpoint = reg.endpoint(ctx.listener)
            if endpoint is not None:
                out.append(
                    {"node_id": b, "host": endpoint[0], "port": endpoint[1], "rack": reg.rack}
                )
        return out
    host, port = services.config.advertised_for(ctx.listener)
    return [{"node_id": services.config.node_id, "host": host, "port": port, "rack": None}]


def _controller_id(services: Services) -> int:
    if services.cluster is not None:
        found = services.cluster.cache.snapshot.controller_id
        return -1 if found is None else found
    return services.config.node_id


def _cluster_partition_entry(services: Services, name: str, index: int) -> Body:
    """A partition as the cluster's state has it: LEADER_NOT_AVAILABLE while it has no
    leader; replicas whose broker is not live are listed as offline."""
    assert services.cluster is not None
    snap = services.cluster.cache.snapshot
    replicas = list(snap.replicas(name, index))
    state = snap.states.get((name, index))
    leader = state.leader if state is not None else -1
    return {
        "error_code": ErrorCode.NONE if leader >= 0 else ErrorCode.LEADER_NOT_AVAILABLE,
        "partition_index": index,
        "leader_id": leader,
        "leader_epoch": state.leader_epoch if state is not None else -1,
        "replica_nodes": replicas,
        "isr_nodes": list(state.isr) if state is not None else [],
        "offline_replicas": [r for r in replicas if r not in snap.brokers],
    }


def _partition_entry(services: Services, name: str, index: int) -> Body:
    if services.cluster is not None:
        return _cluster_partition_entry(services, name, index)
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


def operations_of(ctx: RequestContext, services: Services, resource: Resource) -> int:
    """The authorized-operations bit set of ``resource`` for this request's principal."""
    return authorized_operations(services.authorizer, ctx.principal, ctx.client_host, resource)


def _topic_entry(
    ctx: RequestContext,
    services: Services,
    name: str,
    code: int = ErrorCode.NONE,
    with_operations: bool = False,
) -> Body:
    count = services.replicas.partition_count(name) if code == ErrorCode.NONE else None
    operations = AUTHORIZED_OPERATIONS_OMITTED
    if with_operations and count is not None:
        operations = operations_of(ctx, services, Resource("Topic", name))
    return {
        "error_code": code,
        "name": name,
        "topic_id": services.store.topic_id(name) if count is not None else None,
        "is_internal": name in INTERNAL_TOPICS,
        "partitions": [_partition_entry(services, name, i) for i in range(count or 0)],
        "topic_authorized_operations": operations,
    }


def _name_of_id(services: Services, topic_id: uuid.UUID | None) -> str | None:
    """The topic with this id (Metadata v12+ may name topics by id only), or None."""
    if topic_id is None or topic_id.int == 0:
        return None
    return services.store.topic_name(topic_id)


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
    ops = bool(req.get("include_topic_authorized_operations"))
    if requested is None or (ctx.api_version == 0 and not requested):
        topics = [
            _topic_entry(ctx, services, name, with_operations=ops)
            for name in sorted(services.store.topics())
            if authorized(ctx, services, Operation.DESCRIBE, "Topic", name)
        ]
    else:
        allow = (
            bool(req.get("allow_auto_topic_creation", True)) and services.config.auto_create_topics
        )
        topics = []
        known = services.store.topics()
        for item in requested:
            name = item.get("name")
            if name is None:  # a lookup by topic id (v12+): never creates a topic
                topic_id = item.get("topic_id")
                name = _name_of_id(services, topic_id)
                if name is None:
                    entry = _topic_entry(ctx, services, "", ErrorCode.UNKNOWN_TOPIC_ID)
                    entry["name"], entry["topic_id"] = None, topic_id
                    topics.append(entry)
                    continue
            if not authorized(ctx, services, Operation.DESCRIBE, "Topic", name):
                # Whether it exists stays unsaid.
                refused = ErrorCode.TOPIC_AUTHORIZATION_FAILED
                topics.append(_topic_entry(ctx, services, name, refused))
                continue
            if name in known:
                topics.append(_topic_entry(ctx, services, name, with_operations=ops))
                continue
            creates = allow and (
                authorized(ctx, services, Operation.CREATE, "Cluster", CLUSTER.name)
                or authorized(ctx, services, Operation.CREATE, "Topic", name)
            )
            code = (
                await _auto_create(services, name)
                if creates
                else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            )
            if code == ErrorCode.TOPIC_ALREADY_EXISTS:
                code = ErrorCode.NONE
            topics.append(_topic_entry(ctx, services, name, code, with_operations=ops))
    cluster_ops = AUTHORIZED_OPERATIONS_OMITTED
    if req.get("include_cluster_authorized_operations"):
        cluster_ops = operations_of(ctx, services, CLUSTER)
    return {
        "throttle_time_ms": 0,
        "brokers": _broker_list(ctx, services),
        "cluster_id": services.config.cluster_id,
        "controller_id": _controller_id(services),
        "topics": topics,
        "cluster_authorized_operations": cluster_ops,
        "error_code": ErrorCode.NONE,
    }


GROUP_KEY, SHARE_KEY = 0, 2
TRANSACTIONS_UNSUPPORTED = (
    "transactions are not supported by this broker yet (transactional.id {!r} refused); "
    "use an idempotent producer without a transactional.id"
)


def _coordinator_error(
    services: Services, key: str | None, key_type: int
) -> tuple[ErrorCode, str | None]:
    """The error and message for one coordinator key.

    A transactional id is answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED: every client treats
    it as fatal, so ``init_transactions()`` fails at once instead of retrying the retriable
    COORDINATOR_NOT_AVAILABLE for minutes; the message says why. Share groups (key type 2)
    are not served either.
    """
    if key_type == TRANSACTION_KEY:
        log.warning("FindCoordinator: %s", TRANSACTIONS_UNSUPPORTED.format(key))
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, TRANSACTIONS_UNSUPPORTED.format(key)
    if key_type == SHARE_KEY:
        return ErrorCode.INVALID_REQUEST, "share groups are not supported by this broker"
    if key_type != GROUP_KEY:
        return ErrorCode.INVALID_REQUEST, f"unknown coordinator key type {key_type}"
    groups = services.groups
    if services.cluster is not None:
        ok = groups is not None and bool(key)
        return (ErrorCode.NONE if ok else ErrorCode.COORDINATOR_NOT_AVAILABLE), None
    if groups is None or not groups.find_coordinator_key_ok(key or "", key_type):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
    return ErrorCode.NONE, None


def _coordinator_in_cluster(
    services: Services, key: str, listener: str
) -> tuple[int, str, int] | None:
    """The leader of the group's partition of __consumer_offsets: (node id, host, port) of
    its ``listener``, or None while there is none (the topic is created here at the first
    ask, as Kafka does)."""
    assert services.cluster is not None and services.groups is not None
    snap = services.cluster.cache.snapshot
    assignment = snap.topics.get(OFFSETS_TOPIC)
    if assignment is None:
        if services.groups.leadership is not None:
            services.groups.leadership.request_topic()
        return None
    state = snap.states.get((OFFSETS_TOPIC, partition_for(key, len(assignment.partitions))))
    leader = snap.brokers.get(state.leader) if state is not None else None
    endpoint = leader.endpoint(listener) if leader is not None else None
    if leader is None or endpoint is None:
        return None
    return leader.broker_id, *endpoint


def _coordinator(ctx: RequestContext, services: Services, key: str, key_type: int) -> Body:
    code, message = _coordinator_error(services, key, key_type)
    host, port = services.config.advertised_for(ctx.listener)
    node = services.config.node_id
    if code == ErrorCode.NONE and services.cluster is not None:
        found = _coordinator_in_cluster(services, key, ctx.listener)
        if found is None:
            code = ErrorCode.COORDINATOR_NOT_AVAILABLE
        else:
            node, host, port = found
    if code != ErrorCode.NONE:
        node, host, port = -1, "", -1
    return {
        "key": key,
        "node_id": node,
        "host": host,
        "port": port,
        "error_code": code,
        "error_message": message,
    }


async def find_coordinator(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Every group is coordinated by this broker (unless its offsets partition is offline).

    v4+ batch their keys (``coordinator_keys``), each answered with its own error; v0-3 name
    one key and answer at the top level.
    """
    key_type = req.get("key_type", 0)
    if ctx.api_version >= 4:
        keys = list(req.get("coordinator_keys") or ())
        return {
            "throttle_time_ms": 0,
            "coordinators": [_coordinator(ctx, services, k, key_type) for k in keys],
        }
    one = _coordinator(ctx, services, req.get("key") or "", key_type)
    return {
        "throttle_time_ms": 0,
        "error_code": one["error_code"],
        "error_message": one["error_message"],
        "node_id": one["node_id"],
        "host": one["host"],
        "port": one["port"],
        "coordinators": [],
    }


async def describe_cluster(ctx: RequestContext, services: Services, req: Body) -> Body:
    """This broker (never fenced: it is the whole cluster). Asked for the controllers'
    endpoints (v1 endpoint_type 2), a broker answers MISMATCHED_ENDPOINT_TYPE, as Kafka's
    brokers do: controller endpoints are asked of a controller listener."""
    host, port = services.config.advertised_for(ctx.listener)
    endpoint_type = req.get("endpoint_type", BROKER_ENDPOINTS)
    if endpoint_type != BROKER_ENDPOINTS:
        code = (
            ErrorCode.MISMATCHED_ENDPOINT_TYPE
            if endpoint_type == CONTROLLER_ENDPOINTS
            else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
        )
        return {
            "throttle_time_ms": 0,
            "error_code": code,
            "error_message": f"this listener serves broker endpoints, not type {endpoint_type}",
            "endpoint_type": endpoint_type,
            "cluster_id": services.config.cluster_id,
            "controller_id": -1,
            "brokers": [],
            "cluster_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
        }
    cluster_ops = AUTHORIZED_OPERATIONS_OMITTED
    if req.get("include_cluster_authorized_operations"):
        cluster_ops = operations_of(ctx, services, CLUSTER)
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "endpoint_type": BROKER_ENDPOINTS,
        "cluster_id": services.config.cluster_id,
        "controller_id": _controller_id(services),
        "brokers": [
            {
                "broker_id": b["node_id"],
                "host": b["host"],
                "port": b["port"],
                "rack": b["rack"],
                "is_fenced": False,
            }
            for b in _broker_list(ctx, services)
        ],
        "cluster_authorized_operations": cluster_ops,
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
