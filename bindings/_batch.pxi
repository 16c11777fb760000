# RecordBatch v2 from Python: CRC-32C, building batches record by record, decoding them.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_Check, PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.unicode cimport PyUnicode_Check
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME

from edplog import codecs as _codecs


cdef inline int64_t _now_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


def crc32c(data, uint32_t crc=0):
    """CRC-32C of any buffer, continuing from crc. Releases the GIL for large buffers."""
    cdef const unsigned char[::1] mv = data
    cdef size_t n = mv.shape[0]
    cdef const unsigned char *p = &mv[0] if n else NULL
    if n >= 2048:
        with nogil:
            crc = edp_crc32c(crc, p, n)
    else:
        crc = edp_crc32c(crc, p, n)
    return crc


def crc32c_portable(data, uint32_t crc=0):
    """CRC-32C by the portable table path (for tests that both paths agree)."""
    cdef const unsigned char[::1] mv = data
    cdef size_t n = mv.shape[0]
    return edp_crc32c_portable(crc, &mv[0] if n else NULL, n)


@cython.no_gc
cdef class Record:
    """One record as read from a log: offset, timestamp, key, value and headers.

    Records hold only bytes, str and tuples of them, so they can never be part of a reference
    cycle: they stay out of the cyclic garbage collector, which otherwise spends about 30 % of
    a large read() walking them (bench/bench_log.py, read).
    """
    cdef readonly int64_t offset
    cdef readonly int64_t timestamp_ms
    cdef readonly object key
    cdef readonly object value
    cdef readonly tuple headers

    def __init__(self, int64_t offset, int64_t timestamp_ms, key, value, headers=()):
        self.offset = offset
        self.timestamp_ms = timestamp_ms
        self.key = key
        self.value = value
        self.headers = tuple(headers) if headers else ()

    def __repr__(self):
        return (f"Record(offset={self.offset}, timestamp_ms={self.timestamp_ms}, "
                f"key={self.key!r}, value={self.value!r}, headers={self.headers!r})")

    def __eq__(self, other):
        if not isinstance(other, Record):
            return NotImplemented
        cdef Record o = other
        return (self.offset == o.offset and self.timestamp_ms == o.timestamp_ms and
                self.key == o.key and self.value == o.value and self.headers == o.headers)

    def __reduce__(self):
        return (Record, (self.offset, self.timestamp_ms, self.key, self.value, self.headers))


cdef class BatchHeader:
    """The header fields of one RecordBatch (``batch_header`` reads them; no CRC check)."""
    cdef readonly int64_t base_offset
    cdef readonly int64_t last_offset
    cdef readonly int32_t leader_epoch
    cdef readonly int16_t attributes
    cdef readonly int32_t last_offset_delta
    cdef readonly int64_t base_timestamp_ms
    cdef readonly int64_t max_timestamp_ms
    cdef readonly int64_t producer_id
    cdef readonly int16_t producer_epoch
    cdef readonly int32_t base_sequence
    cdef readonly int32_t record_count
    cdef readonly uint32_t crc
    cdef readonly int32_t size_bytes

    @property
    def compression(self):
        return _codecs.CODEC_NAMES[self.attributes & EDP_ATTR_CODEC_MASK]

    @property
    def is_transactional(self):
        return bool(self.attributes & EDP_ATTR_TRANSACTIONAL)

    @property
    def is_control(self):
        return bool(self.attributes & EDP_ATTR_CONTROL)

    @property
    def timestamp_type(self):
        return "LogAppendTime" if self.attributes & EDP_ATTR_LOG_APPEND_TIME else "CreateTime"

    @property
    def last_sequence(self):
        """The sequence number of the batch's last record (sequences wrap at 2**31)."""
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF

    def __repr__(self):
        return (f"{type(self).__name__}(base_offset={self.base_offset}, "
                f"last_offset={self.last_offset}, records={self.record_count}, "
                f"compression={self.compression!r}, size_bytes={self.size_bytes})")


cdef class Batch(BatchHeader):
    """A decoded RecordBatch: its header fields and its records."""
    cdef readonly list records


