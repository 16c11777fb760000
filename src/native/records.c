/*
 * The streaming records walker: every field of every record checked, chunk by chunk.
 * The record layout and the rules are in include/edplog/records.h.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "common.h"
#include "edplog/records.h"

/* ---- varints: the one- and two-byte cases inline, the rest through edp_varint_decode ---- */

static int varint32_slow(const uint8_t **p, const uint8_t *end, int32_t *out)
{
    const uint8_t *start = *p;
    int64_t v;
    /* An int32 varint is at most 5 bytes: Kafka's readers refuse a longer one even when it
     * decodes to a small value, so the walker must too. */
    if (edp_varint_decode(p, end, &v) != EDP_OK || *p - start > 5 || v < INT32_MIN ||
        v > INT32_MAX) {
        *p = start;
        return EDP_ECORRUPT;
    }
    *out = (int32_t)v;
    return EDP_OK;
}

/* Most fields of most records are one byte (null or short keys, header counts, small
 * deltas), two (lengths under 8 KiB, offset deltas under 8192) or three (offset deltas of
 * the big batches compression favours): those never leave this function. */
static inline int get_varint(const uint8_t **p, const uint8_t *end, int32_t *out)
{
    const uint8_t *q = *p;
    if (EDP_LIKELY(end - q >= 3)) {
        uint32_t u = q[0];
        size_t n = 1;
        if (u & 0x80) {
            u = (u & 0x7f) | (uint32_t)(q[1] & 0x7f) << 7;
            n = 2;
            if (q[1] & 0x80) {
                if (q[2] & 0x80)
                    return varint32_slow(p, end, out);
                u |= (uint32_t)q[2] << 14;
                n = 3;
            }
        }
        *p = q + n;
        *out = (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
        return EDP_OK;
    }
    return varint32_slow(p, end, out);
}

static inline int get_varlong(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    const uint8_t *q = *p;
    if (EDP_LIKELY(end - q >= 2) && !(q[1] & 0x80 & q[0])) {
        uint64_t u = q[0];
        size_t n = 1;
        if (u & 0x80) {
            u = (u & 0x7f) | (uint64_t)q[1] << 7;
            n = 2;
        }
        *p = q + n;
        *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
        return EDP_OK;
    }
    return edp_varint_decode(p, end, out);
}

/* ---- diagnostics ----------------------------------------------------------------------- */

/* Fill diag with "record i of n (byte pos of the records): <what>"; returns EDP_ECORRUPT. */
__attribute__((format(printf, 4, 5))) static int bad_record(const edp_walker_t *w,
                                                             edp_diag_t *diag, int64_t pos,
                                                             const char *fmt, ...)
{
    char what[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return edp_diag_set(diag, EDP_ECORRUPT, w->base_offset, pos,
                        "record %d of %d (byte %lld of the records): %s", w->index,
                        w->record_count, (long long)pos, what);
}

/* ---- the walk -------------------------------------------------------------------------- */

int edp_walker_init(edp_walker_t *w, const edp_batch_hdr_t *hdr, int strict,
                    int64_t section_bytes, int64_t max_bytes, edp_record_visit_fn visit,
                    void *ctx, edp_diag_t *diag)
{
    int rc = EDP_OK;
    w->base_offset = hdr->base_offset;
    w->record_count = hdr->record_count;
    w->last_offset_delta = hdr->last_offset_delta;
    w->strict = strict;
    w->section_bytes = section_bytes;
    w->max_bytes = max_bytes;
    w->index = 0;
    w->prev_delta = -1;
    w->consumed = 0;
    w->need = 0;
    w->visit = visit;
    w->ctx = ctx;
    if (hdr->record_count < 0 || hdr->last_offset_delta < 0 ||
        (int64_t)hdr->last_offset_delta < (int64_t)hdr->record_count - 1)
        rc = edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, 57,
                          "record count %d does not fit lastOffsetDelta %d", hdr->record_count,
                          hdr->last_offset_delta);
    else if (strict && hdr->last_offset_delta != hdr->record_count - 1)
        rc = edp_diag_set(diag, EDP_ECORRUPT, hdr->base_offset, 57,
                          "record count %d but lastOffsetDelta %d", hdr->record_count,
                          hdr->last_offset_delta);
    if (rc != EDP_OK)
        w->record_count = -1; /* feed refuses every byte of a walk that failed to start */
    return rc;
}

/* Check every field of the record whose body (after its length varint) is [q, rend). */
static inline int check_body(const edp_walker_t *w, const uint8_t *q, const uint8_t *rend,
                             int64_t pos, edp_record_ref_t *r, edp_diag_t *diag)
{
    int32_t n, count;
    q++; /* attributes: present, since the length is at least 6 */
    if (EDP_UNLIKELY(get_varlong(&q, rend, &r->timestamp_delta) != EDP_OK))
        return bad_record(w, diag, pos, "timestampDelta runs past the record");
    if (EDP_UNLIKELY(get_varint(&q, rend, &r->offset_delta) != EDP_OK))
        return bad_record(w, diag, pos, "offsetDelta is malformed");
    if (w->strict) {
        if (EDP_UNLIKELY(r->offset_delta != w->index))
            return bad_record(w, diag, pos, "offsetDelta %d, expected %d", r->offset_delta,
                              w->index);
    } else if (EDP_UNLIKELY(r->offset_delta <= w->prev_delta ||
                            r->offset_delta > w->last_offset_delta)) {
        return bad_record(w, diag, pos,
                          "offsetDelta %d is not above the previous %d or is past "
                          "lastOffsetDelta %d",
                          r->offset_delta, w->prev_delta, w->last_offset_delta);
    }
    if (EDP_UNLIKELY(get_varint(&q, rend, &n) != EDP_OK || n < -1 || n > rend - q))
        return bad_record(w, diag, pos, "bad keyLength");
    r->key = n < 0 ? NULL : q;
    r->key_len = n;
    q += n > 0 ? n : 0;
    if (EDP_UNLIKELY(get_varint(&q, rend, &n) != EDP_OK || n < -1 || n > rend - q))
        return bad_record(w, diag, pos, "bad valueLength");
    r->value_len = n;
    q += n > 0 ? n : 0;
    if (EDP_UNLIKELY(get_varint(&q, rend, &count) != EDP_OK || count < 0 || count > rend - q))
        return bad_record(w, diag, pos, "bad headerCount");
    for (int32_t i = 0; i < count; i++) {
        if (get_varint(&q, rend, &n) != EDP_OK || n < 0 || n > rend - q)
            return bad_record(w, diag, pos, "header %d has a bad key length", i);
        q += n;
        if (get_varint(&q, rend, &n) != EDP_OK || n < -1 || n > rend - q)
            return bad_record(w, diag, pos, "header %d has a bad value length", i);
        q += n > 0 ? n : 0;
    }
    if (EDP_UNLIKELY(q != rend))
        return bad_record(w, diag, pos, "its fields end %lld bytes before its length does",
                          (long long)(rend - q));
    return EDP_OK;
}

/* True when [p, end) can only be the start of a varint: too short, every byte continued. */
static int varint_incomplete(const uint8_t *p, const uint8_t *end)
{
    if (end - p >= 5)
        return 0;
    for (; p < end; p++)
        if (!(*p & 0x80))
            return 0;
    return 1;
}

int edp_walker_feed(edp_walker_t *w, const uint8_t *buf, size_t len, size_t *used,
                    edp_diag_t *diag)
{
    const uint8_t *p = buf;
    const uint8_t *end = buf + len;
    int rc = EDP_OK;
    w->need = 0;
    while (p < end) {
        const uint8_t *q = p;
        int64_t pos = w->consumed + (p - buf);
        int32_t length;
        if (EDP_UNLIKELY(w->index >= w->record_count)) {
            rc = w->record_count < 0
                     ? edp_diag_set(diag, EDP_ECORRUPT, w->base_offset, pos,
                                    "the batch header's record count is impossible")
                     : edp_diag_set(diag, EDP_ECORRUPT, w->base_offset, pos,
                                    "bytes follow the last of the batch's %d records "
                                    "(byte %lld of the records)",
                                    w->record_count, (long long)pos);
            break;
        }
        if (EDP_UNLIKELY(get_varint(&q, end, &length) != EDP_OK)) {
            if (!varint_incomplete(p, end))
                rc = bad_record(w, diag, pos, "its length is malformed");
            break; /* else: a partial record whose length is still to come */
        }
        if (EDP_UNLIKELY(length < 6)) {
            rc = bad_record(w, diag, pos, "length %d is below the minimum 6", length);
            break;
        }
        int64_t total = (int64_t)(q - p) + length;
        if (EDP_UNLIKELY(pos + total > w->max_bytes)) {
            rc = w->section_bytes >= 0
                     ? bad_record(w, diag, pos,
                                  "length %d runs %lld bytes past the end of the batch", length,
                                  (long long)(pos + total - w->section_bytes))
                     : bad_record(w, diag, pos,
                                  "length %d takes the records past the %lld bytes allowed "
                                  "uncompressed",
                                  length, (long long)w->max_bytes);
            break;
        }
        if (total > end - p) {
            w->need = total;
            break;
        }
        edp_record_ref_t r;
        rc = check_body(w, q, q + length, pos, &r, diag);
        if (EDP_UNLIKELY(rc != EDP_OK))
            break;
        if (w->visit) {
            r.raw = p;
            r.raw_len = (size_t)total;
            r.index = w->index;
            rc = w->visit(w->ctx, &r);
            if (rc != EDP_OK)
                break;
        }
        w->prev_delta = r.offset_delta;
        w->index++;
        p += total;
    }
    w->consumed += p - buf;
    *used = (size_t)(p - buf);
    return rc;
}

int edp_walker_end(edp_walker_t *w, size_t held_back, edp_diag_t *diag)
{
    int rc = EDP_OK;
    if (held_back && w->need)
        rc = bad_record(w, diag, w->consumed,
                        "it takes %lld bytes but the records end %zu bytes into it",
                        (long long)w->need, held_back);
    else if (held_back)
        rc = bad_record(w, diag, w->consumed, "the records end inside its length");
    else if (w->index != w->record_count)
        rc = edp_diag_set(diag, EDP_ECORRUPT, w->base_offset, w->consumed,
                          "the records section holds %d records, the header says %d",
                          w->index, w->record_count);
    return rc;
}

int edp_records_check(const uint8_t *p, const uint8_t *end, const edp_batch_hdr_t *hdr,
                      int strict, edp_record_visit_fn visit, void *ctx, edp_diag_t *diag)
{
    edp_walker_t w;
    size_t len = (size_t)(end - p);
    size_t used = 0;
    int rc = edp_walker_init(&w, hdr, strict, (int64_t)len, (int64_t)len, visit, ctx, diag);
    if (rc == EDP_OK)
        rc = edp_walker_feed(&w, p, len, &used, diag);
    if (rc == EDP_OK)
        rc = edp_walker_end(&w, len - used, diag);
    return rc;
}
