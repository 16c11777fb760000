"""ListOffsets and OffsetForLeaderEpoch: finding offsets by time, by end, and by epoch.

ListOffsets' special timestamps are answered as a Kafka broker without tiered storage answers
them: EARLIEST_LOCAL (-4, v8+, KIP-405) is the log start offset, since every record is local;
LATEST_TIERED (-5, v9+, KIP-1005) is offset -1 with timestamp -1, since nothing is tiered;
EARLIEST_PENDING_UPLOAD (-6, v11+, KIP-1023) is offset -1 with timestamp -1 too, since no
topic has remote storage enabled and so nothing is pending upload.
v10's timeout_ms (KIP-1075) bounds a remote lookup; every lookup here is local, so it is
answered at once. Lookups by time read the log (the time index, then the batches), so they
run off the event loop.

A leader elected a moment ago whose high watermark has not yet reached the start of its
epoch answers the end, the maximum timestamp and lookups by time with OFFSET_NOT_AVAILABLE
(78, retriable; KIP-207): its end could be below one the previous leader already answered.
The earliest offsets are answered as always.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..context import ErrorCode, RequestContext, Services, code_for
from .registry import ApiSpec

Body = dict[str, Any]
LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
EARLIEST_PENDING_UPLOAD = -6
READ_COMMITTED = 1


def _list_result(index: int, code: int = ErrorCode.NONE) -> Body:
    return {
        "partition_index": index,
        "error_code": code,
        "old_style_offsets": [],
        "timestamp": -1,
        "offset": -1,
        "leader_epoch": -1,
    }


def list_offsets_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "topics": [
            {
                "name": t["name"],
                "partitions": [_list_result(p["partition_index"], code) for p in t["partitions"]],
            }
            for t in req["topics"]
        ],
    }


def _lookup(partition: Any, timestamp: int, isolation: int) -> tuple[int, int]:
    """(offset, timestamp) for a ListOffsets spec; (-1, -1) when nothing matches."""
    if timestamp == LATEST:
        end = (
            partition.last_stable_offset
            if isolation == READ_COMMITTED
            else partition.high_watermark
        )
        return end, -1
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return partition.log_start_offset, -1
    if timestamp in (LATEST_TIERED, EARLIEST_PENDING_UPLOAD):
        return -1, -1
    if timestamp == MAX_TIMESTAMP:
        found = partition.log.max_timestamp()
    else:
        found = partition.log.offset_for_timestamp(timestamp)
    if found is None:
        return -1, -1
    return int(found[0]), int(found[1])


async def list_offsets(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Earliest, latest, max-timestamp and time-based offset lookups per partition."""
    isolation = req.get("isolation_level", 0) or 0
    loop = asyncio.get_running_loop()
    topics = []
    for topic in req["topics"]:
        results = []
        for preq in topic["partitions"]:
            result = _list_result(preq["partition_index"])
            results.append(result)
            try:
                partition = services.replicas.partition(
                    topic["name"], preq["partition_index"], preq.get("current_leader_epoch", -1)
                )
                if partition is None:
                    result["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    continue
                code = partition.leader_epoch_error(preq.get("current_leader_epoch", -1))
                if code:
                    result["error_code"] = code
                    continue
                timestamp = preq["timestamp"]
                if partition.offsets_lag_election and (
                    timestamp >= 0 or timestamp in (LATEST, MAX_TIMESTAMP)
                ):
                    result["error_code"] = ErrorCode.OFFSET_NOT_AVAILABLE
                    continue
                if timestamp >= 0 or timestamp == MAX_TIMESTAMP:
                    offset, ts = await loop.run_in_executor(
                        None, _lookup, partition, timestamp, isolation
                    )
                else:
                    offset, ts = _lookup(partition, timestamp, isolation)
            except Exception as exc:
                result["error_code"] = code_for(exc)
                continue
            result["offset"], result["timestamp"] = offset, ts
            if offset >= 0:
                result["old_style_offsets"] = [offset]
                epoch = partition.log.leader_epochs.epoch_for_offset(offset)
                result["leader_epoch"] = epoch if epoch >= 0 else partition.leader_epoch
        topics.append({"name": topic["name"], "partitions": results})
    return {"throttle_time_ms": 0, "topics": topics}


def _epoch_result(index: int, code: int = ErrorCode.NONE) -> Body:
    return {"error_code": code, "partition": index, "leader_epoch": -1, "end_offset": -1}


def epoch_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "topics": [
            {
                "topic": t["topic"],
                "partitions": [_epoch_result(p["partition"], code) for p in t["partitions"]],
            }
            for t in req["topics"]
        ],
    }


async def offset_for_leader_epoch(ctx: RequestContext, services: Services, req: Body) -> Body:
    """The end offset of each asked epoch, from the leader-epoch cache (KIP-101/279)."""
    topics = []
    for topic in req["topics"]:
        results = []
        for preq in topic["partitions"]:
            result = _epoch_result(preq["partition"])
            results.append(result)
            try:
                partition = services.replicas.partition(
                    topic["topic"], preq["partition"], preq.get("current_leader_epoch", -1)
                )
            except Exception as exc:
                result["error_code"] = code_for(exc)
                continue
            if partition is None:
                result["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            code = partition.leader_epoch_error(preq.get("current_leader_epoch", -1))
            if code:
                result["error_code"] = code
                continue
            epoch, end = partition.end_offset_for_epoch(preq["leader_epoch"])
            result["leader_epoch"], result["end_offset"] = epoch, end
        topics.append({"topic": topic["topic"], "partitions": results})
    return {"throttle_time_ms": 0, "topics": topics}


APIS = [
    ApiSpec(2, list_offsets, list_offsets_error),
    ApiSpec(23, offset_for_leader_epoch, epoch_error),
]
