"""Idempotent-producer state of a partition, with Kafka's snapshot files.

For every producer id that wrote to the partition the state keeps its epoch and the metadata of
its last five batches (first and last sequence, first and last offset, max timestamp): the most
a well-behaved producer has in flight (``max.in.flight.requests.per.connection`` <= 5). With it a
retried batch is answered DUPLICATE_SEQUENCE_NUMBER with its original offset instead of being
stored twice, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER and a fenced epoch INVALID_PRODUCER_EPOCH.

Durability, as Kafka does it: a snapshot ``<offset, 20 digits>.snapshot`` of the whole state is
written when a segment rolls and at a clean shutdown; opening the log loads the newest snapshot
at or below the log end and replays the batch headers after it (``apply``), so the state
survives a restart or a SIGKILL exactly.

Snapshot layout (Kafka's ProducerSnapshot v1; big-endian)::

    version          int16    1
    crc              uint32   CRC-32C of every byte after this field
    entries          int32    count, then per entry:
      producer_id              int64
      producer_epoch           int16
      last_sequence            int32
      last_offset              int64
      offset_delta             int32    last_offset - first offset of the batch
      timestamp                int64    the batch's max timestamp
      coordinator_epoch        int32
      current_txn_first_offset int64    -1 when no transaction is open

Kafka writes one entry per producer (its last batch); edplog writes one entry per cached batch,
oldest first, so all five survive a restart. A reader that keeps the last entry per producer id
(as Kafka's does) reads the same state it would have written.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import _native
from ..errors import (
    CorruptRecordError,
    DuplicateSequenceError,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
)
from .checkpoint import write_atomically

log = logging.getLogger("edplog.storage")

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_RE = re.compile(r"^(\d{20})\.snapshot$")
# Batches remembered per producer: Kafka's limit on in-flight requests of an idempotent one.
BATCHES_PER_PRODUCER = 5
SNAPSHOTS_KEPT = 2
_VERSION = 1
_HEAD = struct.Struct(">hI")
_COUNT = struct.Struct(">i")
_ENTRY = struct.Struct(">qhiqiqiq")
_SEQ_MOD = 1 << 31


@dataclass(slots=True)
class BatchMetadata:
    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int
    timestamp_ms: int


@dataclass(slots=True)
class ProducerEntry:
    producer_id: int
    epoch: int
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=BATCHES_PER_PRODUCER)
    )
    coordinator_epoch: int = -1
    current_txn_first_offset: int = -1

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    @property
    def last_timestamp_ms(self) -> int:
        return self.batches[-1].timestamp_ms if self.batches else -1


def snapshot_path(directory: str, offset: int) -> str:
    return os.path.join(directory, f"{offset:020d}{SNAPSHOT_SUFFIX}")


def snapshot_offsets(directory: str) -> list[int]:
    """Offsets of the snapshot files in directory, ascending."""
    out = []
    for name in os.listdir(directory):
        m = SNAPSHOT_RE.match(name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


class ProducerStateManager:
    """The producer state of one partition log (see the module docstring).

    Thread-safety: the log serialises ``check``/``update`` with its appends; snapshots copy
    the state under the same lock.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._producers: dict[int, ProducerEntry] = {}
        self.last_snapshot_offset = -1

    # ---- the rules of an idempotent append ---------------------------------------------------

    def check(self, header: Any) -> None:
        """Raise Duplicate/OutOfOrder/InvalidProducerEpoch errors for a producer batch, or
        return to let it be appended. A producer this partition does not know (new, or whose
        state expired) may start at any sequence, as Kafka lets it."""
        entry = self._producers.get(header.producer_id)
        if entry is None:
            return
        epoch = header.producer_epoch
        if epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {header.producer_id}: epoch {epoch} is below the current "
                f"epoch {entry.epoch} (fenced)"
            )
        if epoch > entry.epoch:
            if header.base_sequence != 0:
                raise OutOfOrderSequenceError(
                    f"producer {header.producer_id}: a new epoch {epoch} must start at "
                    f"sequence 0, not {header.base_sequence}"
                )
            return
        last_sequence = header.last_sequence
        for b in entry.batches:
            if b.first_sequence == header.base_sequence and b.last_sequence == last_sequence:
                raise DuplicateSequenceError(b.first_offset, b.last_offset)
        if entry.batches:
            expected = (entry.batches[-1].last_sequence + 1) % _SEQ_MOD
            if header.base_sequence != expected:
                raise OutOfOrderSequenceError(
                    f"producer {header.producer_id}: expected sequence {expected}, "
                    f"got {header.base_sequence}"
                )

    def update(self, header: Any, first_offset: int, last_offset: int) -> None:
        """Remember an appended producer batch (leader or follower; no checks)."""
        pid = header.producer_id
        entry = self._producers.get(pid)
        if entry is None or header.producer_epoch != entry.epoch:
            entry = ProducerEntry(pid, header.producer_epoch)
            self._producers[pid] = entry
        entry.batches.append(
            BatchMetadata(
                header.base_sequence,
                header.last_sequence,
                first_offset,
                last_offset,
                header.max_timestamp_ms,
            )
        )
        if header.is_transactional and entry.current_txn_first_offset < 0:
            entry.current_txn_first_offset = first_offset

    def apply(self, headers: Iterable[Any]) -> int:
        """Replay producer batch headers read from the log (offsets as stored). Returns the
        number applied."""
        n = 0
        for h in headers:
            if h.producer_id >= 0 and not h.is_control:
                self.update(h, h.base_offset, h.last_offset)
                n += 1
        return n

    # ---- state ------------------------------------------------------------------------------

    @property
    def producers(self) -> dict[int, ProducerEntry]:
        """A copy of the state: producer id -> entry."""
        return dict(self._producers)

    def __len__(self) -> int:
        return len(self._producers)

    def clear(self) -> None:
        self._producers.clear()

    def remove_before(self, log_start_offset: int) -> None:
        """Forget producers whose every batch lies below the log start (deleted records),
        and snapshots below it."""
        for pid in [p for p, e in self._producers.items() if e.last_offset < log_start_offset]:
            del self._producers[pid]
        for offset in snapshot_offsets(self.directory):
            if offset < log_start_offset:
                _unlink(snapshot_path(self.directory, offset))

    def remove_expired(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle for ``producer.id.expiration.ms`` (none with an open
        transaction). Returns how many were removed."""
        doomed = [
            pid
            for pid, e in self._producers.items()
            if e.current_txn_first_offset < 0 and 0 <= e.last_timestamp_ms < now_ms - expiration_ms
        ]
        for pid in doomed:
            del self._producers[pid]
        return len(doomed)

    # ---- snapshots --------------------------------------------------------------------------

    def encode(self) -> bytes:
        entries = [
            _ENTRY.pack(
                e.producer_id,
                e.epoch,
                b.last_sequence,
                b.last_offset,
                b.last_offset - b.first_offset,
                b.timestamp_ms,
                e.coordinator_epoch,
                e.current_txn_first_offset,
            )
            for e in self._producers.values()
            for b in e.batches
        ]
        body = _COUNT.pack(len(entries)) + b"".join(entries)
        return _HEAD.pack(_VERSION, _native.crc32c(body)) + body

    def take_snapshot(self, offset: int) -> str:
        """Write the state as of ``offset`` (every batch below it applied); keep the newest
        few snapshots. Returns the file written."""
        path = snapshot_path(self.directory, offset)
        write_atomically(path, self.encode())
        self.last_snapshot_offset = offset
        for old in snapshot_offsets(self.directory)[:-SNAPSHOTS_KEPT]:
            _unlink(snapshot_path(self.directory, old))
        return path

    def load(self, log_end_offset: int) -> int:
        """Load the newest usable snapshot at or below ``log_end_offset`` and return its
        offset (replay the log from there), or -1 when there is none (replay it all).

        Snapshots above the log end describe records that are gone (a crash cut the tail)
        and are deleted; an unreadable one is deleted with a warning and an older one used.
        """
        self._producers.clear()
        for offset in reversed(snapshot_offsets(self.directory)):
            path = snapshot_path(self.directory, offset)
            if offset > log_end_offset:
                _unlink(path)
                continue
            try:
                with open(path, "rb") as f:
                    self._decode(f.read())
            except (OSError, CorruptRecordError) as exc:
                log.warning("%s: unusable producer snapshot (%s); deleted", path, exc)
                self._producers.clear()
                _unlink(path)
                continue
            self.last_snapshot_offset = offset
            return offset
        self.last_snapshot_offset = -1
        return -1

    def truncate_snapshots(self, offset: int) -> None:
        """Delete snapshots above ``offset`` (the log was truncated to it)."""
        for snap in snapshot_offsets(self.directory):
            if snap > offset:
                _unlink(snapshot_path(self.directory, snap))

    def decode_into(self, data: bytes) -> None:
        """Add the entries of a snapshot's bytes to the state; CorruptRecordError if they
        are not a valid snapshot (``edplog verify`` checks files with it)."""
        self._decode(data)

    def _decode(self, data: bytes) -> None:
        if len(data) < _HEAD.size + _COUNT.size:
            raise CorruptRecordError("snapshot shorter than its header")
        version, crc = _HEAD.unpack_from(data, 0)
        if version != _VERSION:
            raise CorruptRecordError(f"snapshot version {version}")
        body = memoryview(data)[_HEAD.size :]
        if _native.crc32c(body) != crc:
            raise CorruptRecordError("snapshot CRC mismatch")
        (count,) = _COUNT.unpack_from(body, 0)
        if count < 0 or _COUNT.size + count * _ENTRY.size != len(body):
            raise CorruptRecordError(f"snapshot holds {len(body)} bytes for {count} entries")
        for i in range(count):
            pid, epoch, last_seq, last_off, delta, ts, coord, txn_first = _ENTRY.unpack_from(
                body, _COUNT.size + i * _ENTRY.size
            )
            entry = self._producers.get(pid)
            if entry is None or entry.epoch != epoch:
                entry = ProducerEntry(pid, epoch)
                self._producers[pid] = entry
            first_seq = (last_seq - delta) % _SEQ_MOD if last_seq >= 0 else -1
            entry.batches.append(BatchMetadata(first_seq, last_seq, last_off - delta, last_off, ts))
            entry.coordinator_epoch = coord
            entry.current_txn_first_offset = txn_first


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
