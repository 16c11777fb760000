"""Fetch: the read path.

A Fetch response is assembled from index lookups only: each partition's records field is a
list of ``FileRegion`` (file, position, length) slices of segment files that the connection
sends with ``sendfile``. Long polls park on the partitions' append waiters and on the broker's
shutdown, so they end as soon as enough data arrives, the wait expires, or the broker stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from ..context import (
    CachedPartition,
    ErrorCode,
    FetchContext,
    FetchSessionCache,
    Key,
    Operation,
    RequestContext,
    Services,
    authorized,
)
from .registry import ApiSpec

Body = dict[str, Any]
READ_COMMITTED = 1


def replica_epoch_of(req: Body) -> int:
    """The fetching follower's broker epoch (KIP-903, ``replica_state`` from v15), or -1."""
    state = req.get("replica_state")
    if isinstance(state, dict):
        return int(state.get("replica_epoch", -1))
    return -1


def replica_id_of(req: Body) -> int:
    """The fetching replica: -1 for a consumer (``replica_state`` from v15, else the field)."""
    state = req.get("replica_state")
    if isinstance(state, dict) and state.get("replica_id", -1) >= 0:
        return int(state["replica_id"])
    rid = req.get("replica_id", -1)
    return -1 if rid is None else int(rid)


def _partition_data(index: int, code: int, isolation: int) -> Body:
    return {
        "partition_index": index,
        "error_code": code,
        "high_watermark": -1,
        "last_stable_offset": -1,
        "log_start_offset": -1,
        "aborted_transactions": [] if isolation == READ_COMMITTED else None,
        "preferred_read_replica": -1,
        "records": b"",
    }


def fetch_error(req: Body, code: ErrorCode) -> Body:
    """A Fetch response giving ``code`` for every partition of the request."""
    isolation = req.get("isolation_level", 0)
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "session_id": 0,
        "responses": [
            {
                "topic": t.get("topic"),
                "topic_id": t.get("topic_id"),
                "partitions": [
                    _partition_data(p["partition"], code, isolation) for p in t["partitions"]
                ],
            }
            for t in req["topics"]
        ],
    }


def _session_error(code: ErrorCode) -> Body:
    """A top-level session error: no partitions, no session."""
    return {"throttle_time_ms": 0, "error_code": code, "session_id": 0, "responses": []}


def _sessions(services: Services) -> FetchSessionCache:
    if services.fetch_sessions is None:  # Services built without one: sessions need a slot
        config = services.config
        services.fetch_sessions = FetchSessionCache(
            config.fetch_session_cache_slots,
            config.fetch_session_eviction_ms,
            services.store,
            services.metrics,
        )
    return services.fetch_sessions


def _wanted(req: Body, uses_ids: bool) -> list[CachedPartition]:
    """The request's partitions (their topic names already resolved), as session entries."""
    wanted: list[CachedPartition] = []
    for t in req["topics"]:
        tid = t["topic_id"] if uses_ids else None
        wanted.extend(CachedPartition(tid, t["topic"], p) for p in t["partitions"])
    return wanted


def _forgotten(req: Body, uses_ids: bool) -> list[Key]:
    return [
        (ft["topic_id"] if uses_ids else ft["topic"], p)
        for ft in req.get("forgotten_topics_data") or ()
        for p in ft["partitions"]
    ]


def _session_read(req: Body, parts: list[CachedPartition]) -> Body:
    """A session's partitions, grouped by consecutive topic, as ``ReplicaManager.read`` takes
    them (they are read in the session's order)."""
    topics: list[Body] = []
    last: Any = object()
    for part in parts:
        key = (part.topic_id, part.topic)
        if key != last:
            topics.append({"topic": part.topic, "topic_id": part.topic_id, "partitions": []})
            last = key
        topics[-1]["partitions"].append(part.req)
    return {
        "isolation_level": req.get("isolation_level", 0),
        "max_bytes": req.get("max_bytes"),
        "topics": topics,
    }


