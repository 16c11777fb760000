"""Appends to ``__consumer_offsets`` in a cluster: through the partition's leader.

A commit (or a consumer group's records) is one batch appended to the leader's log, stamped
with its leader epoch, and answered once the ISR has it, as Kafka's coordinator waits for
acks=-1. The broker's ``Partition`` is seen here only through :class:`OffsetsPartition`: the
group layer does not import the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..errors import EdplogError, ErrorCode, KafkaError, kafka_code_of
from ..records import build_batch
from ..storage.topic_registry import OFFSETS_TOPIC

#: A record to append: key, and value or None for a tombstone.
Record = tuple[bytes, bytes | None]
Flush = Callable[[list[Any]], Awaitable[None]]

#: How long a commit waits for the ISR before it is answered as failed: Kafka's default
#: offsets.commit.timeout.ms (its REQUEST_TIMED_OUT reaches the client as
#: COORDINATOR_NOT_AVAILABLE, which it retries).
COMMIT_TIMEOUT_S = 5.0


class OffsetsPartition(Protocol):
    """What the coordinator uses of a partition of ``__consumer_offsets`` this broker leads."""

    @property
    def log(self) -> Any: ...

    #: Not None only while this broker leads the partition (the leader's follower tracking).
    tracker: Any

    def append(self, records: memoryview, log_append_time_ms: int | None) -> tuple[int, int]: ...

    def wait_replicated(self, end_offset: int) -> asyncio.Future[ErrorCode]: ...


#: Kafka's translation of a failed append to the offsets topic into what a group's client is
#: told (GroupMetadataManager): a lost leadership or a failed disk sends it to another
#: coordinator, too few replicas is a coordinator that is not available for now.
_APPEND_ERRORS = {
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
    ErrorCode.INVALID_FETCH_SIZE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
}


def append_error(code: int) -> ErrorCode:
    """What a group's client is told when an append to its offsets partition failed."""
    for known, told in _APPEND_ERRORS.items():
        if known == code:
            return told
    return ErrorCode.UNKNOWN_SERVER_ERROR


async def replicated_append(leader: OffsetsPartition, records: list[Record], flush: Flush) -> None:
    """Append ``records`` as one batch through the partition's leader and return once the ISR
    has them (and the local copy is flushed); a failure raises KafkaError with the code the
    client is to get (:func:`append_error`)."""
    if leader.tracker is None:
        # Leadership went a moment before the coordinator was told: never write a follower.
        raise KafkaError(ErrorCode.NOT_COORDINATOR, message=f"{OFFSETS_TOPIC}: not the leader")
    batch = bytearray(build_batch(records))
    try:
        _, last = leader.append(memoryview(batch), None)
    except EdplogError as exc:
        raise KafkaError(append_error(kafka_code_of(exc)), message=str(exc)) from exc
    replicated = leader.wait_replicated(last + 1)
    await flush([leader.log])
    try:
        code = await asyncio.wait_for(replicated, COMMIT_TIMEOUT_S)
    except TimeoutError:
        code = ErrorCode.REQUEST_TIMED_OUT
    if code != ErrorCode.NONE:
        raise KafkaError(append_error(code), message=f"{OFFSETS_TOPIC} append: {code.name}")
