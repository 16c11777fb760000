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
from ..errors import CorruptRecordError
from . import segments as seg_files
from .checkpoint import fsync_dir

CLEANING_DIR = ".cleaning"
# Kafka's log.cleaner.dedupe.buffer.size default: the most one pass's key map takes.
DEDUPE_BUFFER_BYTES = 128 * 1024 * 1024
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


def _chunks(seg: Any, upto: int) -> Any:
    """Whole batches of a segment up to byte ``upto``, a few MiB at a time."""
    pos = 0
    while pos < upto:
        data = seg.pread(pos, min(_CHUNK, upto - pos))
        whole = _native.whole_batches(data)
        if whole == 0:
            length = _native.announced_batch_bytes(data)
            if length <= len(data) or pos + length > upto:
                raise CorruptRecordError(
                    f"{seg.path}: unreadable batch at position {pos}", path=seg.path, position=pos
                )
            data = seg.pread(pos, length)
            whole = len(data)
        yield memoryview(data)[:whole]
        pos += whole


def map_capacity_bytes(records: int, limit: int = DEDUPE_BUFFER_BYTES) -> int:
    """Room for ``records`` keys at most (24 bytes each, filled to 80 %), within ``limit``."""
    return max(1 << 16, min(limit, records * 24 * 5 // 4 + 4096))


def run_pass(
    log_dir: str,
    segments: list[Any],
    config: Any,
    now_ms: int | None,
    state: CleanerState,
    dedupe_buffer_bytes: int = DEDUPE_BUFFER_BYTES,
) -> Pass:
    """Clean the sealed segments of a snapshot of the log's segment list (the last one is
    active and only read). Runs without the log's lock; the caller swaps the result in.

    The key walk and the rewrite are native (no Python object per record): every keyed
    record's key goes into an OffsetMap of 128-bit fingerprints (``dedupe_buffer_bytes`` at
    most, Kafka's ``log.cleaner.dedupe.buffer.size``), then each sealed segment is rewritten
    keeping what the map says is newest. A map that fills up covers a prefix of the log; a
    record the map does not know, or one at or above the offset it knows, is kept, so a full
    map only cleans less.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    sealed = segments[:-1]
    result = Pass()
    if not needs_pass(state, sealed):
        return result
    tombstone_deadline = now_ms - config["delete.retention.ms"]
    sizes = [s.size for s in segments]
    records = max(segments[-1].next_offset - segments[0].base_offset, 1)
    offset_map = _native.OffsetMap(map_capacity_bytes(records, dedupe_buffer_bytes))
    for seg, size in zip(segments, sizes, strict=True):
        for chunk in _chunks(seg, size):
            _, _, full = offset_map.add_batches(chunk)
            if full:
                break
        if offset_map.full:
            break
    work = cleaning_dir(log_dir)
    os.makedirs(work, exist_ok=True)
    tombstones = 0
    for seg, size in zip(sealed, sizes, strict=False):
        removed, kept_tombstones = _rewrite(seg, size, offset_map, tombstone_deadline, work, config)
        tombstones += kept_tombstones
        if removed:
            result.cleaned.append(CleanedSegment(seg, work, removed))
            result.removed += removed
    state.sealed_seen = (sealed[-1].base_offset, len(sealed)) if sealed else None
    state.tombstones = tombstones
    state.removed_total += result.removed
    return result


def _rewrite(
    seg: Any, size: int, offset_map: Any, tombstone_deadline: int, work: str, config: Any
) -> tuple[int, int]:
    """Rewrite one sealed segment into ``work`` if compaction removes anything from it.

    Memory stays at one chunk: the new segment is only created at the first chunk that loses
    a record, and the chunks before it (unchanged) are copied over from the old file then."""
    new = None
    removed = tombstones = 0
    done = 0
    try:
        for chunk in _chunks(seg, size):
            out = bytearray()
            gone, kept = _native.filter_batches(chunk, offset_map, tombstone_deadline, out)
            removed += gone
            tombstones += kept
            if gone and new is None:
                new = seg_files.open_segment(work, seg.base_offset, config)
                for earlier in _chunks(seg, done):
                    new.append(earlier)
            if new is not None and out:
                new.append(out)
            done += len(chunk)
        if new is not None:
            new.seal()
            new.flush()
    finally:
        if new is not None:
            new.close()
    return removed, tombstones


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
