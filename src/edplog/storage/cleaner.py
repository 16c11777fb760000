"""Log compaction: keep the latest record of every key (``cleanup.policy=compact``).

Only sealed segments are rewritten; the active one is left alone. A record survives when it is
the newest one for its key in the log (as far as the pass has read); records without a key are
kept. A tombstone (a null value) is kept for ``delete.retention.ms`` after the batch holding it
was written, so consumers that are behind still see the delete, and then removed.

A batch keeps its base offset, last offset delta, producer fields and codec, so offsets never
change and the batch still tells where the next one starts. A batch left with no record is
dropped, except the last one of a segment, which stays as an empty batch: a segment's offset
range never shrinks, so segments stay contiguous and a missing segment file shows as a gap.

The work happens off the log's writer lock, as Kafka's cleaner does: each cleaned segment is
written, indexed and fsynced in ``.cleaning/`` inside the partition directory, and the log
then swaps the files in under its lock (:meth:`edplog.storage.log.Log.compact`). A crash
leaves the old or the new segment, never a mix; leftovers are removed on the next open.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from .. import _native
from ..codecs import codec_id
from . import segments as seg_files
from .checkpoint import fsync_dir

CLEANING_DIR = ".cleaning"
_CHUNK = 4 << 20


@dataclass
class CleanerState:
    """What the last pass over one log saw (kept by the log, changed only here)."""

    sealed_seen: tuple[int, int] | None = None  # (last sealed base, sealed count)
    tombstones: int = 0
    removed_total: int = 0


@dataclass
class CleanedSegment:
    """A cleaned copy of ``old``: its files wait in ``directory`` for the swap."""

    old: Any
    directory: str
    removed: int


@dataclass
class Pass:
    """The result of one cleaning pass, to be swapped in by the log."""

    cleaned: list[CleanedSegment] = field(default_factory=list)
    removed: int = 0


def cleaning_dir(log_dir: str) -> str:
    return os.path.join(log_dir, CLEANING_DIR)


def remove_leftovers(log_dir: str) -> bool:
    """Delete the work directory an interrupted pass left; returns whether there was one."""
    path = cleaning_dir(log_dir)
    if os.path.isdir(path):
        shutil.rmtree(path)
        return True
    return False


def needs_pass(state: CleanerState, sealed: list[Any]) -> bool:
    """Skip a pass when no segment was sealed since the last one and no tombstone waits."""
    if not sealed:
        return False
    return state.sealed_seen != (sealed[-1].base_offset, len(sealed)) or state.tombstones > 0


def _batches(seg: Any, upto: int) -> list[tuple[Any, bytes]]:
    """The batches of a segment up to byte ``upto``, with their raw bytes, CRC checked."""
    out = []
    pos = 0
    while pos < upto:
        data = seg.pread(pos, min(_CHUNK, upto - pos))
        whole = _native.whole_batches(data)
        if whole == 0:
            data = seg.pread(pos, _native.announced_batch_bytes(data))
            whole = len(data)
        used = 0
        for batch in _native.decode_batches(memoryview(data)[:whole]):
            out.append((batch, data[used : used + batch.size_bytes]))
            used += batch.size_bytes
        pos += used
    return out


def run_pass(
    log_dir: str, segments: list[Any], config: Any, now_ms: int | None, state: CleanerState
) -> Pass:
    """Clean the sealed segments of a snapshot of the log's segment list (the last one is
    active and only read). Runs without the log's lock; the caller swaps the result in."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    sealed, active = segments[:-1], segments[-1]
    result = Pass()
    if not needs_pass(state, sealed):
        return result
    tombstone_deadline = now_ms - config["delete.retention.ms"]
    sizes = [s.size for s in segments]
    latest: dict[bytes, int] = {}
    for seg, size in zip(segments, sizes, strict=True):
        for batch, _ in _batches(seg, size):
            if batch.is_control:
                continue
            for r in batch.records:
                if r.key is not None:
                    latest[r.key] = r.offset
    del active
    work = cleaning_dir(log_dir)
    os.makedirs(work, exist_ok=True)
    tombstones = 0
    for seg, size in zip(sealed, sizes, strict=False):
        removed, kept_tombstones, out = _filter(seg, size, latest, tombstone_deadline)
        tombstones += kept_tombstones
        if not removed:
            continue
        new = seg_files.open_segment(work, seg.base_offset, config)
        try:
            new.append(bytes(out))
            new.seal()
            new.flush()
        finally:
            new.close()
        result.cleaned.append(CleanedSegment(seg, work, removed))
        result.removed += removed
    state.sealed_seen = (sealed[-1].base_offset, len(sealed)) if sealed else None
    state.tombstones = tombstones
    state.removed_total += result.removed
    return result


def _filter(
    seg: Any, size: int, latest: dict[bytes, int], tombstone_deadline: int
) -> tuple[int, int, bytearray]:
    """(records removed, tombstones kept, the rewritten batches) for one sealed segment."""
    out = bytearray()
    removed = 0
    tombstones = 0
    batches = _batches(seg, size)
    for i, (batch, raw) in enumerate(batches):
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
        tombstones += sum(1 for r in keep if r.key is not None and r.value is None)
        last_of_segment = i == len(batches) - 1
        if len(keep) == len(batch.records):
            out += raw
        elif keep or last_of_segment:
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
                base_timestamp_ms=-1 if keep else batch.base_timestamp_ms,
                max_timestamp_ms=batch.max_timestamp_ms,
            )
    return removed, tombstones, out


def swap_in(log_dir: str, cleaned: CleanedSegment, config: Any) -> Any:
    """Move a cleaned segment's files over the old ones (the log's writer lock is held) and
    return the opened new segment. The old indexes go first and the new .log is renamed
    over the old one before its indexes arrive, so a crash at any point leaves a .log whose
    indexes are either its own or missing (and then rebuilt)."""
    base = cleaned.old.base_offset
    old_log, old_index, old_time = seg_files.file_names(log_dir, base)
    new_log, new_index, new_time = seg_files.file_names(cleaned.directory, base)
    for name in (old_index, old_time):
        if os.path.exists(name):
            os.unlink(name)
    os.replace(new_log, old_log)
    os.replace(new_index, old_index)
    os.replace(new_time, old_time)
    fsync_dir(log_dir)
    fresh = seg_files.open_segment(log_dir, base, config, sealed=True)
    fresh.load()
    fresh.seal()
    return fresh


def discard(cleaned: CleanedSegment) -> None:
    """Drop a cleaned copy whose segment left the log meanwhile (retention, truncation)."""
    seg_files.delete_files(cleaned.directory, cleaned.old.base_offset)
