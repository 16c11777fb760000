# The native writer of a partition log: the open batch, the segment list, rolling, offset
# assignment and the durability accounting.
#
# edplog.storage.log.Log composes one LogCore and owns the policy around it (recovery on open,
# retention, truncation, checkpoints, producer state, the leader-epoch cache). Every append goes
# down once: Python -> LogCore -> C. The roll rule lives here, in _maybe_roll, and is applied to
# per-record and batch appends alike; a rolled segment is handed to the roll queue the log was
# given (a queue.SimpleQueue: a C-level put, no Python code runs in the middle of an append) and
# fsynced by its consumer in the background, as Kafka does.
#
# Durability accounting: _pending holds the rolled segments not yet fsynced, oldest first;
# _durable is an offset below which everything is on disk except what a pending segment holds.
# The recovery point is therefore min(_pending[0].base_offset, _durable).
#
# The segment list is copy-on-write: a reader takes `segments` / `bases` once and sees one
# consistent list however the writer rolls or Log replaces segments meanwhile.
from libc.stdint cimport INT32_MAX
from libc.stdio cimport snprintf
from cpython.bytearray cimport PyByteArray_Check
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_trylock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)

import bisect as _bisect
import time as _time


cdef inline void _lock_mutex(pthread_mutex_t *mu) noexcept:
    """Take mu; wait without the GIL when it is contended, so a holder that released the GIL
    inside a write never deadlocks with a thread waiting here."""
    if pthread_mutex_trylock(mu) != 0:
        with nogil:
            pthread_mutex_lock(mu)


