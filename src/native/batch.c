/*
 * RecordBatch v2: validate, walk, assign offsets, encode and decode records.
 * The byte layout and the validity rules are in include/edplog/batch.h.
 */
#include <limits.h>

#include "common.h"
#include "edplog/batch.h"
#include "edplog/crc32c.h"

#define CRC_START 21 /* attributes .. end is covered */

/* ---- varints ------------------------------------------------------------------------- */

static inline uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline size_t uvarint_size(uint64_t u)
{
    return u < 0x80 ? 1 : (size_t)(63 - __builtin_clzll(u)) / 7 + 1;
}

static inline size_t uvarint_put(uint8_t *dst, uint64_t u)
{
    size_t n = 0;
    while (u >= 0x80) {
        dst[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    dst[n++] = (uint8_t)u;
    return n;
}

size_t edp_varint_size(int64_t v)
{
    return uvarint_size(zigzag(v));
}

size_t edp_varint_encode(uint8_t *dst, int64_t v)
{
    return uvarint_put(dst, zigzag(v));
}

int edp_varint_decode(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    const uint8_t *q = *p;
    uint64_t u = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (EDP_UNLIKELY(q >= end))
            return EDP_ECORRUPT;
        uint8_t b = *q++;
        u |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            *p = q;
            return EDP_OK;
        }
    }
    return EDP_ECORRUPT; /* more than 10 bytes */
}

static inline int varint32(const uint8_t **p, const uint8_t *end, int32_t *out)
{
    int64_t v;
    int rc = edp_varint_decode(p, end, &v);
    if (EDP_UNLIKELY(rc != EDP_OK || v < INT32_MIN || v > INT32_MAX))
        return EDP_ECORRUPT;
    *out = (int32_t)v;
    return EDP_OK;
}

/* ---- batch headers ------------------------------------------------------------------- */

int edp_batch_header(const uint8_t *buf, size_t len, edp_batch_hdr_t *hdr, edp_diag_t *diag)
{
    if (len < EDP_BATCH_HEADER_BYTES)
        return edp_diag_set(diag, EDP_ETRUNCATED, -1, 0,
                            "%zu bytes left, fewer than a batch header (61)", len);
    hdr->base_offset = (int64_t)be64_load(buf);
    hdr->batch_length = (int32_t)be32_load(buf + 8);
    hdr->leader_epoch = (int32_t)be32_load(buf + 12);
    hdr->magic = (int8_t)buf[16];
    hdr->crc = be32_load(buf + 17);
    hdr->attributes = (int16_t)be16_load(buf + 21);
    hdr->last_offset_delta = (int32_t)be32_load(buf + 23);
    hdr->base_timestamp_ms = (int64_t)be64_load(buf + 27);
    hdr->max_timestamp_ms = (int64_t)be64_load(buf + 35);
    hdr->producer_id = (int64_t)be64_load(buf + 43);
    hdr->producer_epoch = (int16_t)be16_load(buf + 51);
    hdr->base_sequence = (int32_t)be32_load(buf + 53);
    hdr->record_count = (int32_t)be32_load(buf + 57);
    if (hdr->magic != EDP_BATCH_MAGIC)
        return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, 16,
                            "magic byte is %d, expected 2", hdr->magic);
    if (hdr->batch_length < EDP_BATCH_HEADER_BYTES - EDP_BATCH_LOG_OVERHEAD)
        return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, 8,
                            "batchLength %d is below the minimum 49", hdr->batch_length);
    if ((size_t)hdr->batch_length + EDP_BATCH_LOG_OVERHEAD > len)
        return edp_diag_set(diag, EDP_ETRUNCATED, hdr->base_offset, 8,
                            "batch of %ld bytes but only %zu bytes left",
                            (long)hdr->batch_length + EDP_BATCH_LOG_OVERHEAD, len);
    return EDP_OK;
}

