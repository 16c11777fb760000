"""Fetch, ListOffsets and OffsetForLeaderEpoch: the read path of the broker.

A Fetch response is assembled from index lookups only: each partition's records field is a
list of ``FileRegion`` (file, position, length) slices of segment files that the connection
writer sends with ``sendfile``. Long polls park on the partitions' append waiters and on the
broker's shutdown, so they end as soon as enough data arrives, the wait expires, or the
broker stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..protocol import FileRegion, RequestHeader
from .errors import NONE, UNKNOWN_TOPIC_OR_PARTITION, error_code

if TYPE_CHECKING:
    from .partition import Partition
    from .server import Broker

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
READ_COMMITTED = 1
INT32_MAX = 0x7FFFFFFF


def _replica_id(req: dict[str, Any]) -> int:
    state = req.get("replica_state")
    if isinstance(state, dict) and state.get("replica_id", -1) >= 0:
        return int(state["replica_id"])
    rid = req.get("replica_id", -1)
    return -1 if rid is None else int(rid)


def _partition_data(index: int, code: int, isolation: int) -> dict[str, Any]:
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


def error_body(req: dict[str, Any], code: int) -> dict[str, Any]:
    """A Fetch response giving ``code`` for every partition of the request."""
    isolation = req.get("isolation_level", 0)
    return {
        "throttle_time_ms": 0,
        "error_code": NONE,
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


def _as_regions(slices: list[Any]) -> list[FileRegion]:
    return [s if isinstance(s, FileRegion) else FileRegion(*s) for s in slices]


def _read(broker: Broker, req: dict[str, Any]) -> tuple[dict[str, Any], int, bool, list[Any]]:
    """One pass over the requested partitions: (body, record bytes, any error, partitions)."""
    replica_id = _replica_id(req)
    isolation = req.get("isolation_level", 0) or 0
    budget = req.get("max_bytes", INT32_MAX)
    if budget is None or budget <= 0:
        budget = INT32_MAX
    total = 0
    failed = False
    seen: list[Partition] = []
    responses = []
    for topic in req["topics"]:
        name = topic.get("topic")
        results = []
        for preq in topic["partitions"]:
            result = _partition_data(preq["partition"], NONE, isolation)
            results.append(result)
            partition = broker.partition(name, preq["partition"]) if name is not None else None
            if partition is None:
                result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                failed = True
                continue
            seen.append(partition)
            code = partition.leader_epoch_error(preq.get("current_leader_epoch", -1))
            hw = partition.high_watermark
            result["high_watermark"] = hw
            result["last_stable_offset"] = partition.last_stable_offset
            result["log_start_offset"] = partition.log_start_offset
            if code:
                result["error_code"] = code
                failed = True
                continue
            offset = preq["fetch_offset"]
            if offset >= partition.fetch_limit(replica_id, isolation) and offset <= hw:
                continue  # caught up: nothing to send yet
            # Kafka's KIP-74 rule: the first partition with data returns at least one whole
            # batch even above the limits; later ones only what fits in the remaining budget.
            allowance = min(preq["partition_max_bytes"], budget - total)
            if total > 0 and allowance <= 0:
                continue
            try:
                slices = _as_regions(partition.log.fetch_slices(offset, max(allowance, 1)))
            except Exception as exc:
                result["error_code"] = error_code(exc)
                failed = True
                continue
            size = sum(s.length for s in slices)
            if not slices or (total > 0 and size > allowance):
                continue
            result["records"] = slices
            total += size
        responses.append({"topic": name, "partitions": results})
    body = {"throttle_time_ms": 0, "error_code": NONE, "session_id": 0, "responses": responses}
    return body, total, failed, seen


def fetch_now(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any] | Coroutine[Any, Any, dict[str, Any]]:
    """Answer at once if ``min_bytes`` are there (or a partition failed): the body, built
    without a task or an event-loop round. Otherwise the long poll, as a coroutine."""
    loop = asyncio.get_running_loop()
    max_wait_s = max(0, req.get("max_wait_ms", 0) or 0) / 1000.0
    min_bytes = req.get("min_bytes", 1) or 0
    deadline = loop.time() + max_wait_s
    body, total, failed, seen = _read(broker, req)
    if total >= min_bytes or failed or max_wait_s <= 0 or not seen or broker.closing:
        return body
    # Park on the waiters now, in the step that read the partitions: an append that runs
    # before the long poll's task first does must still wake it.
    waiters = [p.waiter() for p in seen]
    return _long_poll(broker, req, min_bytes, deadline, seen, waiters)


async def _long_poll(
    broker: Broker,
    req: dict[str, Any],
    min_bytes: int,
    deadline: float,
    seen: list[Any],
    waiters: list[asyncio.Future[None]],
) -> dict[str, Any]:
    """Wait on the partitions' append waiters until min_bytes, the deadline or shutdown."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await asyncio.wait(
                [*waiters, broker.shutdown_waiter()],
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for partition, fut in zip(seen, waiters, strict=True):
                partition.discard_waiter(fut)
                fut.cancel()
        body, total, failed, seen = _read(broker, req)
        if total >= min_bytes or failed or not seen or broker.closing:
            return body
        if deadline - loop.time() <= 0:
            return body
        waiters = [p.waiter() for p in seen]


