"""Removing records from the start of a :class:`.log.Log`: DeleteRecords, retention,
compaction, producer expiry.

The rules are elsewhere (:mod:`.retention` picks the segments to delete, :mod:`.cleaner`
compacts off the writer lock); this layer applies them under the log's locks, moves the log
start offset and keeps the leader-epoch cache and the producer state in step with it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import OffsetOutOfRangeError
from . import cleaner, retention
from . import segments as seg_files
from .log_durability import DurableLog

log = logging.getLogger("edplog.storage")


class LogHousekeeping(DurableLog):
    """The log start offset's moves and the background jobs' work on one log."""

    cleaner_state: cleaner.CleanerState

    def delete_records_before(self, offset: int) -> int:
        """Make offset the new log start offset; whole segments below it are deleted.

        Returns the log start offset. Raises OffsetOutOfRangeError above the log end.
        """
        core = self._core
        rolled = None
        with self._writer_locked():
            core.seal_held()
            if offset > core.log_end_offset:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is above the log end offset {core.log_end_offset}",
                    offset=offset,
                )
            if offset <= core.log_start_offset:
                return int(core.log_start_offset)
            core.log_start_offset = offset
            if core.active.next_offset <= offset and core.active.size:
                rolled = core.roll_held()
            segments = list(core.segments)
            while len(segments) > 1 and segments[0].next_offset <= offset:
                self._drop(segments.pop(0), "below the log start offset")
            core.replace_segments_held(segments)
            self._after_start_moved()
        if rolled is not None:
            self.finish_roll(rolled)
        self.write_checkpoint()
        return int(core.log_start_offset)

    def _drop(self, seg: Any, why: str) -> None:
        """Remove a segment's files (writer lock held). Readers that still hold it keep
        reading through its open descriptors until they let go."""
        seg_files.delete_files(self.path, seg.base_offset)
        log.info("%s: deleted segment %020d (%s)", self.path, seg.base_offset, why)

    def _after_start_moved(self) -> None:
        core = self._core
        core.log_start_offset = max(core.log_start_offset, core.segments[0].base_offset)
        self.leader_epochs.truncate_from_start(core.log_start_offset)
        with self._producer_lock:
            self.producer_state.remove_before(core.log_start_offset)

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete whole old segments per retention.ms and retention.bytes (delete policy).

        The active segment is never deleted. Returns the number of segments deleted.
        """
        if not self.config.delete:
            return 0
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        core = self._core
        with self._writer_locked():
            segments = list(core.segments)
            doomed = retention.segments_to_delete(
                segments, now_ms, self.config["retention.ms"], self.config["retention.bytes"]
            )
            if not doomed:
                return 0
            for seg, why in doomed:
                self._drop(seg, why)
            core.replace_segments_held(segments[len(doomed) :])
            self._after_start_moved()
        self.write_checkpoint()
        return len(doomed)

    def compact(
        self, now_ms: int | None = None, dedupe_buffer_bytes: int = cleaner.DEDUPE_BUFFER_BYTES
    ) -> int:
        """Keep only the latest record per key in the sealed segments (compact policy).

        The segments are cleaned off the writer lock and swapped in under it, so appends and
        reads go on meanwhile. Returns the number of records removed (see .cleaner).
        """
        if not self.config.compact:
            return 0
        with self._writer_locked():
            self._core.seal_held()
            snapshot = list(self._core.segments)
        result = cleaner.run_pass(
            self.path, snapshot, self.config, now_ms, self.cleaner_state, dedupe_buffer_bytes
        )
        if not result.cleaned:
            return result.removed
        core = self._core
        with self._writer_locked():
            current = list(core.segments)
            index = {id(s): i for i, s in enumerate(current)}
            for done in result.cleaned:
                i = index.get(id(done.old))
                if i is None or i == len(current) - 1:
                    cleaner.discard(done)  # deleted or truncated meanwhile
                    continue
                current[i] = cleaner.swap_in(self.path, done, self.config)
            core.replace_segments_held(current)
        return result.removed

    def expire_producers(self, now_ms: int, expiration_ms: int) -> int:
        """Forget idle producers (Kafka's ``producer.id.expiration.ms``); returns how many."""
        with self._producer_lock:
            return self.producer_state.remove_expired(now_ms, expiration_ms)