/* A varint read for the validation walk: the one-byte case inline, the rest out of line. */
static inline int walk_varint(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    const uint8_t *q = *p;
    uint64_t u;
    if (EDP_LIKELY(end - q >= 2)) {
        if (!(q[0] & 0x80)) {
            u = q[0];
            *p = q + 1;
            *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return EDP_OK;
        }
        if (!(q[1] & 0x80)) {
            u = (uint64_t)(q[0] & 0x7f) | (uint64_t)q[1] << 7;
            *p = q + 2;
            *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return EDP_OK;
        }
    }
    return edp_varint_decode(p, end, out);
}

/* Check the records of an uncompressed batch: exactly record_count records whose lengths fill
 * the section, with offset deltas 0, 1, 2, ... (strict) or ascending within range. Only the
 * length, attributes, timestamp delta and offset delta of each record are read: the bytes after
 * them are covered by the CRC and decoded (and checked) when the record is read. Reading every
 * field costs 4x more (bench/bench_log.py, append_batches). */
static int check_records(const uint8_t *p, const uint8_t *end, const edp_batch_hdr_t *hdr,
                         int strict, edp_diag_t *diag, const uint8_t *batch)
{
    int64_t prev = -1;
    for (int32_t i = 0; i < hdr->record_count; i++) {
        int64_t length, ts_delta, off_delta;
        const uint8_t *q = p;
        if (walk_varint(&q, end, &length) != EDP_OK || length < 6 || length > end - q)
            return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, p - batch,
                                "record %d of %d has a bad length", i, hdr->record_count);
        const uint8_t *rend = q + length;
        q++; /* attributes */
        if (walk_varint(&q, rend, &ts_delta) != EDP_OK ||
            walk_varint(&q, rend, &off_delta) != EDP_OK)
            return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, p - batch,
                                "record %d of %d is malformed", i, hdr->record_count);
        int ok = strict ? off_delta == i
                        : off_delta > prev && off_delta <= hdr->last_offset_delta;
        if (!ok)
            return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, p - batch,
                                "record %d has offset delta %ld", i, (long)off_delta);
        prev = off_delta;
        p = rend;
    }
    if (p != end)
        return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, p - batch,
                            "%ld bytes after the last of %d records", (long)(end - p),
                            hdr->record_count);
    return EDP_OK;
}

int edp_batch_check_crc(const uint8_t *buf, const edp_batch_hdr_t *hdr, edp_diag_t *diag)
{
    size_t total = (size_t)hdr->batch_length + EDP_BATCH_LOG_OVERHEAD;
    uint32_t crc = edp_crc32c(0, buf + CRC_START, total - CRC_START);
    if (crc != hdr->crc)
        return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, 17,
                            "CRC mismatch: stored 0x%08x, computed 0x%08x", hdr->crc, crc);
    return EDP_OK;
}

int edp_batch_validate(const uint8_t *buf, size_t len, int strict, edp_batch_hdr_t *hdr,
                       edp_diag_t *diag)
{
    int rc = edp_batch_header(buf, len, hdr, diag);
    if (rc != EDP_OK)
        return rc;
    size_t total = (size_t)hdr->batch_length + EDP_BATCH_LOG_OVERHEAD;
    rc = edp_batch_check_crc(buf, hdr, diag);
    if (rc != EDP_OK)
        return rc;
    if (hdr->record_count < 0 || hdr->last_offset_delta < 0 ||
        (int64_t)hdr->last_offset_delta < (int64_t)hdr->record_count - 1)
        return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, 57,
                            "record count %d does not fit lastOffsetDelta %d",
                            hdr->record_count, hdr->last_offset_delta);
    if (strict && hdr->last_offset_delta != hdr->record_count - 1)
        return edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, 57,
                            "record count %d but lastOffsetDelta %d", hdr->record_count,
                            hdr->last_offset_delta);
    int codec = hdr->attributes & EDP_ATTR_CODEC_MASK;
    if (codec > EDP_CODEC_ZSTD)
        return edp_diag_set(diag, EDP_EUNSUPPORTED_CODEC, hdr->base_offset, 21,
                            "compression codec %d is unknown", codec);
    if (codec == EDP_CODEC_NONE)
        return check_records(buf + EDP_BATCH_HEADER_BYTES, buf + total, hdr, strict, diag, buf);
    return EDP_OK;
}

