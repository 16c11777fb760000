# Every record of every batch checked, compressed batches included: the streaming walker of
# src/native/records.c, fed piece by piece by the bounded decompressors of edplog.codecs, so
# that a batch is checked in memory bounded by one piece plus its largest record, with the
# GIL released while the walker runs (and inside each codec library while it decompresses).
from libc.errno cimport ENOMEM, ENOSPC
from libc.stdio cimport snprintf

# The default bound on a batch's decompressed records section. Legitimate producers stay far
# below it: librdkafka's batch.size (default 1,000,000) counts uncompressed bytes; the Java
# producer's max.request.size (default 1 MiB) caps the uncompressed size of its batches too;
# and the broker's max.message.bytes (default 1 MiB + 12) caps a batch after compression. At
# 64 MiB, producers that raise those limits 64-fold still pass, while a batch that expands
# further (a decompression bomb: 64 KiB of zstd can hold 2 GiB) costs at most 64 MiB of
# decompression and walking, tens of milliseconds, before it is refused. Memory does not grow
# with the bound: the walk holds one piece and the largest record.
DEFAULT_MAX_UNCOMPRESSED_BYTES = 64 * 1024 * 1024

# Decompressed bytes asked for per piece: 256 KiB keeps a batch's memory small at little
# cost. With the record walk included, lz4 and zstd batches validate in 1.06 to 1.4 times the
# time it takes to decompress each section whole (bench/bench_validate.py,
# walk_over_decompress); smaller pieces pay the per-call cost more often, larger ones hold
# more memory per batch.
cdef Py_ssize_t _PIECE_BYTES = 256 * 1024


cdef int _reserve(GrowBuf *b, size_t more) noexcept nogil:
    """Room for more bytes after b.len, without the GIL: 0 or ENOMEM."""
    cdef size_t cap
    cdef uint8_t *p
    if b.len + more <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 4096
    while cap < b.len + more:
        cap *= 2
    p = <uint8_t *>realloc(b.data, cap)
    if p == NULL:
        return ENOMEM
    b.data = p
    b.cap = cap
    return 0


cdef int _feed_piece(edp_walker_t *w, GrowBuf *carry, const uint8_t *p, size_t n,
                     edp_diag_t *diag) noexcept nogil:
    """Feed one decompressed piece, which may start inside the record the last piece ended in
    (held in carry) and end inside another (kept in carry for the next piece)."""
    cdef size_t used, take, want
    cdef int rc
    while carry.len and n:
        # Complete the carried record from this piece: exactly its missing bytes once its
        # length is known, otherwise one byte at a time (its length varint is <= 5 bytes), so
        # carry never holds more than that one record.
        want = <size_t>w.need if w.need else carry.len + 1
        take = want - carry.len
        if take > n:
            take = n
        if _reserve(carry, take):
            return ENOMEM
        memcpy(carry.data + carry.len, p, take)
        carry.len += take
        p += take
        n -= take
        rc = edp_walker_feed(w, carry.data, carry.len, &used, diag)
        if rc:
            return rc
        if used:
            carry.len = 0
    if n == 0:
        return 0
    rc = edp_walker_feed(w, p, n, &used, diag)
    if rc:
        return rc
    if used < n:
        if _reserve(carry, n - used):
            return ENOMEM
        memcpy(carry.data, p + used, n - used)
        carry.len = n - used
    return 0


cdef int _check_walk(int rc, edp_diag_t *diag, size_t batch_pos, int64_t pos) except -1:
    """_check for a walk of the batch at batch_pos: its message names the batch, and its
    position is pos in the caller's buffer."""
    cdef char msg[192]
    if rc == 0:
        return 0
    if rc < 0:
        snprintf(msg, sizeof(msg), b"batch at offset %lld (position %zu): %s",
                 <long long>diag.offset, batch_pos, diag.msg)
        memcpy(diag.msg, msg, sizeof(msg))
        diag.pos = pos
    return _check(rc, diag)


