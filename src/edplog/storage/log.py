"""``Log``: one partition, a directory of segments in Kafka's layout.

``Log`` is the policy around a native writer (``edplog._native.LogCore``), which owns the
hot paths: the open batch that ``append`` fills one record per call, validation and offset
assignment for ``append_batches``, rolling, and the durability accounting. This module owns
the rest: configuration, recovery on open (:mod:`.recovery`), appends as leader and as
follower, truncation, the leader-epoch cache (:mod:`.leader_epoch`) and the idempotent-producer
state (:mod:`.producer_state`). Rolls, flushes and the checkpoint files are in
:mod:`.log_durability`; deletion from the start, retention (:mod:`.retention`) and compaction
(:mod:`.cleaner`) in :mod:`.log_housekeeping`. Reads are in :mod:`.reader`.

Offsets and positions: an *offset* is a record's logical number; a *position* is a byte in a
segment file. The log start offset is the first offset still readable; the log end offset is
the offset the next record will get.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .. import _native
from ..config import LONG_MAX, LogConfig, normalize
from ..errors import (
    InvalidRecordError,
)
from . import checkpoint, cleaner, recovery
from . import segments as seg_files
from .flusher import FLUSH_MS, ROLL_FLUSHER
from .leader_epoch import LeaderEpochCache
from .log_housekeeping import LogHousekeeping
from .producer_state import ProducerStateManager
from .reader import LogReader, RecordColumns

log = logging.getLogger("edplog.storage")

_CODEC_FOR_APPEND = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


class Log(LogHousekeeping):
    """One partition log in ``path`` (created if missing, recovered if it crashed).

    ``config`` maps Kafka topic property names to values (``segment.bytes``,
    ``retention.ms``, ``flush.messages``, ...); keyword aliases with underscores work too:
    ``Log(path, segment_bytes=1 << 20)``. Use it as a context manager, or call ``close()``.
    ``accept_gaps=True`` opens a log whose offsets have a hole (a segment file lost),
    which is refused by default.

    Thread-safety: any number of threads may read while others append; writes are
    serialised by a lock. The GIL is released around file I/O, checksums and compression.
    """

    #: Append one record (value, key=None, headers=None, timestamp_ms=None); returns its
    #: offset. The native writer's method itself: one call per record, nothing in between.
    append: Callable[..., int]

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: Mapping[str, Any] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
        accept_gaps: bool = False,
        **aliases: Any,
    ) -> None:
        self.path = os.fspath(path)
        self._overrides = normalize(config, **aliases)
        self._defaults = dict(defaults or {})
        self.config = LogConfig(self._overrides, self._defaults)
        self._closed = False
        self._checkpoint_lock = threading.Lock()
        # Taken before the writer lock wherever both are held (an idempotent append holds it
        # while the core appends), so no two threads take them in opposite orders.
        self._producer_lock = threading.RLock()
        self._last_checkpoint = 0.0
        self._last_metadata_warning = -1e9
        self.cleaner_state = cleaner.CleanerState()
        os.makedirs(self.path, exist_ok=True)
        if cleaner.remove_leftovers(self.path):
            log.info("%s: removed the work files of an interrupted compaction", self.path)
        opened = recovery.open_log(self.path, self.config, accept_gaps=accept_gaps)
        self.recovery_report: list[str] = opened.report
        ROLL_FLUSHER.start()
        self._core = _native.LogCore(
            self.path,
            opened.segments,
            opened.log_start_offset,
            opened.durable_offset,
            ROLL_FLUSHER.queue,
            weakref.ref(self),
        )
        self.append = self._core.append
        self.seal = self._core.seal
        self._reader = LogReader(self._core)
        self._apply_config()
        self.leader_epochs = LeaderEpochCache(self.path)
        self.producer_state = ProducerStateManager(self.path)
        self._restore_state(opened.recovered_from)
        checkpoint.remove_clean_shutdown(self.path)
        checkpoint.fsync_dir(self.path)
        if self.config["flush.ms"] < LONG_MAX:
            FLUSH_MS.register(self, self.config["flush.ms"])

    # ---- configuration ------------------------------------------------------------------

    def _apply_config(self) -> None:
        c, core = self.config, self._core
        core.max_batch_bytes = c["max.message.bytes"]
        core.batch_limit_bytes = max(1024, min(256 * 1024, c["max.message.bytes"] // 2))
        core.codec = _CODEC_FOR_APPEND.get(c["compression.type"], 0)
        core.segment_bytes = c["segment.bytes"]
        core.segment_ms = c["segment.ms"]
        core.index_max_bytes = c["segment.index.bytes"]
        core.index_interval_bytes = c["index.interval.bytes"]
        fm = c["flush.messages"]
        core.flush_messages = fm if fm < LONG_MAX else 0

    def reconfigure(self, config: Mapping[str, Any]) -> None:
        """Replace the overrides (e.g. after AlterConfigs); takes effect for new writes."""
        self._overrides = normalize(config)
        self.config = LogConfig(self._overrides, self._defaults)
        self._apply_config()
        FLUSH_MS.unregister(self)
        if self.config["flush.ms"] < LONG_MAX:
            FLUSH_MS.register(self, self.config["flush.ms"])

    # ---- opening ------------------------------------------------------------------------

    def _restore_state(self, recovered_from: int) -> None:
        """Bring the leader-epoch cache and the producer state in line with the log."""
        end = self._core.written_end_offset
        start = self._core.log_start_offset
        epochs = self.leader_epochs
        epochs.truncate_from_end(end)
        if end > start:
            if not epochs.entries:
                first = self._reader.header_at(start)
                if first is not None:
                    epochs.assign(first.leader_epoch, start)
            if recovered_from >= 0:
                for epoch, offset in self._reader.epoch_starts(recovered_from, -1):
                    # The checkpoint already holds the epochs older than its latest one (it
                    # was written after them): only newer ones are news.
                    if epoch >= epochs.latest_epoch:
                        epochs.assign(epoch, offset)
            epochs.truncate_from_start(start)
        self._reload_producers(end)

    # ---- writing ------------------------------------------------------------------------

    def append_batches(
        self, data: Any, leader_epoch: int = -1, log_append_time_ms: int | None = None
    ) -> tuple[int, int]:
        """Append one or more RecordBatch v2, exactly as a producer sent them.

        Every batch is validated (structure, CRC, records) before anything is written: a bad
        one raises CorruptRecordError and the log is unchanged. Offsets are assigned by
        rewriting each baseOffset in place (and the leader epoch when ``leader_epoch`` >= 0),
        so a writable buffer is used as is; a read-only one is copied once. A batch with a
        producer id must come alone; its sequence is checked (a retry raises
        DuplicateSequenceError carrying the original offsets). Returns (base, last offset).
        """
        self._check_open()
        header = _native.batch_header(data)
        if header.producer_id >= 0:
            base, last = self._append_producer_batch(data, header, leader_epoch, log_append_time_ms)
        else:
            base, last = self._core.append_batches(data, leader_epoch, log_append_time_ms)
        if leader_epoch > self.leader_epochs.latest_epoch:
            self.leader_epochs.assign(leader_epoch, base)
        return base, last

    def _append_producer_batch(
        self, data: Any, header: Any, leader_epoch: int, log_append_time_ms: int | None
    ) -> tuple[int, int]:
        if header.size_bytes != len(memoryview(data).cast("B")):
            raise InvalidRecordError("a batch with a producer id must be appended alone")
        with self._producer_lock:
            self.producer_state.check(header)
            base, last = self._core.append_batches(data, leader_epoch, log_append_time_ms)
            self.producer_state.update(header, base, last)
        return base, last

    def append_as_follower(self, data: Any) -> tuple[int, int]:
        """Append batches a leader wrote, with their offsets and leader epochs as they are.

        Validated (structure and CRC; offsets ascending, starting at or above the log end);
        the leader-epoch cache learns the epochs they start and the producer state their
        producer batches. Returns (first offset, last offset).
        """
        self._check_open()
        epochs = _native.epoch_starts(data, self.leader_epochs.latest_epoch)
        producers = _native.batch_headers(data, True)
        with self._producer_lock:
            # The cache learns an epoch before its first batch is written, as Kafka does: a
            # crash in between leaves an entry past the log end, which opening drops.
            for epoch, offset in epochs:
                if offset >= self._core.log_end_offset:
                    self.leader_epochs.assign(epoch, offset)
            try:
                first, last = self._core.append_as_follower(data)
            except BaseException:
                self.leader_epochs.truncate_from_end(self._core.log_end_offset)
                raise
            self.producer_state.apply(producers)
        return first, last

    def set_leader_epoch(self, epoch: int) -> None:
        """Stamp ``epoch`` into every batch appended from now on (the partition's leader
        epoch); the cache records that it starts at the log end."""
        if epoch == self._core.leader_epoch and epoch <= self.leader_epochs.latest_epoch:
            return
        with self._writer_locked():
            # Records appended before keep the epoch they were appended under.
            self._core.seal_held()
            self._core.leader_epoch = epoch
            if epoch > self.leader_epochs.latest_epoch:
                self.leader_epochs.assign(epoch, self._core.log_end_offset)

    # ---- reading (see .reader) ------------------------------------------------------------

    def read(self, offset: int, max_records: int | None = None) -> list[_native.Record]:
        """Records from offset on (at most max_records), as Record objects.

        Every batch read is checked (structure and CRC); damage raises CorruptRecordError
        naming the file and position.
        """
        return self._reader.read(offset, max_records)

    def __iter__(self) -> Iterator[_native.Record]:
        """Every record from the log start offset, read a chunk at a time."""
        return self._reader.iter_records()

    def read_numpy(self, offset: int, max_records: int | None = None) -> RecordColumns:
        """Records from offset on as NumPy columns: no Python object per record.

        Batches are checked as in read(). Keys and headers are not returned.
        """
        return self._reader.read_numpy(offset, max_records)

    def fetch_slices(
        self, offset: int, max_bytes: int, max_offset: int = -1, *, verify: bool = True
    ) -> list[tuple[_native.Segment, int, int]]:
        """Where the whole batches from the one holding offset lie: [(segment, pos, length)].

        At least one whole batch is returned when there is one (even above max_bytes), none
        at the end; no batch starting at or above ``max_offset`` (when >= 0) or the readable
        end. A fetch sends these ranges with sendfile, so their CRCs are checked first when a
        trusted load has not had them checked yet (``verify``; a caller that must not wait on
        the disk passes False and checks ``Segment.verified_pos`` itself).
        """
        return self._reader.fetch_slices(offset, max_bytes, max_offset, verify=verify)

    def read_batches(self, offset: int, max_bytes: int) -> bytes:
        """The bytes of whole batches from the one holding offset, as a fetch serves them."""
        return self._reader.read_batches(offset, max_bytes)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """The first record whose timestamp >= timestamp_ms: (offset, timestamp), or None."""
        return self._reader.offset_for_timestamp(timestamp_ms)

    def max_timestamp(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with the largest timestamp; None for an
        empty log. Segment metadata names the batch that holds it; that one batch is read
        and its records walked in C (decompressed if need be) to find the record."""
        return self._reader.max_timestamp()

    # ---- state --------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return int(self._core.log_start_offset)

    @property
    def log_end_offset(self) -> int:
        return int(self._core.log_end_offset)

    @property
    def recovery_point(self) -> int:
        """Every offset below this one has been fsynced."""
        return int(self._core.recovery_point)

    @property
    def readable_end_offset(self) -> int:
        """The offset reads stop at: the log end offset, or, after an fsync failed, the
        recovery point at that moment (records past it may not be on disk, and writers
        waiting on that fsync were told it failed: they are never served)."""
        fenced = self._core.fenced_offset
        return int(fenced) if fenced >= 0 else int(self._core.log_end_offset)

    @property
    def leader_epoch(self) -> int:
        return int(self._core.leader_epoch)

    @property
    def check_compressed_records(self) -> bool:
        """Whether appends walk every record of compressed batches (on; a benchmark turns it
        off to measure what the walk costs)."""
        return bool(self._core.check_compressed_records)

    @check_compressed_records.setter
    def check_compressed_records(self, on: bool) -> None:
        self._core.check_compressed_records = on

    @property
    def poisoned(self) -> bool:
        """An earlier write or fsync failed: the log refuses writes."""
        return bool(self._core.poisoned)

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._core.segments)

    @property
    def segments(self) -> list[_native.Segment]:
        return list(self._core.segments)

    def __repr__(self) -> str:
        return (
            f"Log({self.path!r}, log_start_offset={self.log_start_offset}, "
            f"log_end_offset={self.log_end_offset}, segments={len(self._core.segments)})"
        )

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- removing data ------------------------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Remove every record at offset or above (a batch holding offset goes whole).

        Used by replication to drop a diverged tail. The log end offset becomes the start of
        the first removed batch; the leader-epoch cache and the producer state follow.
        """
        core = self._core
        with self._writer_locked():
            core.seal_held()
            if offset >= core.log_end_offset:
                return
            kept = list(core.segments)
            while len(kept) > 1 and kept[-1].base_offset >= offset:
                seg = kept.pop()
                seg.close()
                seg_files.delete_files(self.path, seg.base_offset)
            last = kept[-1]
            last.truncate(offset)
            last.sealed = False
            if last.base_offset > offset:
                # The whole log lies above offset: start over, empty, at offset.
                last.close()
                seg_files.delete_files(self.path, last.base_offset)
                kept[-1] = seg_files.open_segment(self.path, offset, self.config)
            core.replace_segments_held(kept, True)
            end = core.log_end_offset
            core.log_start_offset = min(core.log_start_offset, end)
            core.lower_durable_offset_held(end)
            self.leader_epochs.truncate_from_end(end)
            with self._producer_lock:
                self.producer_state.truncate_snapshots(end)
                self._reload_producers(end)
        self.write_checkpoint()

    def reset_to(self, offset: int) -> None:
        """Drop every record and start over, empty, at ``offset`` (a follower whose leader's
        log now starts past this log's end: retention ran there). The leader-epoch cache
        and the producer state are cleared with the records."""
        core = self._core
        with self._writer_locked():
            core.seal_held()
            for seg in list(core.segments):
                seg.close()
                seg_files.delete_files(self.path, seg.base_offset)
            fresh = seg_files.open_segment(self.path, offset, self.config)
            core.replace_segments_held([fresh], True)
            core.log_start_offset = offset
            core.lower_durable_offset_held(offset)
            self.leader_epochs.clear()
            with self._producer_lock:
                self.producer_state.truncate_snapshots(0)
                self.producer_state.clear()
        self.write_checkpoint()

    # ---- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Write the open batch, fsync, trim the indexes and mark a clean shutdown.

        A log whose disk failed (poisoned) is closed without the marker, so the next open
        recovers it."""
        if self._closed:
            return
        FLUSH_MS.unregister(self)
        core = self._core
        self._producer_lock.acquire()  # before the writer lock: see __init__
        core.acquire()
        try:
            poisoned = core.poisoned or any(s.poisoned for s in core.segments)
            marker = None
            try:
                if not poisoned:
                    core.seal_held()
                    core.flush_all_held()
                    self._snapshot_producers()
                    self.write_checkpoint()
                    active = core.active
                    marker = checkpoint.CleanShutdown(
                        core.log_end_offset, active.base_offset, active.size
                    )
            finally:
                self._closed = True
                for seg in core.segments:
                    seg.close()
            if marker is not None:
                try:
                    checkpoint.write_clean_shutdown(self.path, marker)
                except OSError as exc:  # the next open then recovers, which is only slower
                    log.warning("%s: no clean-shutdown marker written (%s)", self.path, exc)
        finally:
            core.release()
            self._producer_lock.release()

    @property
    def closed(self) -> bool:
        return self._closed


__all__ = ["Log", "RecordColumns"]
