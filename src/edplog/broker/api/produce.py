"""Produce and InitProducerId: the write path.

Produce v13 names topics by id (KIP-516): the id is resolved to the topic once per topic of
the request, and an id no topic has gets UNKNOWN_TOPIC_ID for each of its partitions.

Each partition's records field arrives as a memoryview into the request frame and goes to the
native core in one call (through the replica manager and the partition), which validates every
batch, rewrites offsets and the leader epoch in place and writes it: no Python object per
batch or record. ``acks=-1`` is answered after the data is on disk; concurrent ``acks=-1``
requests share one flush (group commit).
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

from ..context import ErrorCode, Operation, RequestContext, Services, authorized
from .registry import ApiSpec, top_level_error

Body = dict[str, Any]
TOPIC_IDS_FROM = 13  # Produce v13 names topics by id
# KIP-951 (Produce v10+): a partition refused for one of these errors carries the leader this
# broker knows, and the response the endpoints of the brokers named, so a client can redirect
# without a Metadata round trip. Only on these errors: the fields cost nothing otherwise.
_LEADER_ERRORS = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH})


def _partition_result(index: int, code: int = ErrorCode.NONE) -> Body:
    return {
        "index": index,
        "error_code": code,
        "base_offset": -1,
        "log_append_time_ms": -1,
        "log_start_offset": -1,
        "record_errors": [],
        "error_message": None,
    }


def produce_error(req: Body, code: ErrorCode) -> Body:
    """A Produce response giving ``code`` for every partition of the request."""
    return {
        "responses": [
            {
                "name": t.get("name"),
                "topic_id": t.get("topic_id"),
                "partition_responses": [
                    _partition_result(p["index"], code) for p in t["partition_data"]
                ],
            }
            for t in req["topic_data"]
        ],
        "throttle_time_ms": 0,
    }


def produce(
    ctx: RequestContext, services: Services, req: Body
) -> Body | None | Coroutine[Any, Any, Body]:
    """Append each partition's batches; answer per partition (nothing at all for acks=0).

    Runs in the request's dispatch, so requests pipelined on one connection are appended in
    the order they were sent (idempotent producers rely on it) and acks=0/1 need no task.
    For acks=-1 the result is a coroutine that answers once the data is flushed.
    """
    acks = req["acks"]
    if acks not in (0, 1, -1):
        return produce_error(req, ErrorCode.INVALID_REQUIRED_ACKS)
    if req.get("transactional_id") is not None:
        return produce_error(req, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    replicas = services.replicas
    now_ms = int(time.time() * 1000)
    responses = []
    durable: list[tuple[Any, Any]] = []
    results: list[tuple[Body, Any]] = []
    moved: list[tuple[Body, str, int]] | None = None  # made only on the leadership errors
    metrics = services.metrics
    acls = services.acls
    for topic in req["topic_data"]:
        name = topic["name"]
        topic_id = None
        if not name:  # v13 names topics by id (its decoded name is ""); no topic name is empty
            topic_id = topic.get("topic_id")
            name = services.store.topic_name(topic_id) if topic_id is not None else None
            if name is None:
                responses.append(_unknown_id(ctx, topic))
                continue
        if acls is not None and not authorized(ctx, services, Operation.WRITE, "Topic", name):
            responses.append(_refused(topic, name, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            continue
        partition_responses = []
        for pdata in topic["partition_data"]:
            records = pdata["records"]
            result, log = replicas.append(name, pdata["index"], records, now_ms, acks)
            body = _partition_result(pdata["index"], result.error)
            partition_responses.append(body)
            results.append((body, result))
            if result.error == ErrorCode.NONE:
                metrics.bytes_in(name, len(records))
            else:
                metrics.produce_error(result.error)
                if result.error in _LEADER_ERRORS:
                    moved = moved or []
                    moved.append((body, name, pdata["index"]))
            if log is not None and acks == -1:
                durable.append((log, result))
        entry = {"name": name, "partition_responses": partition_responses}
        if topic_id is not None:
            entry["topic_id"] = topic_id
        responses.append(entry)
    if acks == 0:
        return None
    response = {"responses": responses, "throttle_time_ms": 0}
    if moved:
        _point_to_leaders(ctx, services, response, moved)
    if replicas.must_wait(durable):
        return _after_flush(services, response, results, durable, req.get("timeout_ms", 30_000))
    _fill(results)
    return response


def _refused(topic: Body, name: str, code: ErrorCode) -> Body:
    """``code`` for every partition of ``topic`` (nothing of it appended)."""
    entry = {
        "name": name,
        "partition_responses": [
            _partition_result(p["index"], code) for p in topic["partition_data"]
        ],
    }
    if topic.get("topic_id") is not None:
        entry["topic_id"] = topic["topic_id"]
    return entry


def _unknown_id(ctx: RequestContext, topic: Body) -> Body:
    """The answer for a topic no topic id or name finds (an empty name before v13)."""
    by_id = ctx.api_version >= TOPIC_IDS_FROM
    code = ErrorCode.UNKNOWN_TOPIC_ID if by_id else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    return {
        "name": topic.get("name"),
        "topic_id": topic.get("topic_id"),
        "partition_responses": [
            _partition_result(p["index"], code) for p in topic["partition_data"]
        ],
    }


def _point_to_leaders(
    ctx: RequestContext, services: Services, response: Body, moved: list[tuple[Body, str, int]]
) -> None:
    """current_leader of each partition refused for leadership, and node_endpoints."""
    leaders = set()
    if services.cluster is not None:
        _point_to_cluster_leaders(services, response, moved, ctx.listener)
        return
    for body, name, index in moved:
        try:
            partition = services.replicas.partition(name, index)
        except Exception:
            partition = None
        if partition is None:
            continue
        body["current_leader"] = {
            "leader_id": partition.leader_id,
            "leader_epoch": partition.leader_epoch,
        }
        leaders.add(partition.leader_id)
    host, port = services.config.advertised_for(ctx.listener)
    node = services.config.node_id
    if node in leaders:
        response["node_endpoints"] = [{"node_id": node, "host": host, "port": port, "rack": None}]


def _point_to_cluster_leaders(
    services: Services, response: Body, moved: list[tuple[Body, str, int]], listener: str
) -> None:
    """KIP-951 in a cluster: the leader the cluster's state names, and its endpoint."""
    assert services.cluster is not None
    snap = services.cluster.cache.snapshot
    endpoints = {}
    for body, name, index in moved:
        state = snap.states.get((name, index))
        if state is None or state.leader < 0:
            continue
        body["current_leader"] = {"leader_id": state.leader, "leader_epoch": state.leader_epoch}
        reg = snap.brokers.get(state.leader)
        endpoint = reg.endpoint(listener) if reg is not None else None
        if reg is not None and endpoint is not None:
            endpoints[state.leader] = {
                "node_id": state.leader,
                "host": endpoint[0],
                "port": endpoint[1],
                "rack": reg.rack,
            }
    if endpoints:
        response["node_endpoints"] = [endpoints[b] for b in sorted(endpoints)]