cdef void _fill_header(BatchHeader bt, const edp_batch_hdr_t *h) noexcept:
    bt.base_offset = h.base_offset
    bt.last_offset = h.base_offset + h.last_offset_delta
    bt.leader_epoch = h.leader_epoch
    bt.attributes = h.attributes
    bt.last_offset_delta = h.last_offset_delta
    bt.base_timestamp_ms = h.base_timestamp_ms
    bt.max_timestamp_ms = h.max_timestamp_ms
    bt.producer_id = h.producer_id
    bt.producer_epoch = h.producer_epoch
    bt.base_sequence = h.base_sequence
    bt.record_count = h.record_count
    bt.crc = h.crc
    bt.size_bytes = h.batch_length + EDP_BATCH_LOG_OVERHEAD


# ---- a growable byte buffer owned by C -------------------------------------------------------

cdef struct GrowBuf:
    uint8_t *data
    size_t len
    size_t cap


cdef int _grow(GrowBuf *b, size_t need) except -1:
    """Make room for need more bytes after b.len."""
    cdef size_t cap
    cdef uint8_t *p
    if b.len + need <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 4096
    while cap < b.len + need:
        cap *= 2
    p = <uint8_t *>realloc(b.data, cap)
    if p == NULL:
        raise MemoryError()
    b.data = p
    b.cap = cap
    return 0


cdef int _encode_headers(GrowBuf *hb, object headers) except -1:
    """Encode an iterable of (key, value) headers into hb; returns their count."""
    cdef int count = 0
    cdef bytes k
    cdef const unsigned char[::1] v
    cdef size_t n
    for item in headers:
        key, value = item
        k = key.encode() if PyUnicode_Check(key) else bytes(key)
        if value is None:
            _grow(hb, 20 + len(k))
            n = edp_header_encode(hb.data + hb.len, hb.cap - hb.len,
                                  <const uint8_t *>PyBytes_AS_STRING(k), <int32_t>len(k), NULL, -1)
        else:
            if PyUnicode_Check(value):
                value = value.encode()
            v = value
            _grow(hb, 20 + len(k) + <size_t>v.shape[0])
            n = edp_header_encode(hb.data + hb.len, hb.cap - hb.len,
                                  <const uint8_t *>PyBytes_AS_STRING(k), <int32_t>len(k),
                                  &v[0] if v.shape[0] else <const uint8_t *>"", <int32_t>v.shape[0])
        hb.len += n
        count += 1
    return count


cdef int64_t _encode_record(GrowBuf *buf, GrowBuf *hdrs, int32_t offset_delta, bint first,
                            int64_t *base_ts, object value, object key, object headers,
                            object timestamp_ms, edp_clock_t *clock=NULL) except? -2:
    """Encode one record at the end of buf. *base_ts is set from the first record. Returns the record's timestamp. Only the record's own bytes are copied,
    once, into buf: no Python object is made."""
    cdef const uint8_t *vp = NULL
    cdef const uint8_t *kp = NULL
    cdef Py_ssize_t vlen = -1, klen = -1
    cdef Py_buffer vbuf, kbuf
    cdef int have_vbuf = 0, have_kbuf = 0
    cdef int32_t hcount = 0
    cdef int64_t ts, delta
    cdef size_t size
    if value is not None:
        if PyBytes_Check(value):
            vp = <const uint8_t *>PyBytes_AS_STRING(value)
            vlen = PyBytes_GET_SIZE(value)
        else:
            PyObject_GetBuffer(value, &vbuf, PyBUF_SIMPLE)
            have_vbuf = 1
            vp = <const uint8_t *>vbuf.buf
            vlen = vbuf.len
    try:
        if key is not None:
            if PyBytes_Check(key):
                kp = <const uint8_t *>PyBytes_AS_STRING(key)
                klen = PyBytes_GET_SIZE(key)
            else:
                PyObject_GetBuffer(key, &kbuf, PyBUF_SIMPLE)
                have_kbuf = 1
                kp = <const uint8_t *>kbuf.buf
                klen = kbuf.len
        hdrs.len = 0
        if headers:
            hcount = _encode_headers(hdrs, headers)
        if timestamp_ms is not None:
            ts = <int64_t>timestamp_ms
        elif clock != NULL:
            ts = edp_clock_now_ms(clock)
        else:
            ts = _now_ms()
        if first:
            base_ts[0] = ts
        delta = ts - base_ts[0]
        # An upper bound: five varints of at most 10 bytes, the attributes byte, the bytes.
        size = 51 + <size_t>(klen if klen > 0 else 0) + <size_t>(vlen if vlen > 0 else 0) + hdrs.len
        if buf.len + size > buf.cap:
            _grow(buf, size)
        buf.len += edp_record_encode(buf.data + buf.len, delta, offset_delta, kp, <int32_t>klen,
                                     vp, <int32_t>vlen, hdrs.data, hdrs.len, hcount)
    finally:
        if have_vbuf:
            PyBuffer_Release(&vbuf)
        if have_kbuf:
            PyBuffer_Release(&kbuf)
    return ts


