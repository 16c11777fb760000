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

from ..context import ErrorCode, RequestContext, Services
from .registry import ApiSpec

Body = dict[str, Any]
READ_COMMITTED = 1


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
                "partitions": [
                    _partition_data(p["partition"], code, isolation) for p in t["partitions"]
                ],
            }
            for t in req["topics"]
        ],
    }


def fetch(ctx: RequestContext, services: Services, req: Body) -> Body | Coroutine[Any, Any, Body]:
    """Answer at once if ``min_bytes`` are there (or a partition failed): the body, built
    without a task or an event-loop round. Otherwise a coroutine: the long poll, or first the
    CRC check of segment regions never verified since a clean start (off the event loop)."""
    loop = asyncio.get_running_loop()
    replicas = services.replicas
    max_wait_s = max(0, req.get("max_wait_ms", 0) or 0) / 1000.0
    min_bytes = req.get("min_bytes", 1) or 0
    deadline = loop.time() + max_wait_s
    replica_id = replica_id_of(req)

    def read_once() -> tuple[Body, Any]:
        body = fetch_error(req, ErrorCode.NONE)
        return body, replicas.read(req, replica_id, [t["partitions"] for t in body["responses"]])

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

    async def again() -> tuple[bool, Body, list[Any]]:
        body, read = await read_verified()
        done = satisfied(read)
        if done or replicas.closing or loop.time() >= deadline:
            _counted(services, body, read.total_bytes)
        return done, body, read.partitions

    async def verified_first() -> Body:
        body, read = await read_verified()
        if satisfied(read) or max_wait_s <= 0 or not read.partitions or replicas.closing:
            return _counted(services, body, read.total_bytes)
        result: Body = await replicas.long_poll(read.partitions, deadline, again)
        return result

    body, read = read_once()
    if read.unverified:
        return verified_first()
    if satisfied(read) or max_wait_s <= 0 or not read.partitions:
        return _counted(services, body, read.total_bytes)
    if replicas.closing:
        return body
    return replicas.long_poll(read.partitions, deadline, again)


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