cdef int _walk_batch(const uint8_t *b, edp_batch_hdr_t *h, size_t batch_pos, bint strict,
                     int64_t max_bytes, edp_record_visit_fn visit, void *ctx, GrowBuf *carry,
                     int64_t *uncompressed) except -1:
    """Walk every record of the batch at b (its header h already decoded, bounds checked),
    calling visit for each. Returns 0, or ENOSPC when the visitor stopped the walk with it
    (the key map is full); raises CorruptRecordError for a bad record or stream, naming the
    batch, and OSError(ENOMEM) when a record does not fit in memory."""
    cdef int codec = h.attributes & EDP_ATTR_CODEC_MASK
    cdef size_t total = <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
    cdef size_t slen = total - EDP_BATCH_HEADER_BYTES
    cdef edp_walker_t w
    cdef edp_diag_t diag
    cdef const unsigned char[::1] piece
    cdef int rc = 0
    cdef Py_ssize_t n
    _diag_clear(&diag)
    if codec == 0:
        with nogil:
            rc = edp_records_check(b + EDP_BATCH_HEADER_BYTES, b + total, h, strict, visit, ctx,
                                   &diag)
        uncompressed[0] += <int64_t>slen
        if rc != ENOSPC:  # the visitor's stop code is the caller's to read
            _check_walk(rc, &diag, batch_pos,
                        <int64_t>batch_pos + EDP_BATCH_HEADER_BYTES + diag.pos)
        return rc
    if codec > 4:
        raise _errors.UnsupportedCodecError(
            f"batch at offset {h.base_offset} (position {batch_pos}): compression codec "
            f"{codec} is unknown", position=batch_pos, offset=h.base_offset)
    with nogil:
        rc = edp_walker_init(&w, h, strict, -1, max_bytes, visit, ctx, &diag)
    _check_walk(rc, &diag, batch_pos, <int64_t>batch_pos)
    # A view of the compressed section, not a copy (the caller holds the buffer meanwhile).
    section = <uint8_t[:slen]> <uint8_t *>(b + EDP_BATCH_HEADER_BYTES) if slen else b""
    carry.len = 0
    stream = None
    try:
        stream = _codecs.stream_decompressor(codec, section, max_bytes)
        while True:
            piece = stream.read(_PIECE_BYTES)
            n = piece.shape[0]
            if n == 0:
                break
            with nogil:
                rc = _feed_piece(&w, carry, &piece[0], <size_t>n, &diag)
            if rc:
                break
    except _errors.CorruptRecordError as exc:
        raise _errors.CorruptRecordError(
            f"batch at offset {h.base_offset} (position {batch_pos}): {exc}",
            position=batch_pos, offset=h.base_offset) from exc
    finally:
        if stream is not None:
            uncompressed[0] += stream.produced
    if rc == 0:
        with nogil:
            rc = edp_walker_end(&w, carry.len, &diag)
    if rc != ENOSPC:
        _check_walk(rc, &diag, batch_pos, <int64_t>batch_pos)
    return rc


cdef int _next_batch(const uint8_t *p, size_t n, size_t pos, bint check_crc,
                     edp_batch_hdr_t *h) except -1:
    """Decode (and with check_crc validate, not strict) the header of the batch at pos."""
    cdef edp_diag_t diag
    cdef int rc
    _diag_clear(&diag)
    with nogil:
        if check_crc:
            rc = edp_batch_validate(p + pos, n - pos, 0, h, &diag)
        else:
            rc = edp_batch_header(p + pos, n - pos, h, &diag)
    if rc != 0:
        diag.pos = <int64_t>pos + (diag.pos if diag.pos > 0 else 0)
        _check(rc, &diag)
    return 0


