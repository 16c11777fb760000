"""Produce and InitProducerId: the write path of the broker.

Each partition's records field arrives as a memoryview into the request frame and goes to
the native core in one call, which validates every batch, rewrites offsets and the leader
epoch in place and writes it: no Python object per batch or record. ``acks=-1`` is answered
after the data is on disk; concurrent ``acks=-1`` requests share one flush (group commit),
so fsync cost is paid per flush, not per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..protocol import RequestHeader
from .errors import (
    CORRUPT_MESSAGE,
    INVALID_REQUIRED_ACKS,
    INVALID_TRANSACTION_TIMEOUT,
    MESSAGE_TOO_LARGE,
    NONE,
    UNKNOWN_TOPIC_OR_PARTITION,
    error_code,
    error_message,
)
from .partition import DuplicateSequenceError

if TYPE_CHECKING:
    from .server import Broker

TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
KAFKA_STORAGE_ERROR = 56


class GroupCommit:
    """Flushes logs on one background thread, batching every request that waits meanwhile.

    A request joins the flush that has not started yet; while one flush runs, the next
    gathers all later requests. One fsync per log per round, however many producers wait.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="edplog-flush")
        self._pending: dict[int, Any] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._running: asyncio.Task[None] | None = None

    async def flush(self, logs: list[Any]) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        for log_ in logs:
            self._pending[id(log_)] = log_
        self._waiters.append(fut)
        if self._running is None:
            self._running = loop.create_task(self._run())
        await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiters:
                logs, self._pending = list(self._pending.values()), {}
                waiters, self._waiters = self._waiters, []
                try:
                    await loop.run_in_executor(self._executor, _flush_all, logs)
                except Exception as exc:
                    for fut in waiters:
                        if not fut.done():
                            fut.set_exception(exc)
                else:
                    for fut in waiters:
                        if not fut.done():
                            fut.set_result(None)
        finally:
            self._running = None

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.wait([self._running])
        self._executor.shutdown(wait=True)


def _flush_all(logs: list[Any]) -> None:
    for log_ in logs:
        log_.flush()


class ProducerIdAllocator:
    """Hands out producer ids that do not repeat across restarts (time-seeded counter).

    Producer state is kept in memory, so an id reused after a restart could collide with a
    producer still running against the old one; seeding from the clock makes that impossible
    without persisting a counter.
    """

    def __init__(self) -> None:
        self._next = int(time.time() * 1000) << 8

    def allocate(self) -> int:
        pid = self._next
        self._next += 1
        return pid


def _partition_result(index: int, code: int = NONE, message: str | None = None) -> dict[str, Any]:
    return {
        "index": index,
        "error_code": code,
        "base_offset": -1,
        "log_append_time_ms": -1,
        "log_start_offset": -1,
        "record_errors": [],
        "error_message": message,
    }


def error_body(req: dict[str, Any], code: int) -> dict[str, Any]:
    """A Produce response giving ``code`` for every partition of the request."""
    return {
        "responses": [
            {
                "name": t["name"],
                "partition_responses": [
                    _partition_result(p["index"], code) for p in t["partition_data"]
                ],
            }
            for t in req["topic_data"]
        ],
        "throttle_time_ms": 0,
    }


def produce_now(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any] | None | Coroutine[Any, Any, dict[str, Any]]:
    """Append each partition's batches; answer per partition (nothing at all for acks=0).

    Runs in the request's dispatch, so requests pipelined on one connection are appended
    in the order they were sent (idempotent producers rely on it) and acks=0/1 need no task.
    For acks=-1 the result is a coroutine that answers once the data is flushed.
    """
    acks = req["acks"]
    if acks not in (0, 1, -1):
        return error_body(req, INVALID_REQUIRED_ACKS)
    now_ms = int(time.time() * 1000)
    responses = []
    to_flush: list[tuple[Any, dict[str, Any]]] = []
    for topic in req["topic_data"]:
        name = topic["name"]
        results = []
        for pdata in topic["partition_data"]:
            result = _partition_result(pdata["index"])
            results.append(result)
            partition = broker.partition(name, pdata["index"])
            records = pdata["records"]
            if partition is None:
                result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                continue
            if records is None or len(records) == 0:
                result["error_code"] = CORRUPT_MESSAGE
                continue
            if len(records) > partition.max_message_bytes:
                result["error_code"] = MESSAGE_TOO_LARGE
                continue
            append_time = now_ms if partition.log_append_time else None
            try:
                base, _ = partition.append(records, append_time)
            except DuplicateSequenceError as dup:
                result["error_code"] = dup.kafka_code
                result["base_offset"] = dup.base_offset
                continue
            except Exception as exc:
                result["error_code"] = error_code(exc)
                result["error_message"] = error_message(exc)
                continue
            result["base_offset"] = base
            result["log_append_time_ms"] = append_time if append_time is not None else -1
            result["log_start_offset"] = partition.log_start_offset
            if acks == -1:
                to_flush.append((partition.log, result))
        responses.append({"name": name, "partition_responses": results})
    if acks == 0:
        return None
    body = {"responses": responses, "throttle_time_ms": 0}
    if to_flush and broker.config.flush_on_acks_all:
        return _flushed(broker, body, to_flush)
    return body


async def _flushed(
    broker: Broker, body: dict[str, Any], to_flush: list[tuple[Any, dict[str, Any]]]
) -> dict[str, Any]:
    try:
        await broker.commit.flush([log_ for log_, _ in to_flush])
    except Exception as exc:
        code = error_code(exc)
        for _, result in to_flush:
            result["error_code"] = code if code != -1 else KAFKA_STORAGE_ERROR
            result["base_offset"] = -1
    return body


async def handle_produce(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any] | None:
    """``produce_now`` as a coroutine handler."""
    result = produce_now(broker, header, req)
    return await result if isinstance(result, Coroutine) else result


async def handle_init_producer_id(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Give an idempotent producer an id (or bump the epoch of the one it presents).

    Transactions are not served yet, so a transactional id is refused with a fatal error
    rather than a retriable one that would make the client spin.
    """
    body: dict[str, Any] = {
        "throttle_time_ms": 0,
        "error_code": NONE,
        "producer_id": -1,
        "producer_epoch": -1,
        "ongoing_txn_producer_id": -1,
        "ongoing_txn_producer_epoch": -1,
    }
    if req.get("transactional_id") is not None:
        if req.get("transaction_timeout_ms", 0) > broker.config.transaction_max_timeout_ms:
            body["error_code"] = INVALID_TRANSACTION_TIMEOUT
        else:
            body["error_code"] = TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        return body
    pid, epoch = req.get("producer_id", -1), req.get("producer_epoch", -1)
    if pid is not None and pid >= 0 and epoch is not None and 0 <= epoch < 32766:
        body["producer_id"], body["producer_epoch"] = pid, epoch + 1
    else:
        body["producer_id"], body["producer_epoch"] = broker.producer_ids.allocate(), 0
    return body


HANDLERS = {0: handle_produce, 22: handle_init_producer_id}
# Run in the request's dispatch; a coroutine result (acks=-1) becomes its task.
NOW_HANDLERS = {0: produce_now}
