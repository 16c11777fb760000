# One segment (.log + .index + .timeindex) from Python. Policy (when to roll, what to keep)
# lives in edplog.log; this class only does what the C core does, with the GIL released.
import os as _os2


def segment_file_names(directory, int64_t base_offset):
    """(log, index, timeindex) paths of the segment at base_offset in directory."""
    stem = _os2.path.join(directory, f"{base_offset:020d}")
    return stem + ".log", stem + ".index", stem + ".timeindex"


cdef class Segment:
    """A segment file and its two indexes. One writer; readers may run in other threads.

    Every field the writer changes while it runs with the GIL released (size, next_offset, the
    max timestamp, poisoned, the index counts) is read through the C accessors, which load it
    with acquire ordering (segment.h, Threading). They are called with the GIL held: each is a
    load or two that cannot block, and releasing the GIL around one would let another thread
    keep the GIL for a whole switch interval.
    """
    cdef edp_segment_t seg
    cdef readonly str path
    cdef readonly str directory
    cdef readonly int64_t base_offset
    cdef readonly bint writable
    cdef bint is_open
    cdef public double created_at   # wall-clock seconds, for segment.ms
    cdef public bint sealed         # no longer the active segment of its log

    def __cinit__(self, str directory, int64_t base_offset, size_t index_max_bytes=10485760,
                  int32_t index_interval_bytes=4096, bint writable=True):
        self.is_open = False
        self.sealed = False
        self.directory = directory
        self.base_offset = base_offset
        self.writable = writable
        log_path, index_path, time_path = segment_file_names(directory, base_offset)
        self.path = log_path
        cdef bytes lp = _os2.fsencode(log_path)
        cdef bytes ip = _os2.fsencode(index_path)
        cdef bytes tp = _os2.fsencode(time_path)
        cdef const char *c_lp = lp
        cdef const char *c_ip = ip
        cdef const char *c_tp = tp
        cdef int rc
        with nogil:
            rc = edp_segment_open(&self.seg, c_lp, c_ip, c_tp, base_offset, index_max_bytes,
                                  index_interval_bytes, writable)
        _check(rc, NULL, log_path)
        self.is_open = True
        import time
        self.created_at = time.time()

    def __dealloc__(self):
        if self.is_open:
            edp_segment_close(&self.seg)

    cdef int _ensure_open(self) except -1:
        if not self.is_open:
            raise _errors.LogClosedError(f"{self.path}: segment is closed", path=self.path)
        return 0

    def load(self):
        """Load a trusted segment: check the indexes (rebuilding them if damaged)."""
        cdef edp_diag_t diag
        cdef int rc
        self._ensure_open()
        _diag_clear(&diag)
        with nogil:
            rc = edp_segment_load(&self.seg, &diag)
        _check(rc, &diag, self.path)

    def recover(self, int64_t must_keep_offset=-1):
        """Validate every batch, rebuild the indexes and cut an invalid tail.

        Returns (valid_bytes, truncated_bytes, batches, records, reason) where reason says
        why the tail was cut (None when the file was whole). Raises CorruptRecordError if
        the damage lies below must_keep_offset (data that was flushed).
        """
        cdef edp_recovery_t rec
        cdef edp_diag_t diag
        cdef int rc
        self._ensure_open()
        _diag_clear(&diag)
        with nogil:
            rc = edp_segment_recover(&self.seg, must_keep_offset, &rec, &diag)
        _check(rc, &diag, self.path)
        reason = None
        if rec.code != 0:
            reason = diag.msg.decode("utf-8", "replace") or edp_strerror(rec.code).decode()
        return rec.valid_bytes, rec.truncated_bytes, rec.batches, rec.records, reason

    cdef int _append(self, const uint8_t *p, size_t n) except -1:
        cdef int rc
        self._ensure_open()
        with nogil:
            rc = edp_segment_append(&self.seg, p, n)
        _check(rc, NULL, self.path)
        return 0

    def append(self, data):
        """Append batches that are validated and carry their final offsets."""
        cdef const unsigned char[::1] mv = data
        if mv.shape[0]:
            self._append(&mv[0], mv.shape[0])

    def flush(self):
        """fdatasync the .log; a failure poisons the segment."""
        cdef int rc
        self._ensure_open()
        with nogil:
            rc = edp_segment_flush(&self.seg)
        _check(rc, NULL, self.path)

    def find(self, int64_t offset):
        """Position of the batch holding offset (or the next one); size when past the end."""
        cdef int64_t pos
        cdef int rc
        self._ensure_open()
        with nogil:
            rc = edp_segment_find(&self.seg, offset, &pos, NULL)
        _check(rc, NULL, self.path)
        return pos

    def slice(self, int64_t offset, int64_t max_bytes, int64_t max_offset=-1):
        """(position, length) of whole batches from the one holding offset, up to max_bytes
        but at least one batch, none starting at or above max_offset (when >= 0)."""
        cdef int64_t pos, length
        cdef int rc
        self._ensure_open()
        with nogil:
            rc = edp_segment_slice(&self.seg, offset, max_bytes, max_offset, &pos, &length)
        _check(rc, NULL, self.path)
        return pos, length

    @property
    def verified_pos(self):
        """Every batch below this position has passed a CRC check (recovery, append or
        ``verify``); a segment loaded after a clean shutdown starts at 0."""
        return edp_segment_verified(&self.seg)

    def verify(self, int64_t upto):
        """Check the CRC and structure of every batch up to position ``upto`` that is not yet
        verified (reads the file; the GIL is released). Raises CorruptRecordError naming the
        position of a damaged batch."""
        cdef edp_diag_t diag
        cdef int rc
        self._ensure_open()
        _diag_clear(&diag)
        with nogil:
            rc = edp_segment_verify(&self.seg, upto, &diag)
        _check(rc, &diag, self.path)

    def revive(self, int64_t offset):
        """After a disk failure: cut at the batch holding ``offset``, fsync, and accept writes
        again if both worked (see edp_segment_revive). Raises OSError otherwise."""
        cdef int rc
        self._ensure_open()
        with nogil:
            rc = edp_segment_revive(&self.seg, offset)
        _check(rc, NULL, self.path)

    def find_timestamp(self, int64_t target_ms):
        """Position of the first batch whose max timestamp >= target_ms (size if none)."""
        cdef int64_t pos
        cdef int rc
        self._ensure_open()
        with nogil:
            rc = edp_segment_find_timestamp(&self.seg, target_ms, &pos, NULL)
        _check(rc, NULL, self.path)
        return pos

    def pread(self, int64_t pos, int64_t length):
        """length bytes at pos, as bytes (fewer at the end of the file)."""
        cdef int64_t size = edp_segment_size(&self.seg)
        cdef bytes out
        cdef int rc
        self._ensure_open()
        if pos >= size or length <= 0:
            return b""
        if pos + length > size:
            length = size - pos
        out = PyBytes_FromStringAndSize(NULL, length)
        cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
        with nogil:
            rc = edp_segment_pread(&self.seg, p, pos, length)
        _check(rc, NULL, self.path)
        return out

    def readinto(self, buf, int64_t pos):
        """Fill a writable buffer from pos; returns the bytes read (fewer at the end)."""
        cdef unsigned char[::1] mv = buf
        cdef int64_t n = mv.shape[0], size = edp_segment_size(&self.seg)
        cdef int rc
        self._ensure_open()
        if pos + n > size:
            n = size - pos
        if n <= 0:
            return 0
        with nogil:
            rc = edp_segment_pread(&self.seg, &mv[0], pos, n)
        _check(rc, NULL, self.path)
        return n

    def truncate(self, int64_t offset):
        """Remove every batch whose last offset >= offset."""
        cdef int rc
        self._ensure_open()
        with nogil:
            rc = edp_segment_truncate(&self.seg, offset)
        _check(rc, NULL, self.path)

    def seal(self):
        """Trim the indexes to their entries (the segment stops growing)."""
        cdef int rc
        self._ensure_open()
        with nogil:
            rc = edp_segment_seal(&self.seg)
        _check(rc, NULL, self.path)

    def poison(self):
        """Refuse every later write: a flush of data written before it failed elsewhere."""
        edp_segment_poison(&self.seg)

    def close(self):
        if self.is_open:
            self.is_open = False
            with nogil:
                edp_segment_close(&self.seg)

    def fileno(self):
        self._ensure_open()
        return self.seg.fd

    @property
    def size(self):
        return edp_segment_size(&self.seg)

    @property
    def next_offset(self):
        return edp_segment_next_offset(&self.seg)

    @property
    def max_timestamp_ms(self):
        cdef int64_t ts, offset
        edp_segment_max_timestamp(&self.seg, &ts, &offset)
        return ts

    @property
    def offset_of_max_timestamp(self):
        cdef int64_t ts, offset
        edp_segment_max_timestamp(&self.seg, &ts, &offset)
        return offset

    @property
    def max_timestamp(self):
        """(max timestamp, last offset of the batch holding it), read together: (-1, -1)
        for a segment without records."""
        cdef int64_t ts, offset
        edp_segment_max_timestamp(&self.seg, &ts, &offset)
        return ts, offset

    @property
    def poisoned(self):
        return bool(edp_segment_poisoned(&self.seg))

    @property
    def closed(self):
        return not self.is_open

    @property
    def index_entries(self):
        return edp_index_entries(&self.seg.oidx)

    @property
    def index_is_full(self):
        return bool(edp_index_is_full(&self.seg.oidx) or edp_index_is_full(&self.seg.tidx))

    def index_lookup(self, int64_t offset):
        """The offset index's floor entry for offset: (offset, position)."""
        cdef int64_t o, p
        self._ensure_open()
        with nogil:
            edp_offset_index_lookup(&self.seg.oidx, offset, &o, &p)
        return o, p

    def __repr__(self):
        return (f"Segment({self.path!r}, base_offset={self.base_offset}, "
                f"size={edp_segment_size(&self.seg)})")
