# The per-record write path and the bulk read paths of a partition log.
#
# LogCore owns the open batch that Log.append fills, one record per call, and writes it to the
# active segment when it is full (or when a reader, a flush or a roll needs it written). The
# segment list, rolling, retention and recovery are policy and live in edplog.log, which
# subclasses LogCore; LogCore calls back into it (self._before_write) once per batch written.
from libc.stdint cimport INT32_MAX
from libc.stdio cimport snprintf
from cpython.bytearray cimport PyByteArray_Check

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_trylock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)


cdef class LogCore:
    """The native half of edplog.Log: the open batch, the writer lock and bulk reads.

    Thread-safety: every mutation takes the writer mutex. The mutex is taken without the GIL
    when it is contended, so a writer that released the GIL inside a write never deadlocks
    with a thread waiting for the lock.
    """
    cdef GrowBuf _batch
    cdef GrowBuf _hdrs
    cdef int32_t _count
    cdef int64_t _base_ts
    cdef int64_t _max_ts
    cdef int64_t _next_offset
    cdef public Segment _active
    cdef public size_t _batch_limit_bytes
    cdef public int _codec
    cdef public int32_t _leader_epoch
    cdef public int64_t _flush_messages
    cdef public int64_t _unflushed
    cdef public int64_t _max_batch_bytes
    cdef pthread_mutex_t _mu
    cdef edp_clock_t _clock

    def __cinit__(self, *args, **kwargs):
        self._batch.data = NULL
        self._batch.len = self._batch.cap = 0
        self._hdrs.data = NULL
        self._hdrs.len = self._hdrs.cap = 0
        _grow(&self._batch, EDP_BATCH_HEADER_BYTES)
        self._batch.len = EDP_BATCH_HEADER_BYTES
        self._count = 0
        self._batch_limit_bytes = 256 * 1024
        self._codec = 0
        self._leader_epoch = 0
        self._flush_messages = 0
        self._max_batch_bytes = 1048588
        pthread_mutex_init(&self._mu, NULL)
        edp_clock_init(&self._clock)

    def __dealloc__(self):
        free(self._batch.data)
        free(self._hdrs.data)
        pthread_mutex_destroy(&self._mu)

    # ---- the writer lock --------------------------------------------------------------------

    cdef inline void _lock(self) noexcept:
        if pthread_mutex_trylock(&self._mu) != 0:
            with nogil:
                pthread_mutex_lock(&self._mu)

    cdef inline void _unlock(self) noexcept:
        pthread_mutex_unlock(&self._mu)

    def _acquire(self):
        """Take the writer lock (for Python-side mutations: roll, truncate, retention)."""
        self._lock()

    def _release(self):
        self._unlock()

    # ---- state ------------------------------------------------------------------------------

    @property
    def log_end_offset(self):
        """The offset the next record will get (records in the open batch included)."""
        return self._next_offset

    def _set_next_offset(self, int64_t offset):
        if self._count:
            raise RuntimeError("the open batch must be written first")
        self._next_offset = offset

    @property
    def _pending_records(self):
        return self._count

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
            if self._active.seg.poisoned:
                raise _errors.LogPoisonedError(
                    f"{self._active.path}: an earlier write or fsync failed; the log refuses "
                    "writes (reopen it to recover)", path=self._active.path)
            ts = _encode_record(&self._batch, &self._hdrs, self._count, self._count == 0,
                                &self._base_ts, value, key, headers, timestamp_ms, &self._clock)
            if self._count == 0 or ts > self._max_ts:
                self._max_ts = ts
            self._count += 1
            offset = self._next_offset
            self._next_offset += 1
            if self._batch.len >= self._batch_limit_bytes or self._count == INT32_MAX:
                self._seal_locked()
            if self._flush_messages > 0:
                self._unflushed += 1
                if self._unflushed >= self._flush_messages:
                    self._seal_locked()
                    self._flush_locked()
        finally:
            self._unlock()
        return offset

    cdef int _seal_locked(self) except -1:
        """Write the open batch to the active segment (the writer lock is held)."""
        cdef edp_batch_hdr_t h
        cdef size_t records_len, total
        cdef uint8_t *p
        cdef bytes packed = None
        if self._count == 0:
            return 0
        h.base_offset = self._next_offset - self._count
        h.leader_epoch = self._leader_epoch
        h.attributes = <int16_t>self._codec
        h.last_offset_delta = self._count - 1
        h.base_timestamp_ms = self._base_ts
        h.max_timestamp_ms = self._max_ts
        h.producer_id = -1
        h.producer_epoch = -1
        h.base_sequence = -1
        h.record_count = self._count
        records_len = self._batch.len - EDP_BATCH_HEADER_BYTES
        if self._codec == 0:
            p = self._batch.data
        else:
            section = _codecs.compress(
                self._codec, (<char *>self._batch.data + EDP_BATCH_HEADER_BYTES)[:records_len])
            records_len = len(section)
            packed = PyBytes_FromStringAndSize(NULL, EDP_BATCH_HEADER_BYTES + records_len)
            p = <uint8_t *>PyBytes_AS_STRING(packed)
            memcpy(p + EDP_BATCH_HEADER_BYTES, PyBytes_AS_STRING(section), records_len)
        with nogil:
            total = edp_batch_finish(p, records_len, &h)
        self._before_write(total, h.base_offset, h.base_offset + h.last_offset_delta)
        self._active._append(p, total)
        self._batch.len = EDP_BATCH_HEADER_BYTES
        self._count = 0
        return 0

    cdef int _flush_locked(self) except -1:
        self._unflushed = 0
        self._flush_segments()
        return 0

    def _seal_held(self):
        """Write the open batch now; the caller holds the writer lock (_acquire)."""
        self._seal_locked()

    def _seal(self):
        """Write the open batch now (takes the writer lock)."""
        self._lock()
        try:
            self._seal_locked()
        finally:
            self._unlock()

    def _before_write(self, total_bytes, first_offset, last_offset):
        """Called once per batch about to be written: the log may roll here."""

    def _flush_segments(self):
        """Called by the flush policy: make everything written durable."""

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
        if scan.max_batch_bytes > self._max_batch_bytes:
            raise _errors.RecordTooLargeError(
                f"a batch of {scan.max_batch_bytes} bytes exceeds max.message.bytes "
                f"({self._max_batch_bytes})")
        self._lock()
        try:
            self._seal_locked()
            base = self._next_offset
            with nogil:
                end = edp_batches_assign_offsets(p, n, base, leader_epoch)
            if lat is not None:
                now = lat
                with nogil:
                    edp_batches_set_log_append_time(p, n, now)
            self._before_write(n, base, end - 1)
            self._active._append(p, n)
            self._next_offset = end
            if self._flush_messages > 0:
                self._unflushed += end - base
                if self._unflushed >= self._flush_messages:
                    self._flush_locked()
        finally:
            self._unlock()
        return base, end - 1


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


cdef inline int _crc_ok(const uint8_t *b, edp_batch_hdr_t *h, edp_diag_t *diag) noexcept nogil:
    """The CRC check alone: the column walk that follows checks the record structure."""
    cdef uint32_t crc = edp_crc32c(0, b + 21, <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD - 21)
    if crc != h.crc:
        diag.code = EDP_ECORRUPT
        diag.pos = 17
        diag.offset = h.base_offset
        snprintf(diag.msg, sizeof(diag.msg), b"CRC mismatch: stored 0x%08x, computed 0x%08x",
                 h.crc, crc)
        return EDP_ECORRUPT
    return EDP_OK


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
            if verify:
                rc = edp_batch_header(p + pos, size - pos, &h, &diag)
                if rc == 0:
                    rc = edp_batch_validate(p + pos, size - pos, 0, &h, &diag) if (
                        h.attributes & EDP_ATTR_CODEC_MASK) else _crc_ok(p + pos, &h, &diag)
            else:
                rc = edp_batch_header(p + pos, size - pos, &h, &diag)
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