int edp_batches_scan(const uint8_t *buf, size_t len, int strict, int check_crc,
                     int require_ascending, edp_scan_t *scan, edp_diag_t *diag)
{
    memset(scan, 0, sizeof *scan);
    scan->first_offset = scan->last_offset = -1;
    scan->max_timestamp_ms = scan->offset_of_max_timestamp = -1;
    size_t pos = 0;
    while (pos < len) {
        edp_batch_hdr_t hdr;
        int rc = check_crc ? edp_batch_validate(buf + pos, len - pos, strict, &hdr, diag)
                           : edp_batch_header(buf + pos, len - pos, &hdr, diag);
        if (rc == EDP_OK && require_ascending && hdr.base_offset <= scan->last_offset)
            rc = edp_diag_set(diag, EDP_ECORRUPT, hdr.base_offset, 0,
                              "batch base offset %ld is not above the previous last offset %ld",
                              (long)hdr.base_offset, (long)scan->last_offset);
        if (rc != EDP_OK) {
            if (diag)
                diag->pos = diag->pos < 0 ? (int64_t)pos : (int64_t)pos + diag->pos;
            return rc;
        }
        int32_t size = hdr.batch_length + EDP_BATCH_LOG_OVERHEAD;
        if (scan->first_offset < 0)
            scan->first_offset = hdr.base_offset;
        scan->last_offset = hdr.base_offset + hdr.last_offset_delta;
        scan->batches++;
        scan->records += hdr.record_count;
        if (hdr.max_timestamp_ms > scan->max_timestamp_ms) {
            scan->max_timestamp_ms = hdr.max_timestamp_ms;
            scan->offset_of_max_timestamp = scan->last_offset;
        }
        if (size > scan->max_batch_bytes)
            scan->max_batch_bytes = size;
        scan->codecs |= 1 << (hdr.attributes & EDP_ATTR_CODEC_MASK);
        pos += (size_t)size;
        scan->valid_bytes = (int64_t)pos;
    }
    return EDP_OK;
}

int64_t edp_batches_assign_offsets(uint8_t *buf, size_t len, int64_t next_offset,
                                   int32_t leader_epoch)
{
    size_t pos = 0;
    while (pos + EDP_BATCH_HEADER_BYTES <= len) {
        uint8_t *b = buf + pos;
        int32_t last_delta = (int32_t)be32_load(b + 23);
        be64_store(b, (uint64_t)next_offset);
        if (leader_epoch >= 0)
            be32_store(b + 12, (uint32_t)leader_epoch);
        next_offset += (int64_t)last_delta + 1;
        pos += (size_t)(int32_t)be32_load(b + 8) + EDP_BATCH_LOG_OVERHEAD;
    }
    return next_offset;
}

void edp_batches_set_log_append_time(uint8_t *buf, size_t len, int64_t now_ms)
{
    size_t pos = 0;
    while (pos + EDP_BATCH_HEADER_BYTES <= len) {
        uint8_t *b = buf + pos;
        size_t total = (size_t)(int32_t)be32_load(b + 8) + EDP_BATCH_LOG_OVERHEAD;
        be16_store(b + 21, (uint16_t)(be16_load(b + 21) | EDP_ATTR_LOG_APPEND_TIME));
        be64_store(b + 35, (uint64_t)now_ms);
        be32_store(b + 17, edp_crc32c(0, b + CRC_START, total - CRC_START));
        pos += total;
    }
}

/* ---- records ------------------------------------------------------------------------- */

