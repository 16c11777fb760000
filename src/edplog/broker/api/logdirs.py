"""Log directories: DescribeLogDirs and AlterReplicaLogDirs.

Each configured log dir is listed with the filesystem's size and free space (statvfs) and the
bytes of every partition in it; an offline dir (its disk failed, see docs/broker.md) is listed
with KAFKA_STORAGE_ERROR and no partitions, as Kafka does. A partition is listed in the dir
it is served from with ``offset_lag`` 0 (on one node the high watermark never passes the log
end offset) and ``is_future_key`` false. Sizing reads the disk, so it runs off the event loop.

AlterReplicaLogDirs starts a move and answers at once, as Kafka does; the move runs in the
background (see ``ReplicaManager.start_move``). While it copies, DescribeLogDirs also lists
the partition under the destination dir with ``is_future_key`` true, the bytes copied so far
and ``offset_lag`` = log end offset minus the copy's end offset (Kafka's future replica,
KIP-113); after the swap only the destination lists it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..context import ErrorCode, RequestContext, Services
from .registry import ApiSpec

Body = dict[str, Any]


def describe_log_dirs_error(req: Body, code: ErrorCode) -> Body:
    return {"throttle_time_ms": 0, "error_code": code, "results": []}


async def describe_log_dirs(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Every log dir, or only the named partitions' when the request names topics."""
    requested = req.get("topics")
    wanted = (
        None
        if requested is None
        else {t["topic"]: list(t.get("partitions") or ()) for t in requested}
    )
    loop = asyncio.get_running_loop()
    reports = await loop.run_in_executor(None, services.store.describe_dirs, wanted)
    results = []
    for report in reports:
        by_topic: dict[str, list[Body]] = {}
        for (topic, partition), size in report.partitions.items():
            by_topic.setdefault(topic, []).append(
                {
                    "partition_index": partition,
                    "partition_size": size,
                    "offset_lag": 0,
                    "is_future_key": False,
                }
            )
        for (topic, partition), (size, lag) in sorted(report.futures.items()):
            by_topic.setdefault(topic, []).append(
                {
                    "partition_index": partition,
                    "partition_size": size,
                    "offset_lag": lag,
                    "is_future_key": True,
                }
            )
        results.append(
            {
                "error_code": (
                    ErrorCode.NONE if report.error is None else ErrorCode.KAFKA_STORAGE_ERROR
                ),
                "log_dir": report.path,
                "topics": [{"name": n, "partitions": p} for n, p in sorted(by_topic.items())],
                "total_bytes": report.space.total_bytes if report.space else -1,
                "usable_bytes": report.space.usable_bytes if report.space else -1,
            }
        )
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "results": results}


def alter_replica_log_dirs_error(req: Body, code: ErrorCode) -> Body:
    return {"throttle_time_ms": 0, "results": _results(req, lambda *_: code)}


def _results(req: Body, answer: Any) -> list[Body]:
    out: dict[str, list[Body]] = {}
    for item in req.get("dirs") or ():
        for topic in item.get("topics") or ():
            parts = out.setdefault(topic["name"], [])
            for index in topic.get("partitions") or ():
                parts.append(
                    {
                        "partition_index": index,
                        "error_code": answer(topic["name"], index, item["path"]),
                    }
                )
    return [{"topic_name": name, "partitions": parts} for name, parts in out.items()]


async def alter_replica_log_dirs(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Start moving each named partition to its named log dir (one code per partition)."""
    return {"throttle_time_ms": 0, "results": _results(req, services.replicas.start_move)}


APIS = [
    ApiSpec(34, alter_replica_log_dirs, alter_replica_log_dirs_error),
    ApiSpec(35, describe_log_dirs, describe_log_dirs_error),
]