cdef class BatchBuilder:
    """Builds one RecordBatch v2 record by record; build() returns its bytes.

    The records section is encoded straight into a C buffer; nothing is kept per record.
    """
    cdef GrowBuf buf
    cdef GrowBuf hdrs
    cdef int32_t count
    cdef int64_t base_ts
    cdef int64_t max_ts
    cdef int32_t last_delta

    def __cinit__(self):
        self.buf.data = NULL
        self.buf.len = self.buf.cap = 0
        self.hdrs.data = NULL
        self.hdrs.len = self.hdrs.cap = 0
        self.reset()

    def __dealloc__(self):
        free(self.buf.data)
        free(self.hdrs.data)

    cpdef reset(self):
        """Forget every record appended so far."""
        _grow(&self.buf, EDP_BATCH_HEADER_BYTES)
        self.buf.len = EDP_BATCH_HEADER_BYTES
        self.count = 0
        self.last_delta = -1
        self.base_ts = -1
        self.max_ts = -1

    def __len__(self):
        return self.count

    @property
    def size_bytes(self):
        """Bytes the batch would take uncompressed."""
        return self.buf.len

    @property
    def max_timestamp_ms(self):
        return self.max_ts

    cpdef int64_t append(self, value, key=None, headers=None, timestamp_ms=None) except -1:
        """Add a record (value and key may be None; headers a list of (str, bytes) pairs).

        Returns its offset delta within the batch.
        """
        cdef int64_t ts = _encode_record(&self.buf, &self.hdrs, self.count, self.count == 0,
                                         &self.base_ts, value, key, headers, timestamp_ms)
        if ts > self.max_ts:
            self.max_ts = ts
        self.count += 1
        self.last_delta = self.count - 1
        return self.count - 1

    def append_at(self, int32_t offset_delta, value, key=None, headers=None, timestamp_ms=None):
        """Add a record with an explicit offset delta (ascending; gaps allowed), as
        compaction writes them."""
        if self.count and offset_delta <= self.last_delta:
            raise ValueError("offset deltas must ascend")
        cdef int64_t ts = _encode_record(&self.buf, &self.hdrs, offset_delta, self.count == 0,
                                         &self.base_ts, value, key, headers, timestamp_ms)
        if ts > self.max_ts:
            self.max_ts = ts
        self.count += 1
        self.last_delta = offset_delta

    def build(self, compression=None, int64_t base_offset=0, int32_t leader_epoch=-1,
              int64_t producer_id=-1, int16_t producer_epoch=-1, int32_t base_sequence=-1,
              bint transactional=False, bint control=False, int32_t last_offset_delta=-1,
              int64_t base_timestamp_ms=-1, int64_t max_timestamp_ms=-1):
        """The finished batch as bytes (the builder is left unchanged; call reset() to reuse).

        base_timestamp_ms / max_timestamp_ms, when >= 0, replace the timestamps taken from the
        records (a compacted batch keeps the ones it had, even with no record left)."""
        cdef int codec = _codecs.codec_id(compression)
        cdef edp_batch_hdr_t h
        cdef bytes out
        cdef size_t records_len = self.buf.len - EDP_BATCH_HEADER_BYTES
        cdef uint8_t *op
        h.base_offset = base_offset
        h.leader_epoch = leader_epoch
        h.attributes = <int16_t>(codec | (EDP_ATTR_TRANSACTIONAL if transactional else 0)
                                 | (EDP_ATTR_CONTROL if control else 0))
        h.last_offset_delta = max(self.last_delta, last_offset_delta, 0)
        h.base_timestamp_ms = self.base_ts if self.count else _now_ms()
        h.max_timestamp_ms = self.max_ts if self.count else h.base_timestamp_ms
        if base_timestamp_ms >= 0:
            if self.count and base_timestamp_ms != self.base_ts:
                raise ValueError("the records' timestamp deltas are relative to their own base")
            h.base_timestamp_ms = base_timestamp_ms
        if max_timestamp_ms >= 0:
            h.max_timestamp_ms = max_timestamp_ms
        h.producer_id = producer_id
        h.producer_epoch = producer_epoch
        h.base_sequence = base_sequence
        h.record_count = self.count
        if codec == 0:
            out = PyBytes_FromStringAndSize(<char *>self.buf.data, self.buf.len)
            op = <uint8_t *>PyBytes_AS_STRING(out)
            with nogil:
                edp_batch_finish(op, records_len, &h)
            return out
        section = _codecs.compress(
            codec, (<char *>self.buf.data + EDP_BATCH_HEADER_BYTES)[:records_len])
        records_len = len(section)
        out = PyBytes_FromStringAndSize(NULL, EDP_BATCH_HEADER_BYTES + records_len)
        op = <uint8_t *>PyBytes_AS_STRING(out)
        memcpy(op + EDP_BATCH_HEADER_BYTES, PyBytes_AS_STRING(section), records_len)
        with nogil:
            edp_batch_finish(op, records_len, &h)
        return out