cdef class LogCore:
    """The native half of a partition log (see the comment at the top of _log.pxi).

    Thread-safety: every mutation takes the writer mutex (``acquire``/``release`` for the
    mutations Log makes in Python); ``flush`` takes a separate flush mutex, so appends go on
    while an fsync runs. Readers use ``segments``/``bases`` snapshots without a lock.
    """
    # configuration, set by Log (policy) before use
    cdef readonly str directory
    cdef public int64_t segment_bytes
    cdef public int64_t segment_ms
    cdef public size_t index_max_bytes
    cdef public int32_t index_interval_bytes
    cdef public size_t batch_limit_bytes
    cdef public int codec
    cdef public int32_t leader_epoch
    cdef public int64_t flush_messages
    cdef public int64_t max_batch_bytes
    # The bound on a compressed batch's records once decompressed (a decompression bomb is
    # refused when it passes it), and whether compressed batches are walked at all: always in
    # use, off only for the benchmark that measures what the walk costs.
    cdef public int64_t max_uncompressed_bytes
    cdef public bint check_compressed_records
    # state
    cdef GrowBuf _batch
    cdef GrowBuf _hdrs
    cdef int32_t _count
    cdef int64_t _base_ts
    cdef int64_t _max_ts
    cdef int64_t _next_offset
    cdef int64_t _unflushed
    cdef int64_t _durable
    cdef public int64_t log_start_offset
    cdef readonly int64_t rolls
    # Set when an fsync fails: the recovery point then. Records above it were appended but
    # may not survive; they are never served (readers stop here) and revival cuts them.
    cdef public int64_t fenced_offset
    cdef list _segments
    cdef list _bases
    cdef list _pending
    cdef Segment _active
    cdef object _roll_queue
    cdef object _owner
    cdef pthread_mutex_t _mu
    cdef pthread_mutex_t _flush_mu
    cdef edp_clock_t _clock

    def __cinit__(self, *args, **kwargs):
        self._batch.data = NULL
        self._batch.len = self._batch.cap = 0
        self._hdrs.data = NULL
        self._hdrs.len = self._hdrs.cap = 0
        _grow(&self._batch, EDP_BATCH_HEADER_BYTES)
        self._batch.len = EDP_BATCH_HEADER_BYTES
        self._count = 0
        self.batch_limit_bytes = 256 * 1024
        self.segment_bytes = 1 << 30
        self.segment_ms = 7 * 86_400_000
        self.index_max_bytes = 10 * 1024 * 1024
        self.index_interval_bytes = 4096
        self.codec = 0
        self.leader_epoch = 0
        self.flush_messages = 0
        self.max_batch_bytes = 1048588
        self.max_uncompressed_bytes = DEFAULT_MAX_UNCOMPRESSED_BYTES
        self.check_compressed_records = True
        self.fenced_offset = -1
        self._pending = []
        pthread_mutex_init(&self._mu, NULL)
        pthread_mutex_init(&self._flush_mu, NULL)
        edp_clock_init(&self._clock)

    def __init__(self, str directory, list segments not None, int64_t log_start_offset=0,
                 int64_t durable_offset=0, roll_queue=None, owner=None):
        """A writer over ``segments`` (ascending, non-empty; the last one is active).

        ``durable_offset``: every offset below it is known to be on disk. ``roll_queue``
        receives ``(owner, segment)`` for every segment this writer rolls; its consumer must
        call ``flush_rolled(segment)``.
        """
        if not segments:
            raise ValueError("a log needs at least one segment")
        self.directory = directory
        self._set_segments(list(segments))
        self._next_offset = edp_segment_next_offset(&self._active.seg)
        self.log_start_offset = log_start_offset
        self._durable = durable_offset
        self._roll_queue = roll_queue
        self._owner = owner

    def __dealloc__(self):
        free(self._batch.data)
        free(self._hdrs.data)
        pthread_mutex_destroy(&self._mu)
        pthread_mutex_destroy(&self._flush_mu)

    # ---- the writer lock --------------------------------------------------------------------

    cdef inline void _lock(self) noexcept:
        _lock_mutex(&self._mu)

    cdef inline void _unlock(self) noexcept:
        pthread_mutex_unlock(&self._mu)

    def acquire(self):
        """Take the writer lock (for the mutations Log makes: truncation, retention, swaps)."""
        self._lock()

    def release(self):
        self._unlock()

    # ---- state ------------------------------------------------------------------------------

    @property
    def log_end_offset(self):
        """The offset the next record will get (records in the open batch included)."""
        return self._next_offset

    @property
    def written_end_offset(self):
        """The offset after the last batch written to a segment (the open batch excluded)."""
        return edp_segment_next_offset(&self._active.seg)

    @property
    def pending_records(self):
        """Records in the open batch, not yet written to a segment."""
        return self._count

    @property
    def segments(self):
        """The segments, oldest first (a snapshot: never modified in place)."""
        return self._segments

    @property
    def bases(self):
        """Their base offsets (the same snapshot as ``segments``)."""
        return self._bases

    @property
    def active(self):
        return self._active

    @property
    def poisoned(self):
        return bool(edp_segment_poisoned(&self._active.seg))

    @property
    def recovery_point(self):
        """Every offset below this one is on disk."""
        cdef Segment first
        if self._pending:
            first = self._pending[0]
            return min(first.base_offset, self._durable)
        return self._durable

    @property
    def pending_rolled(self):
        """Rolled segments whose fsync has not completed yet, oldest first."""
        return list(self._pending)

    def segment_index(self, int64_t offset):
        """The index in ``segments`` of the segment that holds ``offset`` (0 below the first)."""
        return max(_bisect.bisect_right(self._bases, offset) - 1, 0)

    cdef void _set_segments(self, list segments):
        self._segments = segments
        self._bases = [(<Segment>s).base_offset for s in segments]
        self._active = segments[len(segments) - 1]  # (wraparound is off)

    def replace_segments_held(self, list segments not None, bint truncated=False):
        """Install a new segment list (the writer lock is held): after truncation, retention
        or a compaction swap. Rolled segments no longer in the list stop being pending. When
        the active segment changes or was ``truncated``, the open batch must have been
        written and the log end offset follows the active segment."""
        if not segments:
            raise ValueError("a log needs at least one segment")
        moved = truncated or segments[len(segments) - 1] is not self._active
        if self._count and moved:
            raise RuntimeError("the open batch must be written first")
        kept = set(map(id, segments))
        self._set_segments(list(segments))
        self._pending = [s for s in self._pending if id(s) in kept]
        if moved:
            self._next_offset = edp_segment_next_offset(&self._active.seg)

    def lower_durable_offset_held(self, int64_t offset):
        """After a truncation below it: nothing above ``offset`` is durable any more.

        Taken under the flush mutex, so an fsync that started before the truncation cannot
        raise the durable offset again after it."""
        _lock_mutex(&self._flush_mu)
        if self._durable > offset:
            self._durable = offset
        pthread_mutex_unlock(&self._flush_mu)

    # ---- per-record appends -----------------------------------------------------------------

    def append(self, value, key=None, headers=None, timestamp_ms=None):
        """Append one record and return its offset.

        value and key are bytes-like or None; headers a sequence of (str, bytes | None)
        pairs; timestamp_ms defaults to now. The record goes into the open batch; the batch
        is written to the segment when it reaches its size limit, and before any read, flush
        or roll, so a read always sees every record appended before it.
        """
        cdef int64_t ts, offset
        self._lock()
        try:
            self._check_writable()
            ts = _encode_record(&self._batch, &self._hdrs, self._count, self._count == 0,
                                &self._base_ts, value, key, headers, timestamp_ms, &self._clock)
            if self._count == 0 or ts > self._max_ts:
                self._max_ts = ts
            self._count += 1
            offset = self._next_offset
            self._next_offset += 1
            if self._batch.len >= self.batch_limit_bytes or self._count == INT32_MAX:
                self._seal_locked()
            if self.flush_messages > 0:
                self._unflushed += 1
                if self._unflushed >= self.flush_messages:
                    self._seal_locked()
                    self._flush_all()
        finally:
            self._unlock()
        return offset

    cdef int _check_writable(self) except -1:
        # A closed log refuses records (they would sit in the open batch and be lost).
        self._active._ensure_open()
        if edp_segment_poisoned(&self._active.seg):
            raise _errors.LogPoisonedError(
                f"{self._active.path}: an earlier write or fsync failed; the log refuses "
                "writes (reopen it to recover)", path=self._active.path)
        return 0

    cdef int _seal_locked(self) except -1:
        """Write the open batch to the active segment (the writer lock is held)."""
        cdef edp_batch_hdr_t h
        cdef size_t records_len, total
        cdef uint8_t *p
        cdef bytes packed = None
        if self._count == 0:
            return 0
        h.base_offset = self._next_offset - self._count
        h.leader_epoch = self.leader_epoch
        h.attributes = <int16_t>self.codec
        h.last_offset_delta = self._count - 1
        h.base_timestamp_ms = self._base_ts
        h.max_timestamp_ms = self._max_ts
        h.producer_id = -1
        h.producer_epoch = -1
        h.base_sequence = -1
        h.record_count = self._count
        records_len = self._batch.len - EDP_BATCH_HEADER_BYTES
        if self.codec == 0:
            p = self._batch.data
        else:
            section = _codecs.compress(
                self.codec, (<char *>self._batch.data + EDP_BATCH_HEADER_BYTES)[:records_len])
            records_len = len(section)
            packed = PyBytes_FromStringAndSize(NULL, EDP_BATCH_HEADER_BYTES + records_len)
            p = <uint8_t *>PyBytes_AS_STRING(packed)
            memcpy(p + EDP_BATCH_HEADER_BYTES, PyBytes_AS_STRING(section), records_len)
        with nogil:
            total = edp_batch_finish(p, records_len, &h)
        self._maybe_roll(total, h.base_offset, h.base_offset + h.last_offset_delta)
        self._active._append(p, total)
        self._batch.len = EDP_BATCH_HEADER_BYTES
        self._count = 0
        return 0

    def seal_held(self):
        """Write the open batch now; the caller holds the writer lock (``acquire``)."""
        self._seal_locked()

    def seal(self):
        """Write the open batch now (takes the writer lock). A poisoned log keeps it: it can
        never be written, and readers still get every written batch."""
        self._lock()
        try:
            if not edp_segment_poisoned(&self._active.seg):
                self._seal_locked()
        finally:
            self._unlock()

    # ---- rolling ----------------------------------------------------------------------------

    cdef int _maybe_roll(self, int64_t total_bytes, int64_t first_offset,
                         int64_t last_offset) except -1:
        """The roll rule (the only one): start a new segment before a write that would take
        the active one past segment.bytes, past segment.ms of age, past its index capacity
        or past 32-bit relative offsets. An empty segment is never rolled."""
        cdef Segment a = self._active
        if edp_segment_size(&a.seg) == 0:
            return 0
        if (edp_segment_size(&a.seg) + total_bytes > self.segment_bytes
                or (_time.time() - a.created_at) * 1000 >= self.segment_ms
                or edp_index_is_full(&a.seg.oidx)
                or edp_index_is_full(&a.seg.tidx)
                or last_offset - a.base_offset > INT32_MAX):
            # The new segment starts where the log ends, not at first_offset: a follower's
            # batches may skip offsets (a compacted leader), and contiguous segments let a
            # missing segment file be told from a legitimate gap.
            self._roll_locked(edp_segment_next_offset(&a.seg))
        return 0

    cdef int _roll_locked(self, int64_t new_base) except -1:
        cdef Segment old = self._active
        cdef Segment seg
        try:
            seg = Segment(self.directory, new_base, self.index_max_bytes,
                          self.index_interval_bytes, True)
        except OSError:
            # No new segment (a full disk, say): the log cannot go on safely; refuse writes.
            old.poison()
            raise
        try:
            old.seal()
        except OSError:
            seg.poison()
            self._set_segments(self._segments + [seg])
            raise
        old.sealed = True
        self._set_segments(self._segments + [seg])
        self._pending = self._pending + [old]
        self.rolls += 1
        if self._roll_queue is not None:
            self._roll_queue.put((self._owner, old))
        return 0

    def roll_held(self):
        """Roll now, at the log end (the writer lock is held). Returns the rolled segment, or
        None when the active segment is empty."""
        cdef Segment old
        self._seal_locked()  # (may roll by itself first)
        old = self._active
        if edp_segment_size(&old.seg) == 0:
            return None
        self._roll_locked(edp_segment_next_offset(&old.seg))
        return old

    # ---- durability -------------------------------------------------------------------------

    cdef int _flush_segment(self, Segment seg) except -1:
        """fsync one segment and account for it; a failure poisons the active segment too."""
        try:
            seg.flush()
        except OSError:
            # What the failed fsync covered may be lost: refuse writes, and serve nothing past
            # what an earlier fsync made durable.
            self._active.poison()
            if self.fenced_offset < 0:
                self.fenced_offset = self.recovery_point
            raise
        if seg in self._pending:
            self._pending = [s for s in self._pending if s is not seg]
            if edp_segment_next_offset(&seg.seg) > self._durable:
                self._durable = edp_segment_next_offset(&seg.seg)
        return 0

    cdef int _flush_all(self) except -1:
        """fsync every rolled segment still pending, then the active one (flush mutex taken
        here; the writer lock may be held: flush never takes it while holding this one)."""
        cdef Segment seg
        cdef int64_t end
        _lock_mutex(&self._flush_mu)
        try:
            self._unflushed = 0
            seg = self._active
            for p in list(self._pending):
                self._flush_segment(p)
            end = edp_segment_next_offset(&seg.seg)
            self._flush_segment(seg)
            if end > self._durable:
                self._durable = end
        finally:
            pthread_mutex_unlock(&self._flush_mu)
        return 0

    def flush(self):
        """Make every record appended so far durable (fdatasync), rolled segments included.

        Group commit: a caller that waited for a running flush returns at once if that one
        covered its records. Appends go on meanwhile (the writer lock is not held)."""
        self.seal()
        target = self._next_offset
        _lock_mutex(&self._flush_mu)
        try:
            covered = self.recovery_point >= target
        finally:
            pthread_mutex_unlock(&self._flush_mu)
        if not covered:
            self._flush_all()

    def flush_all_held(self):
        """``flush`` for a caller that holds the writer lock and wrote the open batch."""
        self._flush_all()

    def flush_rolled(self, Segment seg not None):
        """fsync a rolled segment if it is still pending (the roll queue's consumer calls
        this). Returns whether it was pending."""
        _lock_mutex(&self._flush_mu)
        try:
            if seg not in self._pending:
                return False
            self._flush_segment(seg)
            return True
        finally:
            pthread_mutex_unlock(&self._flush_mu)

    # ---- batch appends ----------------------------------------------------------------------

    def append_batches(self, data, int32_t leader_epoch=-1, log_append_time_ms=None):
        """Append one or more RecordBatch v2, exactly as a producer sent them.

        Every batch is validated (structure, CRC, record count) before anything is written:
        a bad one raises CorruptRecordError and the log is unchanged. Offsets are assigned by
        rewriting each baseOffset in place (and the leader epoch when leader_epoch >= 0), so
        a writable buffer is used as is; a read-only one (bytes) is copied once. Batches are
        stored as sent, compressed or not. Returns (base_offset, last_offset).
        """
        cdef Py_buffer view
        try:
            PyObject_GetBuffer(data, &view, PyBUF_WRITABLE)
        except BufferError:
            data = bytearray(data)
            PyObject_GetBuffer(data, &view, PyBUF_WRITABLE)
        try:
            return self._append_view(<uint8_t *>view.buf, <size_t>view.len, leader_epoch,
                                     log_append_time_ms)
        finally:
            PyBuffer_Release(&view)

    cdef tuple _append_view(self, uint8_t *p, size_t n, int32_t leader_epoch, object lat):
        cdef int64_t totals[3]
        cdef edp_scan_t scan
        cdef edp_diag_t diag
        cdef int rc
        cdef int64_t base, end, now
        if n == 0:
            raise _errors.CorruptRecordError("no record batch to append")
        _diag_clear(&diag)
        with nogil:
            rc = edp_batches_scan(p, n, 1, 1, 0, &scan, &diag)
        _check(rc, &diag)
        if scan.max_batch_bytes > self.max_batch_bytes:
            raise _errors.RecordTooLargeError(
                f"a batch of {scan.max_batch_bytes} bytes exceeds max.message.bytes "
                f"({self.max_batch_bytes})")
        if scan.codecs & ~1 and self.check_compressed_records:
            # Garbage behind a valid CRC inside a compressed batch would stall every consumer
            # at it: walk every record, decompressing in bounded pieces, before a byte is
            # written (the uncompressed ones were walked by the scan).
            _validate_records_buf(p, n, 1, self.max_uncompressed_bytes, totals)
        self._lock()
        try:
            self._check_writable()
            self._seal_locked()
            base = self._next_offset
            # Strict batches hold exactly one record per offset.
            self._maybe_roll(n, base, base + scan.records - 1)
            with nogil:
                end = edp_batches_assign_offsets(p, n, base, leader_epoch)
            if lat is not None:
                now = lat
                with nogil:
                    edp_batches_set_log_append_time(p, n, now)
            self._active._append(p, n)
            self._next_offset = end
            if self.flush_messages > 0:
                self._unflushed += end - base
                if self._unflushed >= self.flush_messages:
                    self._flush_all()
        finally:
            self._unlock()
        return base, end - 1

    def append_as_follower(self, data):
        """Append batches whose offsets a leader assigned, stored exactly as they are.

        Each batch is validated (structure and CRC; compacted batches may have fewer records
        than offsets), offsets must ascend and start at or above the log end offset. Returns
        (first_offset, last_offset). Raises CorruptRecordError (log unchanged) otherwise.
        """
        cdef const unsigned char[::1] mv = data
        cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
        cdef size_t n = mv.shape[0]
        cdef edp_scan_t scan
        cdef edp_diag_t diag
        cdef int rc
        if n == 0:
            raise _errors.CorruptRecordError("no record batch to append")
        _diag_clear(&diag)
        with nogil:
            rc = edp_batches_scan(p, n, 0, 1, 1, &scan, &diag)
        _check(rc, &diag)
        self._lock()
        try:
            self._check_writable()
            self._seal_locked()
            if scan.first_offset < self._next_offset:
                raise _errors.CorruptRecordError(
                    f"follower append starts at offset {scan.first_offset}, below the log end "
                    f"offset {self._next_offset}", offset=scan.first_offset)
            self._maybe_roll(n, scan.first_offset, scan.last_offset)
            self._active._append(p, n)
            self._next_offset = scan.last_offset + 1
            if self.flush_messages > 0:
                self._unflushed += scan.records
                if self._unflushed >= self.flush_messages:
                    self._flush_all()
        finally:
            self._unlock()
        return scan.first_offset, scan.last_offset

    # ---- reads ------------------------------------------------------------------------------

    def fetch_slice(self, int64_t offset, int64_t max_bytes, int64_t max_offset=-1):
        """(segment, position, length) of whole batches from the one holding offset, up to
        max_bytes but at least one batch, none starting at or above max_offset (when >= 0: a
        high watermark, a fenced end); None when there is nothing to send."""
        cdef list segments = self._segments
        cdef Py_ssize_t i = max(_bisect.bisect_right(self._bases, offset) - 1, 0)
        cdef Segment seg
        cdef int64_t pos, length
        cdef int rc
        while i < len(segments):
            seg = segments[i]
            seg._ensure_open()
            with nogil:
                rc = edp_segment_slice(&seg.seg, offset, max_bytes, max_offset, &pos, &length)
            _check(rc, NULL, seg.path)
            if length:
                return seg, pos, length
            if pos < edp_segment_size(&seg.seg):
                return None  # the next batch starts at or above max_offset
            i += 1
        return None


