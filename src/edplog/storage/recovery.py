"""Opening a partition directory: trusting what was flushed, recovering what was not.

After a clean shutdown every segment is loaded as it is (its indexes sanity-checked and rebuilt
when in doubt). After a crash the segments from the one holding the recovery point on are
validated batch by batch (structure, offsets and CRC): the first invalid batch and everything
after it are cut, and what was cut is reported. What lies below the recovery point was fsynced;
damage there is never dropped: opening refuses the partition, naming the file and position.

Also refused, unless the caller accepts it: a hole in the offsets (a segment file missing:
segments are contiguous, each starting where the one before ends, so a gap can only be a
lost file) and an index file whose ``.log`` is gone. Bytes past the recorded end of a cleanly
closed log lie beyond every record ever acknowledged: they are cut with a warning.
"""

from __future__ import annotations

import bisect
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptRecordError, PartitionOfflineError
from . import checkpoint, segments

log = logging.getLogger("edplog.storage")


@dataclass
class OpenedLog:
    """What opening a partition directory found."""

    segments: list[Any]
    log_start_offset: int
    durable_offset: int
    clean: bool
    # The offset from which batches were re-validated after a crash (their leader epochs and
    # producer batches must be re-learnt), or -1 after a clean shutdown.
    recovered_from: int = -1
    report: list[str] = field(default_factory=list)


def open_log(path: str, config: Any, *, accept_gaps: bool = False) -> OpenedLog:
    """Open every segment of the partition directory ``path`` (see the module docstring).

    Raises CorruptRecordError for damage that would lose flushed data, and
    PartitionOfflineError for a missing segment or a stray index (unless ``accept_gaps``).
    """
    report: list[str] = []
    removed = segments.remove_leftovers(path)
    if removed:
        log.info("%s: removed leftovers of an interrupted operation: %s", path, removed)
    marker = checkpoint.read_clean_shutdown(path)
    cp = checkpoint.read_checkpoint(path)
    bases = segments.segment_bases(path)
    _check_orphans(path, bases, accept_gaps, report)
    recovery_point = cp.get("recovery-point", 0)
    clean = marker is not None
    if not bases:
        start = max(cp.get("log-start-offset", 0), 0)
        seg = segments.open_segment(path, start, config)
        return OpenedLog([seg], start, start, True)
    if marker is not None and marker.active_segment == bases[-1] and marker.active_size >= 0:
        _cut_past_clean_end(path, bases[-1], marker.active_size, report)
    # Recover from the segment that holds the recovery point; trust what lies below.
    first_recovered = len(bases)
    if not clean:
        first_recovered = max(bisect.bisect_right(bases, recovery_point) - 1, 0)
    opened: list[Any] = []
    try:
        for i, base in enumerate(bases):
            last = i == len(bases) - 1
            seg = segments.open_segment(path, base, config, sealed=not last)
            opened.append(seg)
            if i >= first_recovered:
                if _recover(seg, recovery_point, report) and not last:
                    seg.sealed = False  # everything after it is gone: it is the active one now
                    for later in bases[i + 1 :]:
                        segments.delete_files(path, later)
                        report.append(f"deleted segment {later:020d}.log after a damaged one")
                    break
            else:
                expected_end = bases[i + 1] if not last else _clean_end(marker)
                _load(seg, expected_end, report)
            if not last:
                seg.seal()
        _check_contiguous(path, opened, accept_gaps, report)
    except BaseException:
        for seg in opened:
            seg.close()
        raise
    active = opened[-1]
    log_start = max(cp.get("log-start-offset", 0), opened[0].base_offset)
    durable = active.next_offset if clean else min(recovery_point, active.next_offset)
    recovered_from = -1 if clean else bases[first_recovered]
    for line in report:
        log.warning("%s: %s", path, line)
    return OpenedLog(opened, log_start, durable, clean, recovered_from, report)


def _clean_end(marker: checkpoint.CleanShutdown | None) -> int:
    return marker.log_end_offset if marker is not None else -1