# ---- decoding --------------------------------------------------------------------------------

cdef list _decode_records(const uint8_t *p, const uint8_t *end, edp_batch_hdr_t *h,
                          int64_t min_offset, int64_t max_count, list out=None):
    """Append Record objects for the records section [p, end) of the batch h to out."""
    if out is None:
        out = []
    cdef edp_record_t rec
    cdef edp_header_t hd
    cdef const uint8_t *hp
    cdef list headers
    cdef Record r
    cdef int32_t i, j
    cdef int64_t offset, ts
    cdef bint log_append = h.attributes & EDP_ATTR_LOG_APPEND_TIME
    for i in range(h.record_count):
        if edp_record_next(&p, end, &rec) != EDP_OK:
            raise _errors.CorruptRecordError(
                f"record {i} of the batch at offset {h.base_offset} is malformed",
                offset=h.base_offset)
        offset = h.base_offset + rec.offset_delta
        if offset < min_offset:
            continue
        if max_count >= 0 and len(out) >= max_count:
            break
        ts = h.max_timestamp_ms if log_append else h.base_timestamp_ms + rec.timestamp_delta
        r = Record.__new__(Record)
        r.offset = offset
        r.timestamp_ms = ts
        r.key = None if rec.key_len < 0 else PyBytes_FromStringAndSize(<char *>rec.key, rec.key_len)
        r.value = (None if rec.value_len < 0 else
                   PyBytes_FromStringAndSize(<char *>rec.value, rec.value_len))
        if rec.header_count:
            headers = []
            hp = rec.headers
            for j in range(rec.header_count):
                edp_header_next(&hp, rec.end, &hd)
                headers.append(((<char *>hd.key)[:hd.key_len].decode("utf-8", "replace"),
                                None if hd.value_len < 0 else (<char *>hd.value)[:hd.value_len]))
            r.headers = tuple(headers)
        else:
            r.headers = ()
        out.append(r)
    return out