int edp_record_next(const uint8_t **pp, const uint8_t *end, edp_record_t *rec)
{
    const uint8_t *p = *pp;
    int32_t length;
    if (varint32(&p, end, &length) != EDP_OK || length < 0 || length > end - p)
        return EDP_ECORRUPT;
    const uint8_t *rend = p + length;
    if (p >= rend)
        return EDP_ECORRUPT;
    rec->attributes = (int8_t)*p++;
    if (edp_varint_decode(&p, rend, &rec->timestamp_delta) != EDP_OK ||
        varint32(&p, rend, &rec->offset_delta) != EDP_OK ||
        varint32(&p, rend, &rec->key_len) != EDP_OK)
        return EDP_ECORRUPT;
    if (rec->key_len < -1 || rec->key_len > rend - p)
        return EDP_ECORRUPT;
    rec->key = rec->key_len < 0 ? NULL : p;
    p += rec->key_len < 0 ? 0 : rec->key_len;
    if (varint32(&p, rend, &rec->value_len) != EDP_OK || rec->value_len < -1 ||
        rec->value_len > rend - p)
        return EDP_ECORRUPT;
    rec->value = rec->value_len < 0 ? NULL : p;
    p += rec->value_len < 0 ? 0 : rec->value_len;
    if (varint32(&p, rend, &rec->header_count) != EDP_OK || rec->header_count < 0 ||
        rec->header_count > rend - p)
        return EDP_ECORRUPT;
    rec->headers = p;
    for (int32_t i = 0; i < rec->header_count; i++) {
        edp_header_t h;
        if (edp_header_next(&p, rend, &h) != EDP_OK)
            return EDP_ECORRUPT;
    }
    if (p != rend)
        return EDP_ECORRUPT;
    rec->end = rend;
    *pp = rend;
    return EDP_OK;
}

int edp_header_next(const uint8_t **pp, const uint8_t *end, edp_header_t *h)
{
    const uint8_t *p = *pp;
    if (varint32(&p, end, &h->key_len) != EDP_OK || h->key_len < 0 || h->key_len > end - p)
        return EDP_ECORRUPT;
    h->key = p;
    p += h->key_len;
    if (varint32(&p, end, &h->value_len) != EDP_OK || h->value_len < -1 ||
        h->value_len > end - p)
        return EDP_ECORRUPT;
    h->value = h->value_len < 0 ? NULL : p;
    p += h->value_len < 0 ? 0 : h->value_len;
    *pp = p;
    return EDP_OK;
}

static inline size_t body_size(int64_t ts_delta, int32_t off_delta, int32_t key_len,
                               int32_t value_len, size_t headers_len, int32_t header_count)
{
    return 1 + uvarint_size(zigzag(ts_delta)) + uvarint_size(zigzag(off_delta)) +
           uvarint_size(zigzag(key_len)) + (key_len > 0 ? (size_t)key_len : 0) +
           uvarint_size(zigzag(value_len)) + (value_len > 0 ? (size_t)value_len : 0) +
           uvarint_size(zigzag(header_count)) + headers_len;
}

size_t edp_record_size(int64_t ts_delta, int32_t off_delta, int32_t key_len, int32_t value_len,
                       size_t headers_len, int32_t header_count)
{
    size_t body = body_size(ts_delta, off_delta, key_len, value_len, headers_len, header_count);
    return uvarint_size(zigzag((int64_t)body)) + body;
}

size_t edp_record_encode(uint8_t *dst, int64_t ts_delta, int32_t off_delta, const uint8_t *key,
                         int32_t key_len, const uint8_t *value, int32_t value_len,
                         const uint8_t *headers, size_t headers_len, int32_t header_count)
{
    size_t body = body_size(ts_delta, off_delta, key_len, value_len, headers_len, header_count);
    uint8_t *p = dst;
    p += uvarint_put(p, zigzag((int64_t)body));
    *p++ = 0; /* record attributes: unused */
    p += uvarint_put(p, zigzag(ts_delta));
    p += uvarint_put(p, zigzag(off_delta));
    p += uvarint_put(p, zigzag(key_len));
    if (key_len > 0) {
        memcpy(p, key, (size_t)key_len);
        p += key_len;
    }
    p += uvarint_put(p, zigzag(value_len));
    if (value_len > 0) {
        memcpy(p, value, (size_t)value_len);
        p += value_len;
    }
    p += uvarint_put(p, zigzag(header_count));
    if (headers_len) {
        memcpy(p, headers, headers_len);
        p += headers_len;
    }
    return (size_t)(p - dst);
}