def _fill(results: list[tuple[Body, Any]]) -> None:
    for body, result in results:
        body["error_code"] = result.error
        body["base_offset"] = result.base_offset
        body["log_append_time_ms"] = result.log_append_time_ms
        body["log_start_offset"] = result.log_start_offset
        body["error_message"] = result.message


async def _after_flush(
    services: Services,
    response: Body,
    results: list[tuple[Body, Any]],
    durable: list[tuple[Any, Any]],
    timeout_ms: int,
) -> Body:
    await services.replicas.wait_durable(durable, timeout_ms)
    for _, result in durable:
        if result.error != ErrorCode.NONE:
            services.metrics.produce_error(result.error)
    _fill(results)
    return response


async def init_producer_id(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Give an idempotent producer an id (or bump the epoch of the one it presents).

    Transactions are not served yet, so a transactional id is refused with a fatal error
    rather than a retriable one that would make the client spin.
    """
    body: Body = {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "producer_id": -1,
        "producer_epoch": -1,
        "ongoing_txn_producer_id": -1,
        "ongoing_txn_producer_epoch": -1,
    }
    if req.get("transactional_id") is not None:
        if req.get("transaction_timeout_ms", 0) > services.config.transaction_max_timeout_ms:
            body["error_code"] = ErrorCode.INVALID_TRANSACTION_TIMEOUT
        else:
            body["error_code"] = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        return body
    pid, epoch = req.get("producer_id", -1), req.get("producer_epoch", -1)
    if pid is not None and pid >= 0 and epoch is not None and 0 <= epoch < 32766:
        body["producer_id"], body["producer_epoch"] = pid, epoch + 1
    else:
        body["producer_id"], body["producer_epoch"] = await services.producer_ids.allocate(), 0
    return body


APIS = [
    ApiSpec(0, produce, produce_error, inline=True),
    ApiSpec(
        22,
        init_producer_id,
        top_level_error(
            {
                "producer_id": -1,
                "producer_epoch": -1,
                "ongoing_txn_producer_id": -1,
                "ongoing_txn_producer_epoch": -1,
            }
        ),
    ),
]