cdef list _records_of(const uint8_t *b, edp_batch_hdr_t *h, int64_t min_offset, int64_t max_count,
                      list out=None):
    cdef int codec = h.attributes & EDP_ATTR_CODEC_MASK
    cdef size_t total = <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
    cdef bytes plain
    if codec == 0:
        return _decode_records(b + EDP_BATCH_HEADER_BYTES, b + total, h, min_offset, max_count, out)
    plain = _codecs.decompress(codec, (<char *>b + EDP_BATCH_HEADER_BYTES)[:total - EDP_BATCH_HEADER_BYTES])
    return _decode_records(<const uint8_t *>PyBytes_AS_STRING(plain),
                           <const uint8_t *>PyBytes_AS_STRING(plain) + PyBytes_GET_SIZE(plain),
                           h, min_offset, max_count, out)


cdef Batch _batch_from(const uint8_t *b, edp_batch_hdr_t *h, bint with_records):
    cdef Batch bt = Batch.__new__(Batch)
    _fill_header(bt, h)
    bt.records = _records_of(b, h, -1, -1) if with_records else []
    return bt


def batch_header(data, Py_ssize_t pos=0, bint whole=True):
    """The header of the batch at ``pos`` of data, as a BatchHeader (the CRC is not checked).

    Raises TruncatedRecordError when data ends inside the batch it announces (with
    ``whole=False``, only inside the 61-byte header), and CorruptRecordError for a wrong
    magic byte or an impossible length.
    """
    cdef const unsigned char[::1] mv = data
    cdef edp_batch_hdr_t h
    cdef edp_diag_t diag
    cdef int rc
    if pos < 0 or pos > mv.shape[0]:
        raise ValueError(f"position {pos} is outside the buffer")
    _diag_clear(&diag)
    rc = edp_batch_header(&mv[0] + pos if mv.shape[0] else NULL, mv.shape[0] - pos, &h, &diag)
    if rc == EDP_ETRUNCATED and not whole and mv.shape[0] - pos >= EDP_BATCH_HEADER_BYTES:
        rc = EDP_OK  # the header is all there; the batch continues past data
    _check(rc, &diag)
    cdef BatchHeader bt = BatchHeader.__new__(BatchHeader)
    _fill_header(bt, &h)
    return bt


def batch_headers(data, bint producers_only=False):
    """The headers of the whole batches at the start of data (no CRC check), stopping at the
    first partial or malformed one. With producers_only, only batches that carry a producer
    id (idempotent or transactional) are returned, so a log of plain batches costs no object
    per batch."""
    cdef const unsigned char[::1] mv = data
    cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
    cdef size_t n = mv.shape[0], pos = 0
    cdef edp_batch_hdr_t h
    cdef BatchHeader bt
    cdef list out = []
    while pos < n:
        if edp_batch_header(p + pos, n - pos, &h, NULL) != EDP_OK:
            break
        if not producers_only or h.producer_id >= 0:
            bt = BatchHeader.__new__(BatchHeader)
            _fill_header(bt, &h)
            out.append(bt)
        pos += <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
    return out


def whole_batches(data):
    """The length of the prefix of data made of whole batches (headers chained by their
    lengths; no CRC check): where a chunk read from a segment can be cut."""
    cdef const unsigned char[::1] mv = data
    cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
    cdef size_t n = mv.shape[0], pos = 0
    cdef edp_batch_hdr_t h
    while pos < n and edp_batch_header(p + pos, n - pos, &h, NULL) == EDP_OK:
        pos += <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
    return pos


def announced_batch_bytes(data):
    """The total size the batch at the start of data announces (baseOffset and batchLength
    included), from its length field alone; 0 when data holds fewer than 12 bytes. For
    reading a batch larger than the chunk that holds its start."""
    cdef const unsigned char[::1] mv = data
    if mv.shape[0] < EDP_BATCH_LOG_OVERHEAD:
        return 0
    cdef int64_t length = ((<int64_t>mv[8] << 24) | (<int64_t>mv[9] << 16) |
                           (<int64_t>mv[10] << 8) | <int64_t>mv[11])
    if length >= 0x80000000:
        return 0
    return length + EDP_BATCH_LOG_OVERHEAD