# ---- bulk decoding used by Log.read and Log.read_numpy ---------------------------------------

def decode_records_into(list out, data, int64_t min_offset, int64_t max_records,
                        bint verify=True):
    """Decode whole batches at the start of data, appending Records with offset >= min_offset
    to out until it holds max_records (-1: no limit). A partial batch at the end is left.

    Returns (bytes_consumed, next_offset): the offset after the last batch decoded.
    """
    cdef const unsigned char[::1] mv = data
    cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
    cdef size_t n = mv.shape[0], pos = 0
    cdef edp_batch_hdr_t h
    cdef edp_diag_t diag
    cdef int rc
    cdef int64_t next_offset = -1
    while pos < n and (max_records < 0 or len(out) < max_records):
        _diag_clear(&diag)
        with nogil:
            if verify:
                rc = edp_batch_validate(p + pos, n - pos, 0, &h, &diag)
            else:
                rc = edp_batch_header(p + pos, n - pos, &h, &diag)
        if rc == EDP_ETRUNCATED:
            break
        if rc != 0:
            diag.pos = <int64_t>pos + (diag.pos if diag.pos > 0 else 0)
            _check(rc, &diag)
        if h.base_offset + h.last_offset_delta >= min_offset and not (h.attributes & EDP_ATTR_CONTROL):
            _records_of(p + pos, &h, min_offset, max_records, out)
        pos += <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
        next_offset = h.base_offset + h.last_offset_delta + 1
    return pos, next_offset


