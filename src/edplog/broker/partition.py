"""The partition layer between the wire protocol and a storage ``Log``.

A ``Partition`` is what replication will grow from: it owns the leader epoch stamped into
every appended batch, the high watermark (on one node it equals the log end offset; with
followers it becomes the minimum replicated offset of the ISR), the replica set, the
idempotent-producer state and the wake-up of Fetch requests parked in a long poll.
Everything here runs on the broker's event loop thread.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptRecordError, EdplogError

# RecordBatch v2 header up to recordsCount (61 bytes), big-endian (Kafka's DefaultRecordBatch).
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_BYTES = _BATCH_HEADER.size
NO_PRODUCER_ID = -1
# Kafka keeps the metadata of the last five batches per producer: the most a well-behaved
# idempotent producer has in flight (max.in.flight.requests.per.connection <= 5).
PRODUCER_BATCH_CACHE = 5


class DuplicateSequenceError(EdplogError):
    """The batch was appended before; the client is told its original offset."""

    kafka_code = 46  # DUPLICATE_SEQUENCE_NUMBER

    def __init__(self, base_offset: int) -> None:
        super().__init__("duplicate batch")
        self.base_offset = base_offset


class OutOfOrderSequenceError(EdplogError):
    """A gap in an idempotent producer's sequence numbers."""

    kafka_code = 45  # OUT_OF_ORDER_SEQUENCE_NUMBER


class InvalidProducerEpochError(EdplogError):
    """The producer was fenced by a newer epoch of the same producer id."""

    kafka_code = 47  # INVALID_PRODUCER_EPOCH


class InvalidRecordError(CorruptRecordError):
    """A produce request whose records break a rule beyond checksums (e.g. two batches)."""

    kafka_code = 87  # INVALID_RECORD


@dataclass(slots=True)
class BatchHeader:
    """The fields of a batch header the broker decides on; read once per partition."""

    length: int
    magic: int
    attributes: int
    last_offset_delta: int
    producer_id: int
    producer_epoch: int
    base_sequence: int

    @property
    def last_sequence(self) -> int:
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & 0x10)


def read_batch_header(buf: memoryview) -> BatchHeader:
    """Read the first batch header of a produce payload (checks only that it is there)."""
    if len(buf) < BATCH_HEADER_BYTES:
        raise CorruptRecordError("record batch shorter than its header")
    (_, length, _, magic, _, attributes, last_delta, _, _, pid, epoch, seq, _) = (
        _BATCH_HEADER.unpack_from(buf, 0)
    )
    if magic != 2:
        raise CorruptRecordError(f"record batch magic {magic}, only v2 is accepted")
    return BatchHeader(12 + length, magic, attributes, last_delta, pid, epoch, seq)


@dataclass(slots=True)
class _ProducerEntry:
    epoch: int
    # (first_sequence, last_sequence, base_offset) of the most recent batches, oldest first.
    batches: deque[tuple[int, int, int]] = field(
        default_factory=lambda: deque(maxlen=PRODUCER_BATCH_CACHE)
    )


class ProducerState:
    """Per (producer id, partition) sequence tracking, with Kafka's idempotence rules.

    ``check`` runs before the append and says whether the batch is new; ``record`` runs after
    a successful append. A producer unknown to this partition (new, or known only before a
    restart) may start at any sequence, which is how Kafka treats a producer whose state was
    lost with an expired or truncated log.
    """

    def __init__(self) -> None:
        self._producers: dict[int, _ProducerEntry] = {}

    def check(self, header: BatchHeader) -> None:
        """Raise Duplicate/OutOfOrder/InvalidProducerEpoch errors, or return to append."""
        entry = self._producers.get(header.producer_id)
        if entry is None:
            return
        if header.producer_epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {header.producer_id} epoch {header.producer_epoch} < {entry.epoch}"
            )
        if header.producer_epoch > entry.epoch:
            if header.base_sequence != 0:
                raise OutOfOrderSequenceError(
                    f"new epoch {header.producer_epoch} must start at sequence 0, "
                    f"got {header.base_sequence}"
                )
            return
        for first, last, base_offset in entry.batches:
            if first == header.base_sequence and last == header.last_sequence:
                raise DuplicateSequenceError(base_offset)
        if entry.batches:
            expected = (entry.batches[-1][1] + 1) & 0x7FFFFFFF
            if header.base_sequence != expected:
                raise OutOfOrderSequenceError(
                    f"producer {header.producer_id}: expected sequence {expected}, "
                    f"got {header.base_sequence}"
                )

    def record(self, header: BatchHeader, base_offset: int) -> None:
        """Remember an appended batch so its retry is recognised as a duplicate."""
        entry = self._producers.get(header.producer_id)
        if entry is None or header.producer_epoch != entry.epoch:
            entry = _ProducerEntry(header.producer_epoch)
            self._producers[header.producer_id] = entry
        entry.batches.append((header.base_sequence, header.last_sequence, base_offset))


