"""Moving a partition between log dirs: the job a move is, and the copy that follows a
serving log (see :meth:`.log_manager.LogManager.begin_move`).

The copy runs on a thread while the partition keeps serving. A segment that only grew since
its last copy (same inode) gets its new tail; every other file is copied whole. Progress is
the offset after the last whole batch copied, found from batch headers decoded by the
extension (one header read per batch, never per record), so DescribeLogDirs can report the
future replica's lag. A delete of the partition sets ``abandoned`` and the copy stops within
a chunk.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from .. import _native
from ..errors import EdplogError, StorageError

TopicPartition = tuple[str, int]


class MoveAbandoned(StorageError):
    """The partition being moved was deleted (or its store closed) before the swap."""


@dataclass
class MoveJob:
    """One move between log dirs in progress (see :meth:`LogManager.begin_move`). The
    copier thread writes ``end_offset`` (the offset after the last whole batch copied);
    ``abandoned`` is set by a delete of the partition."""

    tp: TopicPartition
    src: str
    dst_dir: str
    future: str
    rate: int = 0
    end_offset: int = 0
    abandoned: bool = False
    renamed: bool = False
    copied: dict[str, tuple[int, int]] = field(default_factory=dict)
    batch_pos: dict[str, int] = field(default_factory=dict)  # segment -> next batch position


@dataclass
class MoveProgress:
    """A future replica as DescribeLogDirs reports it: its dir and how far it is behind the
    log end offset of the partition's log (``offset_lag``)."""

    tp: TopicPartition
    dst_dir: str
    future: str
    offset_lag: int


Copied = dict[str, tuple[int, int]]
_CHUNK_BYTES = 1 << 20
_HEADER_BYTES = 61  # a RecordBatch v2 header, all that batch_header reads with whole=False


def copy_changed(src: str, dst: str, copied: Copied, job: MoveJob | None = None) -> Copied:
    """Bring ``dst`` up to ``src``: a segment (``.log``) that only grew since it was copied
    (same inode) gets its new tail, every other file is copied whole; files gone from
    ``src`` are removed. Returns what was copied (name -> (inode, bytes)). With a ``job``,
    segments go in offset order, ``job.end_offset`` follows the whole batches copied, the
    copy keeps to ``job.rate`` bytes a second, and it stops (OSError) once abandoned."""
    now: Copied = {}
    names = set(os.listdir(src))
    # Segment files are named by base offset (zero-padded), so name order is offset order.
    for name in sorted(names, key=lambda n: (not n.endswith(".log"), n)):
        path = os.path.join(src, name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue  # removed meanwhile (retention, compaction)
        before = copied.get(name)
        try:
            with open(path, "rb") as f_in:
                if name.endswith(".log") and before and before[0] == st.st_ino:
                    start = before[1]
                    mode = "r+b"
                else:
                    start, mode = 0, "wb"
                with open(os.path.join(dst, name), mode) as f_out:
                    f_out.truncate(start)
                    f_out.seek(start)
                    f_in.seek(start)
                    if job is None:
                        shutil.copyfileobj(f_in, f_out, _CHUNK_BYTES)
                    else:
                        if start == 0:
                            job.batch_pos.pop(name, None)
                        _copy_tracked(f_in, f_out, name, job)
                    now[name] = (st.st_ino, f_out.tell())
        except FileNotFoundError:
            if job is not None and job.abandoned:
                raise
            continue
    for name in set(os.listdir(dst)) - names:
        os.unlink(os.path.join(dst, name))
    return now


def _copy_tracked(f_in: Any, f_out: Any, name: str, job: MoveJob) -> None:
    """Copy the rest of ``f_in`` chunk by chunk (see :func:`copy_changed`)."""
    started, sent = time.monotonic(), 0
    fd = f_in.fileno()
    segment = name.endswith(".log")
    while True:
        if job.abandoned:
            raise FileNotFoundError(f"{job.src}: deleted during its move")
        chunk = f_in.read(_CHUNK_BYTES)
        if not chunk:
            return
        f_out.write(chunk)
        end = f_in.tell()
        if segment:
            job.batch_pos[name] = _advance_batches(fd, job.batch_pos.get(name, 0), end, job)
        sent += len(chunk)
        if job.rate > 0:
            ahead_s = sent / job.rate - (time.monotonic() - started)
            if ahead_s > 0:
                time.sleep(min(ahead_s, 1.0))


def _advance_batches(fd: int, pos: int, end: int, job: MoveJob) -> int:
    """Walk the batch headers of a segment from ``pos`` while whole batches lie before
    ``end`` (one header read per batch, decoded by the extension, never per record); sets
    ``job.end_offset`` to the offset after the last one and returns where the next starts."""
    while pos + _HEADER_BYTES <= end:
        try:
            header = _native.batch_header(os.pread(fd, _HEADER_BYTES, pos), 0, False)
        except EdplogError:
            break  # a torn or damaged tail: the swap's final copy settles it
        if pos + header.size_bytes > end:
            break
        job.end_offset = max(job.end_offset, header.last_offset + 1)
        pos += header.size_bytes
    return pos


def fsync_tree(path: str) -> None:
    for name in os.listdir(path):
        fd = os.open(os.path.join(path, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(path)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