async def handle_fetch(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Answer at once if ``min_bytes`` are there (or a partition failed); else long-poll."""
    result = fetch_now(broker, header, req)
    return await result if isinstance(result, Coroutine) else result


def _max_timestamp(partition: Partition) -> tuple[int, int] | None:
    """(offset, timestamp) of the largest timestamp in the log, from segment metadata."""
    best = None
    for seg in partition.log.segments:
        if seg.size and seg.next_offset > partition.log_start_offset:
            if best is None or seg.max_timestamp_ms > best.max_timestamp_ms:
                best = seg
    if best is None or best.max_timestamp_ms < 0:
        return None
    return int(best.offset_of_max_timestamp), int(best.max_timestamp_ms)


def _list_offset(partition: Partition, timestamp: int, isolation: int) -> tuple[int, int]:
    """(offset, timestamp) for a ListOffsets spec; (-1, -1) when nothing matches."""
    if timestamp == LATEST:
        end = (
            partition.last_stable_offset
            if isolation == READ_COMMITTED
            else partition.high_watermark
        )
        return end, -1
    if timestamp == EARLIEST:
        return partition.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        found = _max_timestamp(partition)
    else:
        found = partition.log.offset_for_timestamp(timestamp)
    if found is None:
        return -1, -1
    return int(found[0]), int(found[1])


async def handle_list_offsets(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Earliest, latest, max-timestamp and time-based offset lookups per partition."""
    isolation = req.get("isolation_level", 0) or 0
    topics = []
    for topic in req["topics"]:
        results = []
        for preq in topic["partitions"]:
            result: dict[str, Any] = {
                "partition_index": preq["partition_index"],
                "error_code": NONE,
                "old_style_offsets": [],
                "timestamp": -1,
                "offset": -1,
                "leader_epoch": -1,
            }
            results.append(result)
            partition = broker.partition(topic["name"], preq["partition_index"])
            if partition is None:
                result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                continue
            code = partition.leader_epoch_error(preq.get("current_leader_epoch", -1))
            if code:
                result["error_code"] = code
                continue
            try:
                offset, ts = _list_offset(partition, preq["timestamp"], isolation)
            except Exception as exc:
                result["error_code"] = error_code(exc)
                continue
            result["offset"], result["timestamp"] = offset, ts
            if offset >= 0:
                result["old_style_offsets"] = [offset]
                result["leader_epoch"] = partition.leader_epoch
        topics.append({"name": topic["name"], "partitions": results})
    return {"throttle_time_ms": 0, "topics": topics}


async def handle_offset_for_leader_epoch(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """The end offset of the asked epoch: with one epoch so far, the log end offset."""
    topics = []
    for topic in req["topics"]:
        results = []
        for preq in topic["partitions"]:
            result = {
                "error_code": NONE,
                "partition": preq["partition"],
                "leader_epoch": -1,
                "end_offset": -1,
            }
            results.append(result)
            partition = broker.partition(topic["topic"], preq["partition"])
            if partition is None:
                result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                continue
            code = partition.leader_epoch_error(preq.get("current_leader_epoch", -1))
            if code:
                result["error_code"] = code
            elif preq["leader_epoch"] <= partition.leader_epoch:
                result["leader_epoch"] = partition.leader_epoch
                result["end_offset"] = partition.log_end_offset
        topics.append({"topic": topic["topic"], "partitions": results})
    return {"throttle_time_ms": 0, "topics": topics}


HANDLERS = {1: handle_fetch, 2: handle_list_offsets, 23: handle_offset_for_leader_epoch}
# Run in the request's dispatch; a coroutine result (a long poll) becomes its task.
NOW_HANDLERS = {1: fetch_now}