class Partition:
    """One partition this broker leads: a ``Log`` plus the replication-facing state."""

    def __init__(self, topic: str, index: int, log: Any, node_id: int, leader_epoch: int = 0):
        self.topic = topic
        self.index = index
        self.log = log
        self.node_id = node_id
        self.leader_epoch = leader_epoch
        self.leader_id = node_id
        self.replicas: list[int] = [node_id]
        self.isr: list[int] = [node_id]
        self.producers = ProducerState()
        self._waiters: list[asyncio.Future[None]] = []
        self.max_message_bytes = 0
        self.log_append_time = False
        self.refresh_config()

    def refresh_config(self) -> None:
        """Re-read the topic settings the produce path checks (after AlterConfigs)."""
        config = self.log.config
        self.max_message_bytes = int(config.get("max.message.bytes", 1_048_588))
        self.log_append_time = config.get("message.timestamp.type") == "LogAppendTime"

    @property
    def log_start_offset(self) -> int:
        return int(self.log.log_start_offset)

    @property
    def log_end_offset(self) -> int:
        return int(self.log.log_end_offset)

    @property
    def high_watermark(self) -> int:
        """The offset below which records are committed (on one node: the log end)."""
        return self.log_end_offset

    @property
    def last_stable_offset(self) -> int:
        """Equal to the high watermark until transactions can leave records undecided."""
        return self.high_watermark

    def leader_epoch_error(self, current_leader_epoch: int) -> int:
        """Kafka's KIP-320 fencing: 0, FENCED_LEADER_EPOCH (74) for a client behind us, or
        UNKNOWN_LEADER_EPOCH (75) for one ahead of us. -1 means the client did not say."""
        if current_leader_epoch is None or current_leader_epoch < 0:
            return 0
        if current_leader_epoch < self.leader_epoch:
            return 74
        if current_leader_epoch > self.leader_epoch:
            return 75
        return 0

    def fetch_limit(self, replica_id: int, isolation_level: int) -> int:
        """The offset a fetcher may read up to: followers read to the log end, consumers to
        the high watermark (read_uncommitted) or the last stable offset (read_committed)."""
        if replica_id >= 0:
            return self.log_end_offset
        return self.last_stable_offset if isolation_level == 1 else self.high_watermark

    def append(self, records: memoryview, log_append_time_ms: int | None) -> tuple[int, int]:
        """Append a producer's batches (one buffer, validated and rewritten in C).

        Idempotent batches go through the sequence checks first. Returns the base offset of
        the appended data and its last offset; wakes every Fetch waiting on this partition.
        """
        header = read_batch_header(records)
        idempotent = header.producer_id != NO_PRODUCER_ID
        if idempotent:
            if header.length != len(records):
                raise InvalidRecordError("an idempotent produce must carry exactly one batch")
            self.producers.check(header)
        base, last = self.log.append_batches(
            records, leader_epoch=self.leader_epoch, log_append_time_ms=log_append_time_ms
        )
        if idempotent:
            self.producers.record(header, base)
        self.notify()
        return int(base), int(last)

    def waiter(self) -> asyncio.Future[None]:
        """A future completed by the next append (or by ``notify`` on deletion/shutdown)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def discard_waiter(self, fut: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass
