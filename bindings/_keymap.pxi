# Log compaction in C: the key map (src/native/keymap.c) filled from a log's batches, and the
# rewrite of a sealed segment's batches that keeps only each key's latest record. Records
# are walked by the streaming walker of _records.pxi, compressed batches included, with the
# GIL released; no Python object is made per record.
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize


cdef struct _MapFill:
    edp_keymap_t *map
    int64_t base_offset
    int64_t records
    int64_t refused_offset


cdef int _map_visit(void *ctx, const edp_record_ref_t *r) noexcept nogil:
    cdef _MapFill *c = <_MapFill *>ctx
    cdef int rc = 0
    if r.key_len >= 0:
        rc = edp_keymap_put(c.map, r.key, <size_t>r.key_len, c.base_offset + r.offset_delta)
        if rc == ENOSPC:
            c.refused_offset = c.base_offset + r.offset_delta
    if rc == 0:
        c.records += 1
    return rc


cdef struct _Filter:
    const edp_keymap_t *map
    int64_t base_offset
    bint drop_tombstones
    GrowBuf kept
    int32_t kept_records
    int64_t removed
    int64_t tombstones


cdef int _filter_visit(void *ctx, const edp_record_ref_t *r) noexcept nogil:
    cdef _Filter *c = <_Filter *>ctx
    cdef int64_t offset = c.base_offset + r.offset_delta
    if r.key_len >= 0:
        # A key the map does not hold (-1) is past what it covered: kept, as Kafka does.
        if offset < edp_keymap_get(c.map, r.key, <size_t>r.key_len) or (
                r.value_len < 0 and c.drop_tombstones):
            c.removed += 1
            return 0
        if r.value_len < 0:
            c.tombstones += 1
    if _reserve(&c.kept, r.raw_len):
        return ENOMEM
    memcpy(c.kept.data + c.kept.len, r.raw, r.raw_len)
    c.kept.len += r.raw_len
    c.kept_records += 1
    return 0


cdef uint8_t *_out_extend(bytearray out, size_t n) except NULL:
    """Grow out by n bytes; returns where they start."""
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(out)
    PyByteArray_Resize(out, old + <Py_ssize_t>n)
    return <uint8_t *>PyByteArray_AS_STRING(out) + old


cdef class OffsetMap:
    """Key -> latest offset for compaction, in a fixed amount of memory (Kafka's cleaner
    offset map, log.cleaner.dedupe.buffer.size).

    Keys are held as 128-bit fingerprints (24 bytes a key, whatever the key's size; see
    src/native/include/edplog/keymap.h for the collision odds), up to 80 % of
    capacity_bytes / 24 keys. A map that cannot take a new key is full: add_batches stops
    there and says which offsets the map covers, so the cleaner cleans that prefix of the
    log and builds the next map from the offset after it, as Kafka's does.

    Memory is allocated at once but the pages are touched only as keys land in them (an
    allocation that fails raises OSError(ENOMEM)). One thread at a time: a call while
    another thread is inside one raises RuntimeError.
    """
    cdef edp_keymap_t _map
    cdef bint _busy

    def __cinit__(self, size_t capacity_bytes):
        cdef uint64_t seed = int.from_bytes(_os.urandom(8), "little")
        cdef edp_diag_t diag
        cdef int rc
        with nogil:
            rc = edp_keymap_init(&self._map, capacity_bytes, seed)
        _diag_clear(&diag)
        if rc == EDP_EINVAL:
            snprintf(diag.msg, sizeof(diag.msg), b"an offset map needs at least %d bytes",
                     <int>(2 * EDP_KEYMAP_SLOT_BYTES))
        _check(rc, &diag)

    def __dealloc__(self):
        edp_keymap_free(&self._map)

    cdef int _enter(self) except -1:
        if self._busy:
            raise RuntimeError("the OffsetMap is in use by another call")
        self._busy = True
        return 0

    def __len__(self):
        return self._map.size

    @property
    def capacity(self):
        """The number of keys the map takes before it is full."""
        return self._map.limit

    @property
    def full(self):
        return self._map.size >= self._map.limit

    @property
    def max_offset(self):
        """The largest offset put, or -1."""
        return self._map.max_offset

    def get(self, key):
        """The latest offset held for key (any buffer), or -1."""
        cdef const unsigned char[::1] k = key
        cdef int64_t found
        self._enter()
        try:
            with nogil:
                found = edp_keymap_get(&self._map,
                                       &k[0] if k.shape[0] else <const uint8_t *>"",
                                       <size_t>k.shape[0])
        finally:
            self._busy = False
        return found

    def put(self, key, int64_t offset):
        """Record key at offset (the map keeps the larger offset). False when the key is new
        and the map is full."""
        cdef const unsigned char[::1] k = key
        cdef edp_diag_t diag
        cdef int rc
        self._enter()
        try:
            with nogil:
                rc = edp_keymap_put(&self._map, &k[0] if k.shape[0] else <const uint8_t *>"",
                                    <size_t>k.shape[0], offset)
        finally:
            self._busy = False
        if rc == ENOSPC:
            return False
        _diag_clear(&diag)
        if rc == EDP_EINVAL:
            snprintf(diag.msg, sizeof(diag.msg), b"offset %lld is negative", <long long>offset)
        _check(rc, &diag)
        return True

    def clear(self):
        """Forget every key (the memory stays allocated)."""
        self._enter()
        try:
            with nogil:
                edp_keymap_clear(&self._map)
        finally:
            self._busy = False

    def add_batches(self, data, int64_t max_uncompressed_bytes=DEFAULT_MAX_UNCOMPRESSED_BYTES):
        """Put the key of every keyed record of every non-control batch in data (whole
        batches, CRC checked, compressed ones decompressed as they are walked).

        Returns (records_seen, last_offset_covered, full): the records walked; the offset up
        to which every key of data is in the map (the last batch's last offset, or, when the
        map filled up, the offset before the first record it could not take; -1 for no
        batches); and whether the map filled up, in which case the rest of data was not read.
        """
        cdef const unsigned char[::1] mv = data
        cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
        cdef size_t n = mv.shape[0], pos = 0
        cdef edp_batch_hdr_t h
        cdef _MapFill fill
        cdef GrowBuf carry
        cdef int64_t covered = -1, uncompressed = 0
        cdef int rc = 0
        fill.map = &self._map
        fill.records = 0
        fill.refused_offset = -1
        carry.data = NULL
        carry.len = carry.cap = 0
        self._enter()
        try:
            while pos < n:
                _next_batch(p, n, pos, True, &h)
                if not (h.attributes & EDP_ATTR_CONTROL):
                    fill.base_offset = h.base_offset
                    rc = _walk_batch(p + pos, &h, pos, False, max_uncompressed_bytes,
                                     _map_visit, &fill, &carry, &uncompressed)
                    if rc == ENOSPC:
                        covered = fill.refused_offset - 1
                        break
                covered = h.base_offset + h.last_offset_delta
                pos += <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
        finally:
            free(carry.data)
            self._busy = False
        return fill.records, covered, rc == ENOSPC


