"""The durability side of a :class:`.log.Log`: rolls, flushes, checkpoints, revival.

The native writer counts what is durable (the recovery point) and fsyncs; this layer decides
when: a roll's segment is fsynced by the roll flusher, ``flush()`` is a group commit, and the
checkpoint files (recovery point, log start offset, producer snapshots) are rewritten at rolls,
at closes and at most once per _CHECKPOINT_INTERVAL_S by flushes. Those files only shorten a
crash recovery, so failing to write them is logged, never raised. After a disk failure
:meth:`DurableLog.revive` takes writes again once there is room.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import _native
from ..config import LogConfig
from ..errors import LogClosedError
from . import checkpoint
from . import segments as seg_files
from .leader_epoch import LeaderEpochCache
from .producer_state import ProducerStateManager
from .reader import LogReader

log = logging.getLogger("edplog.storage")

# The recovery-point checkpoint is rewritten at most this often by flushes (it only bounds
# how much a crash recovery re-validates; rolls and closes write it at once).
_CHECKPOINT_INTERVAL_S = 1.0
# The free space a log whose disk filled waits for before it takes writes again: room for a
# few batches, so that the first append does not fail again at once.
_REVIVE_HEADROOM_BYTES = 256 << 10


class DurableLog:
    """The parts of a partition log that :class:`.log.Log` sets up, and what makes its records
    durable. Not used alone: Log opens the directory and builds the native writer."""

    path: str
    config: LogConfig
    leader_epochs: LeaderEpochCache
    producer_state: ProducerStateManager
    _core: _native.LogCore
    _reader: LogReader
    _closed: bool
    _checkpoint_lock: threading.Lock
    _producer_lock: threading.RLock
    _last_checkpoint: float
    _last_metadata_warning: float

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"{self.path}: the log is closed", path=self.path)

    @contextmanager
    def _writer_locked(self) -> Iterator[None]:
        with self._producer_lock:
            self._core.acquire()
            try:
                self._check_open()
                yield
            finally:
                self._core.release()

    def roll(self) -> None:
        """Start a new segment now (the open batch is written first).

        Unlike the rolls appends trigger, this waits until the rolled segment is fsynced and
        the checkpoint says so."""
        with self._writer_locked():
            rolled = self._core.roll_held()
        if rolled is not None:
            self.finish_roll(rolled)

    def finish_roll(self, segment: Any) -> None:
        """Complete a roll: fsync the rolled segment (if no flush did already), snapshot the
        producer state and rewrite the checkpoint. The roll flusher calls this in the
        background for rolls that appends trigger."""
        if self._closed:
            return
        try:
            self._core.flush_rolled(segment)
        except LogClosedError:
            return
        except OSError:
            log.exception(
                "%s: fsync of rolled segment %s failed; the log refuses writes",
                self.path,
                segment.path,
            )
            return
        self._snapshot_producers()
        self.write_checkpoint()

    def _snapshot_producers(self) -> None:
        """A producer-state snapshot at the written end (best effort, like the checkpoint: a
        missing snapshot only means a longer replay of batch headers on the next open)."""
        with self._producer_lock:
            if self._closed or (
                not len(self.producer_state) and self.producer_state.last_snapshot_offset < 0
            ):
                return
            try:
                self.producer_state.take_snapshot(self._core.written_end_offset)
            except OSError as exc:
                self._metadata_write_failed("a producer snapshot", exc)

    def flush(self) -> None:
        """Make every record appended so far durable (fdatasync).

        Group commit: callers that arrive while a flush is running wait for it and return
        at once if it covered their records.
        """
        self._check_open()
        before = self._core.recovery_point
        self._core.flush()
        if self._core.recovery_point != before:
            self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_checkpoint >= _CHECKPOINT_INTERVAL_S:
            self.write_checkpoint()

    def write_checkpoint(self) -> None:
        """Rewrite ``log.checkpoint`` with the current recovery point and log start offset
        (and the leader-epoch checkpoint, if an earlier write of it failed).

        Best effort: these files only shorten a crash recovery, so a failure to write them (a
        full disk) is logged, never raised, and never poisons the log; the next checkpoint
        tries again. What the records are is decided by the segments alone."""
        with self._checkpoint_lock:  # the roll flusher writes it too
            if self._closed:
                return
            self._last_checkpoint = time.monotonic()
            try:
                checkpoint.write_checkpoint(
                    self.path, self._core.recovery_point, self._core.log_start_offset
                )
                self.leader_epochs.retry_write()
            except OSError as exc:
                self._metadata_write_failed("log.checkpoint", exc)

    def _metadata_write_failed(self, what: str, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._last_metadata_warning >= 60:
            self._last_metadata_warning = now
            log.warning(
                "%s: could not write %s (%s); it is written again later", self.path, what, exc
            )

    def _reload_producers(self, end: int) -> None:
        """Producer state from the newest snapshot, then the batches after it."""
        state = self.producer_state
        snap = state.load(end)
        start = max(snap, self._core.log_start_offset)
        if start < end:
            state.apply(self._reader.scan_headers(start, producers_only=True))
        state.remove_before(self._core.log_start_offset)

    def revive(self) -> bool:
        """After a disk failure, once space is back: fsync what the log holds and take writes
        again. Returns whether the log is writable now (False: the disk still fails; it stays
        poisoned and nothing changed).

        After a failed write alone, every batch written before it stays (the failed one was
        cut back when it failed). After a failed flush the log is first cut to the fence, the
        last durable offset: writers waiting on that flush were told it failed, and what they
        wrote was never served."""
        core = self._core
        with self._writer_locked():
            if not core.poisoned and core.fenced_offset < 0:
                return True
            # Only with room for at least one more batch: a disk that is still full would
            # fail the next append at once.
            stat = os.statvfs(self.path)
            free = stat.f_bavail * stat.f_frsize
            if free < _REVIVE_HEADROOM_BYTES:
                return False
            keep = core.fenced_offset if core.fenced_offset >= 0 else core.written_end_offset
            segments = list(core.segments)
            kept = [seg for seg in segments if seg.base_offset <= keep] or segments[:1]
            last = kept[-1]
            try:
                last.revive(keep)
            except OSError as exc:
                log.warning("%s: still cannot write (%s); it stays refused", self.path, exc)
                return False
            for seg in segments[len(kept) :]:
                seg.close()
                seg_files.delete_files(self.path, seg.base_offset)
            last.sealed = False
            core.replace_segments_held(kept, True)
            core.fenced_offset = -1
            end = core.log_end_offset
            core.lower_durable_offset_held(end)
            self.leader_epochs.truncate_from_end(end)
            with self._producer_lock:
                self.producer_state.truncate_snapshots(end)
                self._reload_producers(end)
        log.warning("%s: writable again; the log now ends at offset %d", self.path, end)
        self.write_checkpoint()
        return True
