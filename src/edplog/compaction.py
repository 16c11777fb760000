"""Log compaction: keep the latest record of every key (``cleanup.policy=compact``).

Only sealed segments are cleaned; the active one is left alone. A record survives when it is
the newest one for its key anywhere in the log; records without a key are kept. A tombstone
(a null value) is kept for ``delete.retention.ms`` after the batch holding it was written, so
consumers that are behind still see the delete, and then removed.

A batch keeps its base offset, last offset delta, producer fields and codec, so offsets never
change and the batch still tells where the next one starts; a batch left with no record is
dropped. Each cleaned segment is written beside the old one as ``<base>.log.cleaned``, fsynced,
its index files removed, and renamed over the old ``.log`` (atomic): a crash leaves the old or
the new segment, never a mix, and the indexes are rebuilt on open.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from . import _native, checkpoint
from .codecs import codec_id

if TYPE_CHECKING:
    from .log import Log

_CHUNK = 4 << 20


def _batches(seg: _native.Segment) -> list[tuple[_native.Batch, bytes]]:
    """Every batch of a segment with its raw bytes, CRC checked."""
    out = []
    pos = 0
    while pos < seg.size:
        data = seg.pread(pos, _CHUNK)
        used = 0
        for batch in _native.decode_batches(_whole(data)):
            out.append((batch, data[used : used + batch.size_bytes]))
            used += batch.size_bytes
        if used == 0:
            length = int.from_bytes(data[8:12], "big") + 12
            data = seg.pread(pos, length)
            batch = _native.decode_batches(data)[0]
            out.append((batch, data))
            used = length
        pos += used
    return out


def _whole(data: bytes) -> bytes:
    """The prefix of data made of whole batches."""
    pos = 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos + 8 : pos + 12], "big") + 12
        if pos + length > len(data):
            break
        pos += length
    return data[:pos]


def compact_log(log: Log, now_ms: int | None = None) -> int:
    """Compact log's sealed segments; returns the number of records removed."""
    if not log.config.compact:
        return 0
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    tombstone_deadline = now_ms - log.config["delete.retention.ms"]
    log._acquire()
    try:
        log._check_open()
        log._seal_held()
        sealed = log._segments[:-1]
        if not sealed:
            return 0
        # Nothing new to clean since the last pass, and no tombstone waiting to expire.
        state = (sealed[-1].base_offset, len(sealed))
        if getattr(log, "_compacted", None) == state and not getattr(log, "_tombstones", 0):
            return 0
        latest: dict[bytes, int] = {}
        for rec in log._iter_written():
            if rec.key is not None:
                latest[rec.key] = rec.offset
        removed = 0
        tombstones = [0]
        for i, seg in enumerate(sealed):
            removed += _clean_segment(log, i, seg, latest, tombstone_deadline, tombstones)
        log._compacted = state
        log._tombstones = tombstones[0]
        return removed
    finally:
        log._release()


def _clean_segment(
    log: Log,
    index: int,
    seg: _native.Segment,
    latest: dict[bytes, int],
    tombstone_deadline: int,
    tombstones: list[int],
) -> int:
    out = bytearray()
    removed = 0
    for batch, raw in _batches(seg):
        if batch.is_control:
            out += raw
            continue
        keep = [
            r
            for r in batch.records
            if r.key is None
            or (
                latest.get(r.key) == r.offset
                and not (r.value is None and batch.max_timestamp_ms < tombstone_deadline)
            )
        ]
        removed += len(batch.records) - len(keep)
        tombstones[0] += sum(1 for r in keep if r.key is not None and r.value is None)
        if len(keep) == len(batch.records):
            out += raw
        elif keep:
            builder = _native.BatchBuilder()
            for r in keep:
                builder.append_at(
                    r.offset - batch.base_offset, r.value, r.key, r.headers, r.timestamp_ms
                )
            out += builder.build(
                codec_id(batch.compression),
                base_offset=batch.base_offset,
                leader_epoch=batch.leader_epoch,
                producer_id=batch.producer_id,
                producer_epoch=batch.producer_epoch,
                base_sequence=batch.base_sequence,
                transactional=batch.is_transactional,
                last_offset_delta=batch.last_offset - batch.base_offset,
            )
    if not removed:
        return 0
    log_path, index_path, time_path = _native.segment_file_names(log.path, seg.base_offset)
    tmp = log_path + ".cleaned"
    checkpoint.write_atomically(tmp, bytes(out))  # written and fsynced under a temporary name
    for name in (index_path, time_path):
        if os.path.exists(name):
            os.unlink(name)
    os.replace(tmp, log_path)
    checkpoint.fsync_dir(log.path)
    fresh = log._segment(seg.base_offset, sealed=True)
    fresh.load()
    fresh.seal()
    log._segments[index] = fresh
    return removed