def epoch_starts(data, int32_t after_epoch=-1):
    """[(leader_epoch, base_offset)] of every whole batch at the start of data whose
    partitionLeaderEpoch is above every epoch before it (and above after_epoch): the entries
    a leader-epoch cache gains from these batches."""
    cdef const unsigned char[::1] mv = data
    cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
    cdef size_t n = mv.shape[0], pos = 0
    cdef edp_batch_hdr_t h
    cdef int32_t latest = after_epoch
    cdef list out = []
    while pos < n and edp_batch_header(p + pos, n - pos, &h, NULL) == EDP_OK:
        if h.leader_epoch > latest:
            latest = h.leader_epoch
            out.append((h.leader_epoch, h.base_offset))
        pos += <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
    return out


def decode_batches(data, bint verify=True, bint records=True):
    """Decode every batch in a buffer into Batch objects (with their Records).

    With verify (the default) each batch's structure and CRC are checked first, and a bad
    one raises CorruptRecordError naming its position. A partial batch at the end raises
    TruncatedRecordError.
    """
    cdef const unsigned char[::1] mv = data
    cdef const uint8_t *p = &mv[0] if mv.shape[0] else NULL
    cdef size_t n = mv.shape[0], pos = 0
    cdef edp_batch_hdr_t h
    cdef edp_diag_t diag
    cdef int rc
    cdef list out = []
    while pos < n:
        _diag_clear(&diag)
        with nogil:
            if verify:
                rc = edp_batch_validate(p + pos, n - pos, 0, &h, &diag)
            else:
                rc = edp_batch_header(p + pos, n - pos, &h, &diag)
        if rc != 0:
            diag.pos = <int64_t>pos + (diag.pos if diag.pos > 0 else 0)
            _check(rc, &diag)
        out.append(_batch_from(p + pos, &h, records))
        pos += <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
    return out


def scan_batches(data, bint strict=True, bint check_crc=True, bint require_ascending=False):
    """Validate the batches in a buffer without decoding records.

    Returns (batches, records, first_offset, last_offset, max_timestamp_ms, valid_bytes) and
    raises CorruptRecordError / TruncatedRecordError for the first bad batch.
    """
    cdef const unsigned char[::1] mv = data
    cdef edp_scan_t scan
    cdef edp_diag_t diag
    cdef int rc
    _diag_clear(&diag)
    with nogil:
        rc = edp_batches_scan(&mv[0] if mv.shape[0] else NULL, mv.shape[0], strict, check_crc,
                              require_ascending, &scan, &diag)
    _check(rc, &diag)
    return (scan.batches, scan.records, scan.first_offset, scan.last_offset,
            scan.max_timestamp_ms, scan.valid_bytes)


def assign_offsets(data, int64_t next_offset, int32_t leader_epoch=-1):
    """Rewrite baseOffset (and the leader epoch if >= 0) of validated batches in a writable
    buffer, in place. Returns the next offset after the last one assigned."""
    cdef unsigned char[::1] mv = data
    if mv.shape[0] == 0:
        return next_offset
    return edp_batches_assign_offsets(&mv[0], mv.shape[0], next_offset, leader_epoch)


def varint_encode(int64_t v):
    cdef uint8_t tmp[10]
    cdef size_t n = edp_varint_encode(tmp, v)
    return (<char *>tmp)[:n]


def varint_decode(data, Py_ssize_t pos=0):
    """Decode a zigzag varint at pos: returns (value, next_pos)."""
    cdef const unsigned char[::1] mv = data
    cdef const uint8_t *p = &mv[0] + pos
    cdef const uint8_t *start = p
    cdef int64_t v
    if pos < 0 or pos >= mv.shape[0]:
        raise _errors.CorruptRecordError("varint runs past the buffer")
    if edp_varint_decode(&p, &mv[0] + mv.shape[0], &v) != EDP_OK:
        raise _errors.CorruptRecordError("malformed varint")
    return v, pos + (p - start)