cdef int _validate_records_buf(const uint8_t *p, size_t n, bint strict, int64_t max_bytes,
                               int64_t *totals) except -1:
    """validate_records over a buffer the caller holds: totals gets (batches, records,
    uncompressed bytes). For the produce path, after edp_batches_scan."""
    cdef size_t pos = 0
    cdef edp_batch_hdr_t h
    cdef GrowBuf carry
    carry.data = NULL
    carry.len = carry.cap = 0
    totals[0] = totals[1] = totals[2] = 0
    try:
        while pos < n:
            _next_batch(p, n, pos, False, &h)
            _walk_batch(p + pos, &h, pos, strict, max_bytes, NULL, NULL, &carry, &totals[2])
            totals[0] += 1
            totals[1] += h.record_count
            pos += <size_t>h.batch_length + EDP_BATCH_LOG_OVERHEAD
    finally:
        free(carry.data)
    return 0


def validate_records(data, bint strict=True,
                     int64_t max_uncompressed_bytes=DEFAULT_MAX_UNCOMPRESSED_BYTES):
    """Check every record of every batch in a buffer, decompressing compressed batches.

    This is the check Kafka's LogValidator makes before it acknowledges a produce: each
    record's lengths, offset delta (strict: 0, 1, 2, ... as a producer sends them; otherwise
    ascending within lastOffsetDelta, as compaction leaves them), key, value and headers, and
    the record count. Call it after scan_batches (edp_batches_scan), which checks structure
    and CRC: those are not repeated here, since a second CRC pass over every byte would find
    nothing new; every header is still decoded with bounds checks, so an unscanned buffer
    cannot make this read outside it.

    Compressed batches are decompressed in 256 KiB pieces and walked as they come, so memory
    stays at one piece plus the largest record; a batch whose records would pass
    max_uncompressed_bytes is refused as soon as its output does. Raises CorruptRecordError
    (Kafka's CORRUPT_MESSAGE) naming the batch's offset and position and what is wrong.
    Returns (batches, records, uncompressed_bytes): the size of every records section as
    walked, decompressed.
    """
    cdef const unsigned char[::1] mv = data
    cdef int64_t totals[3]
    if max_uncompressed_bytes < 0:
        raise ValueError("max_uncompressed_bytes must be >= 0")
    _validate_records_buf(&mv[0] if mv.shape[0] else NULL, mv.shape[0], strict,
                          max_uncompressed_bytes, totals)
    return totals[0], totals[1], totals[2]


def offset_of_timestamp(data, int64_t timestamp_ms,
                        int64_t max_uncompressed_bytes=DEFAULT_MAX_UNCOMPRESSED_BYTES):
    """The offset of the first record whose timestamp is ``timestamp_ms`` in the batch at the
    start of ``data``, or -1 when no record has it.

    The batch's structure and CRC are checked, then its records are walked in C (compressed
    batches decompressed piece by piece, as validate_records does), with no Python object per
    record. A LogAppendTime batch gives every record its max timestamp, so its first record
    is the one. This is how ListOffsets MAX_TIMESTAMP turns the batch a segment remembers
    into the exact record. Raises CorruptRecordError for a damaged batch.
    """
    cdef const unsigned char[::1] mv = data
    cdef edp_batch_hdr_t h
    cdef edp_timestamp_find_t find
    cdef GrowBuf carry
    cdef int64_t produced = 0
    cdef size_t n = mv.shape[0]
    if n == 0:
        raise ValueError("no batch in an empty buffer")
    _next_batch(&mv[0], n, 0, True, &h)
    find.base_timestamp_ms = h.base_timestamp_ms
    find.target_ms = timestamp_ms
    find.log_append_time = 1 if h.attributes & EDP_ATTR_LOG_APPEND_TIME else 0
    find.offset_delta = -1
    if find.log_append_time and h.max_timestamp_ms != timestamp_ms:
        return -1
    carry.data = NULL
    carry.len = carry.cap = 0
    try:
        _walk_batch(&mv[0], &h, 0, False, max_uncompressed_bytes, edp_records_find_timestamp,
                    &find, &carry, &produced)
    finally:
        free(carry.data)
    return -1 if find.offset_delta < 0 else h.base_offset + find.offset_delta
