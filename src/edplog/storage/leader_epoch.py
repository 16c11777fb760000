"""The leader-epoch cache of a partition and its ``leader-epoch-checkpoint`` file.

Each entry says "leader epoch E started at offset O": the first batch a leader of epoch E wrote
has base offset O. Replication uses it to find where a follower's log diverges from the
leader's (OffsetsForLeaderEpoch, KIP-101/279): the end offset of an epoch is the start offset
of the next one, or the log end offset for the latest epoch. Truncating on that, never on the
high watermark, is what keeps a failover from losing or diverging acknowledged records.

File layout (Kafka's, text, one item a line)::

    0                      version
    N                      number of entries
    <epoch> <start offset> N lines, epochs and offsets ascending

The file is replaced atomically on every change. It is derived data: opening a log
after a crash drops entries past the recovered log end and re-learns epochs from the batches
of the recovered tail (their partitionLeaderEpoch field).
"""

from __future__ import annotations

import bisect
import logging
import os
from typing import NamedTuple

from .checkpoint import write_atomically

FILE_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
_VERSION = "0"

log = logging.getLogger("edplog.storage")


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class LeaderEpochCache:
    """Epoch -> start offset for one partition directory (see the module docstring).

    Thread-safety: callers serialise changes (the log's writer lock); lookups may run
    concurrently with them (each change replaces the entry list).
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, FILE_NAME)
        self._dirty = False
        self._entries: list[EpochEntry] = self._read()

    def _read(self) -> list[EpochEntry]:
        if not os.path.exists(self.path):
            return []
        try:
            return _parse(self.path)
        except (OSError, UnicodeDecodeError, IndexError, ValueError) as exc:
            log.warning("%s: unusable (%s); epochs are re-learnt from the log", self.path, exc)
            return []

    @staticmethod
    def read_file(path: str) -> list[EpochEntry] | None:
        """The entries of a checkpoint file, or None when it cannot be parsed."""
        try:
            return _parse(path)
        except (OSError, UnicodeDecodeError, IndexError, ValueError):
            return None

    def _write(self, entries: list[EpochEntry]) -> None:
        """Change the entries and rewrite the file. A failed write (a full disk) keeps the
        change in memory, logged, and is retried by ``retry_write`` (the log's next
        checkpoint): an append never fails for this derived file."""
        self._entries = entries
        self._dirty = True
        self.retry_write()

    def retry_write(self) -> None:
        """Write the file if a change has not reached it yet."""
        if not self._dirty:
            return
        entries = self._entries
        text = f"{_VERSION}\n{len(entries)}\n" + "".join(f"{e} {o}\n" for e, o in entries)
        try:
            write_atomically(self.path, text.encode("ascii"))
        except OSError as exc:
            log.warning(
                "%s: not written (%s); kept in memory and written again later", self.path, exc
            )
            return
        self._dirty = self._entries is not entries

    # ---- queries ----------------------------------------------------------------------------

    @property
    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        """The latest epoch, or -1 when none is known."""
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch of the leader that wrote ``offset`` (-1 when unknown)."""
        starts = [e.start_offset for e in self._entries]
        i = bisect.bisect_right(starts, offset) - 1
        return self._entries[i].epoch if i >= 0 else UNDEFINED_EPOCH

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's OffsetsForLeaderEpoch answer: ``(epoch', end offset)``.

        For the latest epoch, the log end offset. Otherwise the start offset of the first
        epoch above the one asked for, paired with the largest known epoch at or below it (or
        the asked epoch itself when it is below every known one). An epoch above every known
        one, or -1, gives ``(-1, -1)``.
        """
        entries = self._entries
        if epoch == UNDEFINED_EPOCH or not entries:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if entries[-1].epoch == epoch:
            return epoch, log_end_offset
        epochs = [e.epoch for e in entries]
        higher = bisect.bisect_right(epochs, epoch)
        if higher == len(entries):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if higher == 0:
            return epoch, entries[0].start_offset
        return entries[higher - 1].epoch, entries[higher].start_offset

    # ---- changes ----------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; returns whether anything changed.

        An epoch below the latest is ignored (a stale leader); the same epoch again keeps its
        first start offset. Entries at or above the new start offset are replaced, which is
        what a truncation that was not reported (a crash) needs.
        """
        if epoch < 0:
            return False
        entries = self._entries
        if entries:
            latest = entries[-1]
            if epoch < latest.epoch:
                log.warning(
                    "%s: epoch %d at offset %d is below the latest epoch %d; ignored",
                    self.path,
                    epoch,
                    start_offset,
                    latest.epoch,
                )
                return False
            if epoch == latest.epoch and start_offset >= latest.start_offset:
                return False
        kept = [e for e in entries if e.epoch < epoch and e.start_offset < start_offset]
        self._write([*kept, EpochEntry(epoch, start_offset)])
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """The log was truncated to ``end_offset``: forget epochs that start at or after it."""
        kept = [e for e in self._entries if e.start_offset < end_offset]
        if len(kept) != len(self._entries):
            self._write(kept)

    def truncate_from_start(self, start_offset: int) -> None:
        """The log start moved to ``start_offset``: drop epochs wholly below it; the epoch
        that holds it now starts there."""
        entries = self._entries
        starts = [e.start_offset for e in entries]
        i = bisect.bisect_right(starts, start_offset) - 1
        if i < 0 or (i == 0 and entries[0].start_offset == start_offset):
            return
        kept = [EpochEntry(entries[i].epoch, start_offset), *entries[i + 1 :]]
        if kept != entries:
            self._write(kept)

    def clear(self) -> None:
        if self._entries or os.path.exists(self.path):
            self._write([])


def _parse(path: str) -> list[EpochEntry]:
    with open(path, encoding="ascii") as f:
        lines = f.read().split("\n")
    if lines[0] != _VERSION:
        raise ValueError(f"version {lines[0]!r}")
    count = int(lines[1])
    entries = []
    for line in lines[2 : 2 + count]:
        epoch, start = line.split()
        entries.append(EpochEntry(int(epoch), int(start)))
    if len(entries) != count:
        raise ValueError(f"{len(entries)} entries, the header says {count}")
    return entries