def _check_orphans(path: str, bases: list[int], accept: bool, report: list[str]) -> None:
    orphans = segments.orphan_index_bases(path)
    if not orphans:
        return
    names = ", ".join(f"{b:020d}.log" for b in orphans)
    if not accept:
        raise PartitionOfflineError(
            f"{path}: segment file(s) {names} are missing (their index files remain); the "
            "offsets they held are lost. Restore the files, or accept the gap (the broker "
            "property log.accept.missing.segments=true, or Log(..., accept_gaps=True))",
            path=path,
        )
    for base in orphans:
        for name in segments.file_names(path, base)[1:]:
            if os.path.exists(name):
                os.unlink(name)
    report.append(f"accepted missing segment(s) {names}; removed their index files")


def _cut_past_clean_end(path: str, base: int, size: int, report: list[str]) -> None:
    """Bytes past the active segment's size at a clean shutdown were never acknowledged."""
    log_path = segments.file_names(path, base)[0]
    actual = os.path.getsize(log_path)
    if actual > size:
        os.truncate(log_path, size)
        report.append(
            f"cut {actual - size} bytes past the end recorded at the last clean shutdown "
            f"({os.path.basename(log_path)} held {size} bytes then)"
        )


def _recover(seg: Any, recovery_point: int, report: list[str]) -> bool:
    """Recover one segment; returns whether its tail was cut."""
    try:
        valid, cut, batches, records, reason = seg.recover(recovery_point)
    except CorruptRecordError as exc:
        raise CorruptRecordError(
            f"{seg.path}: damaged below the recovery point {recovery_point} ({exc}); "
            "the partition cannot be opened without losing flushed data",
            path=seg.path,
            position=exc.position,
            offset=exc.offset,
        ) from exc
    if cut:
        report.append(
            f"cut {cut} bytes at position {valid} of {os.path.basename(seg.path)} "
            f"({batches} whole batches, {records} records kept): {reason}"
        )
    return bool(cut > 0)


def _load(seg: Any, expected_end: int, report: list[str]) -> None:
    """Load a trusted segment. If its batches stop chaining before the end of the file but
    cover every offset it should hold (up to the next segment's base, or the end recorded
    at a clean shutdown), the rest is junk beyond every record: it is cut with a warning."""
    try:
        seg.load()
        return
    except CorruptRecordError as exc:
        damage = exc
    if expected_end >= 0:
        try:
            valid, cut, _, _, reason = seg.recover(expected_end)
        except CorruptRecordError:
            pass
        else:
            if seg.next_offset >= expected_end:
                if cut:
                    report.append(
                        f"cut {cut} bytes past the last batch of {os.path.basename(seg.path)} "
                        f"(position {valid}), beyond every stored record: {reason}"
                    )
                return
    raise CorruptRecordError(
        f"{seg.path}: damaged below the recovery point ({damage}); "
        "the partition cannot be opened without losing flushed data",
        path=seg.path,
        position=damage.position,
    ) from damage


def _check_contiguous(path: str, opened: list[Any], accept: bool, report: list[str]) -> None:
    for prev, nxt in zip(opened, opened[1:], strict=False):
        if prev.next_offset == nxt.base_offset:
            continue
        if prev.next_offset > nxt.base_offset:
            raise PartitionOfflineError(
                f"{path}: segments overlap: {os.path.basename(prev.path)} ends at offset "
                f"{prev.next_offset} but {os.path.basename(nxt.path)} starts at "
                f"{nxt.base_offset}",
                path=path,
            )
        gap = f"offsets [{prev.next_offset}, {nxt.base_offset})"
        if not accept:
            raise PartitionOfflineError(
                f"{path}: {gap} are missing between {os.path.basename(prev.path)} and "
                f"{os.path.basename(nxt.path)} (a segment file was lost). Restore it, or "
                "accept the gap (the broker property log.accept.missing.segments=true, or "
                "Log(..., accept_gaps=True))",
                path=path,
            )
        report.append(f"accepted missing {gap}")