size_t edp_header_encode(uint8_t *dst, size_t cap, const uint8_t *key, int32_t key_len,
                         const uint8_t *value, int32_t value_len)
{
    size_t need = edp_varint_size(key_len) + (size_t)key_len + edp_varint_size(value_len) +
                  (value_len > 0 ? (size_t)value_len : 0);
    if (need > cap)
        return 0;
    uint8_t *p = dst;
    p += edp_varint_encode(p, key_len);
    memcpy(p, key, (size_t)key_len);
    p += key_len;
    p += edp_varint_encode(p, value_len);
    if (value_len > 0) {
        memcpy(p, value, (size_t)value_len);
        p += value_len;
    }
    return need;
}

size_t edp_batch_finish(uint8_t *buf, size_t records_len, const edp_batch_hdr_t *h)
{
    size_t total = EDP_BATCH_HEADER_BYTES + records_len;
    be64_store(buf, (uint64_t)h->base_offset);
    be32_store(buf + 8, (uint32_t)(total - EDP_BATCH_LOG_OVERHEAD));
    be32_store(buf + 12, (uint32_t)h->leader_epoch);
    buf[16] = EDP_BATCH_MAGIC;
    be16_store(buf + 21, (uint16_t)h->attributes);
    be32_store(buf + 23, (uint32_t)h->last_offset_delta);
    be64_store(buf + 27, (uint64_t)h->base_timestamp_ms);
    be64_store(buf + 35, (uint64_t)h->max_timestamp_ms);
    be64_store(buf + 43, (uint64_t)h->producer_id);
    be16_store(buf + 51, (uint16_t)h->producer_epoch);
    be32_store(buf + 53, (uint32_t)h->base_sequence);
    be32_store(buf + 57, (uint32_t)h->record_count);
    be32_store(buf + 17, edp_crc32c(0, buf + CRC_START, total - CRC_START));
    return total;
}

int edp_records_columns(const uint8_t *p, const uint8_t *end, const edp_batch_hdr_t *h,
                        int64_t min_offset, edp_columns_t *c)
{
    int log_append = h->attributes & EDP_ATTR_LOG_APPEND_TIME;
    for (int32_t i = 0; i < h->record_count; i++) {
        int64_t length, ts_delta, off_delta, key_len, value_len;
        const uint8_t *q = p;
        if (walk_varint(&q, end, &length) != EDP_OK || length < 6 || length > end - q)
            return -1;
        const uint8_t *rend = q + length;
        q++; /* attributes */
        if (walk_varint(&q, rend, &ts_delta) != EDP_OK ||
            walk_varint(&q, rend, &off_delta) != EDP_OK ||
            walk_varint(&q, rend, &key_len) != EDP_OK || key_len < -1 || key_len > rend - q)
            return -1;
        q += key_len > 0 ? key_len : 0;
        if (walk_varint(&q, rend, &value_len) != EDP_OK || value_len < -1 ||
            value_len > rend - q)
            return -1;
        p = rend;
        int64_t offset = h->base_offset + off_delta;
        if (offset < min_offset)
            continue;
        if (c->rows >= c->cap)
            return 2;
        if (value_len > 0 && c->value_bytes + (size_t)value_len > c->value_cap)
            return 1;
        c->offsets[c->rows] = offset;
        c->timestamps_ms[c->rows] =
            log_append ? h->max_timestamp_ms : h->base_timestamp_ms + ts_delta;
        c->value_lengths[c->rows] = (int32_t)value_len;
        if (value_len > 0) {
            memcpy(c->values + c->value_bytes, q, (size_t)value_len);
            c->value_bytes += (size_t)value_len;
        }
        c->rows++;
    }
    return p == end ? 0 : -1;
}