def decode_columns_into(data, int64_t min_offset, int64_t[::1] offsets, int64_t[::1] timestamps,
                        int32_t[::1] lengths, unsigned char[::1] values, Py_ssize_t n,
                        Py_ssize_t vn, bint verify=True):
    """Fill column arrays (offsets, timestamps, value lengths, one value buffer) from whole
    batches at the start of data, starting at row n and value byte vn. No Python object is
    made per record; uncompressed batches are decoded with the GIL released.

    Returns (bytes_consumed, rows, value_bytes, full): full is True when the arrays ran out
    of room (the batch that did not fit is not consumed; rows it added are rolled back).
    """
    cdef const unsigned char[::1] mv = data
    cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
    cdef size_t size = mv.shape[0], pos = 0
    cdef edp_batch_hdr_t h
    cdef edp_diag_t diag
    cdef int rc, fill
    cdef Py_ssize_t n0, vn0
    cdef bytes plain
    cdef const uint8_t *rp
    cdef const uint8_t *rend
    cdef int codec
    cdef edp_columns_t cols
    cols.cap = offsets.shape[0]
    cols.value_cap = values.shape[0]
    cols.offsets = &offsets[0] if cols.cap else NULL
    cols.timestamps_ms = &timestamps[0] if cols.cap else NULL
    cols.value_lengths = &lengths[0] if cols.cap else NULL
    cols.values = &values[0] if cols.value_cap else NULL
    while pos < size:
        _diag_clear(&diag)
        with nogil:
            rc = edp_batch_header(p + pos, size - pos, &h, &diag)
            if rc == 0 and verify:
                # Uncompressed: the CRC alone, since the column walk checks the record
                # structure itself; compressed: the full check before decompressing.
                rc = edp_batch_validate(p + pos, size - pos, 0, &h, &diag) if (
                    h.attributes & EDP_ATTR_CODEC_MASK) else edp_batch_check_crc(p + pos, &h, &diag)
        if rc == EDP_ETRUNCATED:
            break
        if rc != 0:
            diag.pos = <int64_t>pos + (diag.pos if diag.pos > 0 else 0)
            _check(rc, &diag)
        codec = h.attributes & EDP_ATTR_CODEC_MASK
        n0, vn0 = n, vn
        fill = 0
        if h.base_offset + h.last_offset_delta >= min_offset and not (h.attributes & EDP_ATTR_CONTROL):
            if codec == 0:
                rp = p + pos + EDP_BATCH_HEADER_BYTES
                rend = p + pos + h.batch_length + EDP_BATCH_LOG_OVERHEAD
            else:
                plain = _codecs.decompress(codec, (<char *>p + pos + EDP_BATCH_HEADER_BYTES)[
                    :h.batch_length + EDP_BATCH_LOG_OVERHEAD - EDP_BATCH_HEADER_BYTES])
                rp = <const uint8_t *>PyBytes_AS_STRING(plain)
                rend = rp + PyBytes_GET_SIZE(plain)
            cols.rows = n
            cols.value_bytes = vn
            with nogil:
                fill = edp_records_columns(rp, rend, &h, min_offset, &cols)
            n = cols.rows
            vn = cols.value_bytes
        if fill < 0:
            raise _errors.CorruptRecordError(
                f"malformed record in the batch at offset {h.base_offset}", offset=h.base_offset)
        if fill == 2:
            return pos, n, vn, False
        if fill == 1:
            return pos, n0, vn0, True
        pos += <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
    return pos, n, vn, False