def fetch(ctx: RequestContext, services: Services, req: Body) -> Body | Coroutine[Any, Any, Body]:
    """Answer at once if ``min_bytes`` are there (or a partition failed): the body, built
    without a task or an event-loop round. Otherwise a coroutine: the long poll, or first the
    CRC check of segment regions never verified since a clean start (off the event loop).

    The session (KIP-227) is settled first: a full fetch reads the request's partitions (and
    may open a session holding them), an incremental one all of its session's, of which the
    response carries only those with news (``FetchSessionCache.select``)."""
    loop = asyncio.get_running_loop()
    replicas = services.replicas
    max_wait_s = max(0, req.get("max_wait_ms", 0) or 0) / 1000.0
    min_bytes = req.get("min_bytes", 1) or 0
    deadline = loop.time() + max_wait_s
    replica_id = replica_id_of(req)
    replica_epoch = replica_epoch_of(req)
    uses_ids = ctx.api_version >= 13
    sessions = _sessions(services)
    name_of = sessions.topic_ids.resolver() if uses_ids else None
    if name_of is not None:
        for t in req["topics"]:
            t["topic"] = name_of(t["topic_id"])
    epoch = -1 if req.get("session_epoch") is None else req["session_epoch"]
    incremental = epoch > 0
    fctx = sessions.context(
        req.get("session_id", 0) or 0,
        epoch,
        uses_ids,
        _wanted(req, uses_ids) if incremental else [],
        _forgotten(req, uses_ids) if incremental else [],
        int(loop.time() * 1000),
    )
    if fctx.error:
        return _session_error(fctx.error)
    if incremental:
        if name_of is not None:
            for part in fctx.partitions:  # a session's topic may have been deleted since
                part.topic = name_of(part.topic_id) if part.topic_id is not None else None
        read_req = _session_read(req, fctx.partitions)
    else:
        read_req = req

    def read_once() -> tuple[Body, Any]:
        body = fetch_error(read_req, ErrorCode.NONE)
        if services.acls is None or replica_id >= 0:  # a replica was judged by the dispatch
            read = replicas.read(
                read_req, replica_id, [t["partitions"] for t in body["responses"]], replica_epoch
            )
        else:
            read = _read_authorized(ctx, services, read_req, body, replica_id, replica_epoch)
        if uses_ids:
            for t in body["responses"]:
                if t["topic"] is None:
                    for p in t["partitions"]:
                        p["error_code"] = ErrorCode.UNKNOWN_TOPIC_ID
        return body, read

    def finish(body: Body, total: int) -> Body:
        results = [p for t in body["responses"] for p in t["partitions"]]
        if fctx.create:
            body["session_id"] = sessions.open(
                _wanted(req, uses_ids),
                results,
                replica_id >= 0,
                uses_ids,
                int(loop.time() * 1000),
            )
        elif incremental:
            body = _chosen(body, fctx, sessions.select(fctx, results), results)
        return _counted(services, body, total)

    def satisfied(read: Any) -> bool:
        return bool(read.total_bytes >= min_bytes or read.failed)

    async def read_verified() -> tuple[Body, Any]:
        body, read = read_once()
        for _ in range(3):  # each round verifies what the last one found
            if not read.unverified:
                break
            await replicas.verify(read.unverified)
            body, read = read_once()
        return body, read

    async def again() -> tuple[bool, Body | None, list[Any]]:
        body, read = await read_verified()
        done = satisfied(read)
        if done or not read.partitions or replicas.closing or loop.time() >= deadline:
            return done, finish(body, read.total_bytes), read.partitions
        return done, None, read.partitions

    async def verified_first() -> Body:
        body, read = await read_verified()
        if satisfied(read) or max_wait_s <= 0 or not read.partitions or replicas.closing:
            return finish(body, read.total_bytes)
        result: Body = await replicas.long_poll(read.partitions, deadline, again)
        return result

    body, read = read_once()
    if read.unverified:
        return verified_first()
    if satisfied(read) or max_wait_s <= 0 or not read.partitions or replicas.closing:
        return finish(body, read.total_bytes)
    return replicas.long_poll(read.partitions, deadline, again)


def _read_authorized(
    ctx: RequestContext,
    services: Services,
    read_req: Body,
    body: Body,
    replica_id: int,
    replica_epoch: int,
) -> Any:
    """Read the topics the consumer may Read; the others answer TOPIC_AUTHORIZATION_FAILED
    (checked on every fetch, so a session's partitions lose access as soon as an ACL goes)."""
    allowed_topics, results = [], []
    for topic, answer in zip(read_req["topics"], body["responses"], strict=True):
        name = topic["topic"]
        if name is None or authorized(ctx, services, Operation.READ, "Topic", name):
            allowed_topics.append(topic)
            results.append(answer["partitions"])
        else:
            for p in answer["partitions"]:
                p["error_code"] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    return services.replicas.read(
        {**read_req, "topics": allowed_topics}, replica_id, results, replica_epoch
    )


def _chosen(body: Body, fctx: FetchContext, chosen: list[int], results: list[Body]) -> Body:
    """An incremental response: only the ``chosen`` partitions, grouped by consecutive topic."""
    responses: list[Body] = []
    last: Any = object()
    for i in chosen:
        part = fctx.partitions[i]
        key = (part.topic_id, part.topic)
        if key != last:
            responses.append({"topic": part.topic, "topic_id": part.topic_id, "partitions": []})
            last = key
        responses[-1]["partitions"].append(results[i])
    body["responses"] = responses
    body["session_id"] = fctx.session.id if fctx.session is not None else 0
    return body


def _counted(services: Services, body: Body, total: int) -> Body:
    """Record the bytes sent per topic and the partition errors by code."""
    metrics = services.metrics
    for topic in body["responses"]:
        for p in topic["partitions"]:
            if p["error_code"]:
                metrics.fetch_error(p["error_code"])
            regions = p["records"]
            if total and regions:
                metrics.bytes_out(topic["topic"], sum(r.length for r in regions))
    return body


APIS = [ApiSpec(1, fetch, fetch_error, inline=True)]