def filter_batches(data, OffsetMap offset_map not None, int64_t tombstone_deadline_ms,
                   bytearray out not None,
                   int64_t max_uncompressed_bytes=DEFAULT_MAX_UNCOMPRESSED_BYTES):
    """Rewrite the batches of a sealed segment (whole batches in data, CRC checked) into out,
    keeping the records compaction keeps.

    A record is kept when it has no key, or when its offset is at least the latest the map
    holds for its key (a key the map does not hold is kept), unless it is a tombstone (a null
    value) in a batch whose maxTimestamp < tombstone_deadline_ms. Control batches, and
    batches that lose no record, are copied as they are. A batch that loses records keeps its
    baseOffset, lastOffsetDelta, timestamps, producer fields, attributes and leader epoch; its
    kept records are copied byte for byte (their deltas stay valid), recompressed with the
    batch's codec, under a fresh CRC. A batch left with no record is dropped, except the last
    batch of data, which stays as an empty batch (recordCount 0, no records section, so no
    codec) to keep the segment's last offset. Returns (records_removed, tombstones_kept).
    On an error (a corrupt batch raises CorruptRecordError) out is left as it was.
    """
    cdef const unsigned char[::1] mv = data
    cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
    cdef size_t n = mv.shape[0], pos = 0, size, slen
    cdef edp_batch_hdr_t h, nh
    cdef _Filter f
    cdef GrowBuf carry
    cdef int64_t removed_before, uncompressed = 0
    cdef int codec
    cdef uint8_t *dst
    cdef const unsigned char[::1] packed
    cdef Py_ssize_t out_len = PyByteArray_GET_SIZE(out)
    f.map = &offset_map._map
    f.kept.data = NULL
    f.kept.len = f.kept.cap = 0
    f.removed = f.tombstones = 0
    carry.data = NULL
    carry.len = carry.cap = 0
    offset_map._enter()
    try:
        while pos < n:
            _next_batch(p, n, pos, True, &h)
            size = <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
            if h.attributes & EDP_ATTR_CONTROL:
                dst = _out_extend(out, size)
                with nogil:
                    memcpy(dst, p + pos, size)
                pos += size
                continue
            f.base_offset = h.base_offset
            f.drop_tombstones = h.max_timestamp_ms < tombstone_deadline_ms
            f.kept.len = 0
            f.kept_records = 0
            removed_before = f.removed
            _walk_batch(p + pos, &h, pos, False, max_uncompressed_bytes, _filter_visit, &f,
                        &carry, &uncompressed)
            codec = h.attributes & EDP_ATTR_CODEC_MASK
            nh = h
            nh.record_count = f.kept_records
            if f.removed == removed_before:
                dst = _out_extend(out, size)
                with nogil:
                    memcpy(dst, p + pos, size)
            elif f.kept_records == 0 and pos + size == n:
                nh.attributes = <int16_t>(h.attributes & ~EDP_ATTR_CODEC_MASK)
                dst = _out_extend(out, EDP_BATCH_HEADER_BYTES)
                with nogil:
                    edp_batch_finish(dst, 0, &nh)
            elif f.kept_records:
                if codec:
                    packed = _codecs.compress(codec, <uint8_t[:f.kept.len]> f.kept.data)
                else:
                    packed = <uint8_t[:f.kept.len]> f.kept.data
                slen = packed.shape[0]
                dst = _out_extend(out, EDP_BATCH_HEADER_BYTES + slen)
                with nogil:
                    memcpy(dst + EDP_BATCH_HEADER_BYTES, &packed[0], slen)
                    edp_batch_finish(dst, slen, &nh)
            pos += size
    except BaseException:
        PyByteArray_Resize(out, out_len)
        raise
    finally:
        free(carry.data)
        free(f.kept.data)
        offset_map._busy = False
    return f.removed, f.tombstones
