"""Committed offsets: an in-memory table backed by the compacted topic ``__consumer_offsets``.

Every commit appends one record per partition to the offsets-topic partition that owns the
group, flushes it, and only then updates memory, so an acknowledged commit survives a restart.
Deleting a group appends a tombstone (null value) per committed partition, which both replay
and compaction honour. On start the whole topic is replayed in offset order; the last record
per key wins.

Record layout (all integers big-endian; a string is an int16 byte length then UTF-8):

    key   = version:int16 (= 1) | group:string | topic:string | partition:int32
    value = version:int16 (= 3) | offset:int64 | leader_epoch:int32 | metadata:string
            | commit_timestamp_ms:int64

These are the same shapes as Kafka's own offset-commit key v1 and value v3, so tools that
decode Kafka's ``__consumer_offsets`` read ours. Records of other key types go to
``record_sink`` on replay (the consumer-group records of :mod:`.consumer_records`); those no one
takes, and values of an unknown version, are skipped (logged).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import EdplogError, ErrorCode, KafkaError, TopicExistsError
from ..storage.topic_registry import OFFSETS_TOPIC
from .replicated import Flush, OffsetsPartition, Record, replicated_append

log = logging.getLogger(__name__)

KEY_VERSION = 1
VALUE_VERSION = 3
_REPLAY_CHUNK = 1000

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_VALUE_HEAD = struct.Struct(">hqi")  # version, offset, leader epoch
_I64 = struct.Struct(">q")

TopicPartition = tuple[str, int]
#: Committed offsets by group, then by (topic, partition).
Table = dict[str, dict[TopicPartition, "CommittedOffset"]]
#: Takes (key, value) of a replayed record that is not an offset commit; returns whether it
#: knew the record.
RecordSink = Callable[[bytes, bytes | None], bool]


class StoreLike(Protocol):
    """The part of :class:`edplog.storage.Store` the offset table needs."""

    def create_topic(
        self, name: str, partitions: int, config: dict[str, str] | None = ...
    ) -> Any: ...

    def topics(self) -> dict[str, int]: ...

    def topic_id(self, name: str) -> Any: ...

    def log(self, topic: str, partition: int) -> Any: ...


@dataclass(frozen=True)
class CommittedOffset:
    """One committed position; ``leader_epoch`` is -1 when the client did not send one."""

    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


def _put_str(out: bytearray, text: str) -> None:
    raw = text.encode()
    out += _I16.pack(len(raw))
    out += raw


def _get_str(buf: bytes, pos: int) -> tuple[str, int]:
    (length,) = _I16.unpack_from(buf, pos)
    pos += 2
    if length < 0 or pos + length > len(buf):
        raise ValueError(f"bad string length {length} at {pos - 2}")
    return buf[pos : pos + length].decode(), pos + length


def encode_key(group: str, topic: str, partition: int) -> bytes:
    out = bytearray(_I16.pack(KEY_VERSION))
    _put_str(out, group)
    _put_str(out, topic)
    out += _I32.pack(partition)
    return bytes(out)


def decode_key(buf: bytes) -> tuple[str, str, int] | None:
    """(group, topic, partition), or None for a key of another version or kind."""
    (version,) = _I16.unpack_from(buf, 0)
    if version not in (0, 1):
        return None
    group, pos = _get_str(buf, 2)
    topic, pos = _get_str(buf, pos)
    (partition,) = _I32.unpack_from(buf, pos)
    return group, topic, partition


def encode_value(committed: CommittedOffset) -> bytes:
    out = bytearray(_VALUE_HEAD.pack(VALUE_VERSION, committed.offset, committed.leader_epoch))
    _put_str(out, committed.metadata)
    out += _I64.pack(committed.commit_timestamp_ms)
    return bytes(out)


def decode_value(buf: bytes) -> CommittedOffset | None:
    """The committed offset, or None for a value version this code does not know."""
    version, offset, leader_epoch = _VALUE_HEAD.unpack_from(buf, 0)
    if version != VALUE_VERSION:
        return None
    metadata, pos = _get_str(buf, _VALUE_HEAD.size)
    (timestamp_ms,) = _I64.unpack_from(buf, pos)
    return CommittedOffset(offset, leader_epoch, metadata, timestamp_ms)


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), as a signed 32-bit int.

    Kafka places a group in ``abs(hashCode) % partitions`` of the offsets topic; using the same
    function keeps our placement identical to Kafka's.
    """
    h = 0
    raw = text.encode("utf-16-be")
    for i in range(0, len(raw), 2):
        h = (31 * h + ((raw[i] << 8) | raw[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def replay_log(plog: Any, partition: int, table: Table, sink: RecordSink | None) -> None:
    """Replay one partition's log, in offset order, into ``table`` (and other records into
    ``sink``)."""
    offset, end = plog.log_start_offset, plog.log_end_offset
    while offset < end:
        records = plog.read(offset, max_records=_REPLAY_CHUNK)
        if not records:
            break
        for record in records:
            _apply(table, sink, record.key, record.value, partition, record.offset)
        offset = records[-1].offset + 1


def _apply(
    table: Table, sink: RecordSink | None, key: Any, value: Any, partition: int, offset: int
) -> None:
    try:
        decoded = decode_key(bytes(key)) if key is not None else None
        if decoded is None:
            if key is not None and sink is not None:
                sink(bytes(key), bytes(value) if value is not None else None)
            return
        group, topic, tp_partition = decoded
        committed = decode_value(bytes(value)) if value is not None else None
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as exc:
        log.error(
            "%s-%d offset %d: skipping undecodable record: %s",
            OFFSETS_TOPIC,
            partition,
            offset,
            exc,
        )
        return
    if value is not None and committed is None:
        log.warning(
            "%s-%d offset %d: skipping value of unknown version",
            OFFSETS_TOPIC,
            partition,
            offset,
        )
        return
    offsets = table.setdefault(group, {})
    if committed is None:
        offsets.pop((topic, tp_partition), None)
        if not offsets:
            del table[group]
    else:
        offsets[(topic, tp_partition)] = committed


def partition_for(group: str, partitions: int) -> int:
    """The partition of the offsets topic that holds ``group`` (Kafka's placement)."""
    return (java_string_hash(group) & 0x7FFFFFFF) % partitions


async def _flush_here(logs: list[Any]) -> None:
    for plog in logs:
        plog.flush()


class OffsetStore:
    """Committed offsets per group, durable in ``__consumer_offsets`` (see module docstring).

    ``flush`` makes appended records durable: the broker passes its group commit (fsyncs off
    the event loop, shared with acks=-1 produces); without it, logs are flushed in place.

    A partition of the offsets topic that cannot be read (it is offline in the store, or a
    damaged batch stops its replay) takes only the coordinator of the groups placed in it
    offline: :meth:`unavailable` says so, and every other group is served.
    """

    def __init__(self, store: StoreLike, partitions: int = 1, flush: Flush | None = None) -> None:
        if partitions < 1:
            raise ValueError("offsets topic needs at least one partition")
        self._store = store
        self.partitions = partitions
        self._flush = flush or _flush_here
        self._offsets: dict[str, dict[TopicPartition, CommittedOffset]] = {}
        self._unavailable: dict[int, str] = {}
        #: Takes (key, value) of records that are not offset commits during replay; returns
        #: whether it knew the record.
        self.record_sink: RecordSink | None = None
        #: In a cluster: the partitions this broker leads and has loaded (writes go through
        #: them); None on a single node, which writes to the store's logs directly.
        self.leaders: dict[int, OffsetsPartition] | None = None

    def open(self) -> None:
        """Create the offsets topic if missing (an existing one keeps its partition count),
        then replay it into memory."""
        try:
            self._store.create_topic(
                OFFSETS_TOPIC, self.partitions, config={"cleanup.policy": "compact"}
            )
        except TopicExistsError:
            pass
        self.partitions = self._store.topics()[OFFSETS_TOPIC]
        self._offsets.clear()
        self._unavailable.clear()
        for partition in range(self.partitions):
            try:
                self._replay(partition)
            except (EdplogError, OSError) as exc:
                self._unavailable[partition] = str(exc)
                log.error(
                    "%s-%d cannot be replayed (%s): the groups it holds are unavailable "
                    "(COORDINATOR_NOT_AVAILABLE) until it is repaired; other groups are served",
                    OFFSETS_TOPIC,
                    partition,
                    exc,
                )

    def _replay(self, partition: int) -> None:
        plog = self._store.log(OFFSETS_TOPIC, partition)
        replay_log(plog, partition, self._offsets, self.record_sink)

    def partition_for(self, group: str) -> int:
        return partition_for(group, self.partitions)

    def unavailable(self, group: str) -> str | None:
        """Why the group's offsets partition is offline, or None when it is served."""
        return self._unavailable.get(self.partition_for(group))

    def groups(self) -> list[str]:
        return list(self._offsets)

    def get(self, group: str) -> dict[TopicPartition, CommittedOffset]:
        """The group's committed offsets (a copy; empty if it never committed)."""
        return dict(self._offsets.get(group, {}))

    async def commit(self, group: str, entries: dict[TopicPartition, CommittedOffset]) -> None:
        """Persist ``entries`` (flushed) and then make them visible."""
        if not entries:
            return
        records = [
            (encode_key(group, topic, partition), encode_value(committed))
            for (topic, partition), committed in entries.items()
        ]
        await self._write({self.partition_for(group): records})
        self._offsets.setdefault(group, {}).update(entries)

    async def append_records(self, group: str, records: list[tuple[bytes, bytes | None]]) -> None:
        """Append other records of ``group`` (key, value or None for a tombstone) to its
        partition of the offsets topic, flushed before returning."""
        if not records:
            return
        await self._write({self.partition_for(group): list(records)})

    async def delete_group(self, group: str) -> None:
        """Tombstone every committed partition of ``group`` (flushed) and forget them."""
        table = self._offsets.get(group)
        if not table:
            return
        records: list[Record] = [(encode_key(group, topic, p), None) for topic, p in table]
        await self._write({self.partition_for(group): records})
        self._offsets.pop(group, None)

    async def delete_offsets(self, group: str, partitions: list[TopicPartition]) -> None:
        """Tombstone the committed offsets of ``partitions`` (those ``group`` has; flushed)
        and forget them (OffsetDelete)."""
        table = self._offsets.get(group, {})
        doomed = [tp for tp in dict.fromkeys(partitions) if tp in table]
        if not doomed:
            return
        records: list[Record] = [(encode_key(group, *tp), None) for tp in doomed]
        await self._write({self.partition_for(group): records})
        for tp in doomed:
            table.pop(tp, None)
        if not table:
            self._offsets.pop(group, None)

    async def delete_topic(self, topic: str) -> None:
        """Tombstone every group's committed offsets for ``topic`` (the topic was deleted).

        A topic re-created under the same name starts at offset 0 again, so positions
        committed against the old one would be wrong, not merely stale. In a cluster this
        covers the groups this broker coordinates (the ones it has in memory).
        """
        writes: dict[int, list[Record]] = {}
        doomed_by_group: dict[str, list[TopicPartition]] = {}
        for group in list(self._offsets):
            doomed = [tp for tp in self._offsets[group] if tp[0] == topic]
            if not doomed or self.unavailable(group):
                continue
            records = writes.setdefault(self.partition_for(group), [])
            records += [(encode_key(group, *tp), None) for tp in doomed]
            doomed_by_group[group] = doomed
        if writes:
            await self._write(writes)
        for group, doomed in doomed_by_group.items():
            table = self._offsets.get(group, {})
            for tp in doomed:
                table.pop(tp, None)
            if not table:
                self._offsets.pop(group, None)

    async def _write(self, records: dict[int, list[Record]]) -> None:
        """Append records to their partitions of the offsets topic and make them durable: on
        one node, flushed; in a cluster (``leaders``), one batch per partition through its
        leader, replicated to the ISR (a partition not led here: NOT_COORDINATOR)."""
        if self.leaders is None:
            touched = []
            for partition, items in records.items():
                plog = self._store.log(OFFSETS_TOPIC, partition)
                for key, value in items:
                    plog.append(value, key=key)
                touched.append(plog)
            await self._flush(touched)
            return
        writes = []
        for partition, items in records.items():
            leader = self.leaders.get(partition)
            if leader is None:
                raise KafkaError(ErrorCode.NOT_COORDINATOR, message=f"{OFFSETS_TOPIC}-{partition}")
            writes.append(replicated_append(leader, items, self._flush))
        results = await asyncio.gather(*writes, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # ---- a cluster: partitions come and go with their leadership -------------------------

    def merge(self, table: Table) -> None:
        """Take the groups replayed from a partition this broker now leads."""
        self._offsets.update(table)

    def forget_partition(self, partition: int) -> None:
        """Drop what memory holds of the groups of ``partition`` (no longer led here)."""
        self._unavailable.pop(partition, None)
        for group in [g for g in self._offsets if self.partition_for(g) == partition]:
            del self._offsets[group]

    def mark_unavailable(self, partition: int, reason: str) -> None:
        self._unavailable[partition] = reason
