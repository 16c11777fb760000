/*
 * The streaming records walker: every field of every record checked, chunk by chunk.
 * The record layout and the rules are in include/edplog/records.h.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "common.h"
#include "edplog/records.h"

/* ---- varints: the short cases inline, the rest through edp_varint_decode ------------- */

/* A varint read: where the next field starts (NULL when the varint is bad or runs past the
 * end) and its value. Returned by value, in two registers: a reader that wrote through
 * pointers kept the cursor and the value on the stack, and every field of every record waits
 * on the one before it. With that and the one-byte case tried first even at the end of a
 * record, the walk takes about 20 % less time (bench/bench_validate.py, none-100-walk, A/B
 * runs interleaved). */
typedef struct varint_read {
    const uint8_t *next;
    int64_t value;
} varint_read_t;

__attribute__((noinline)) static varint_read_t varint_slow(const uint8_t *q,
                                                           const uint8_t *end, int max_len)
{
    varint_read_t r = {NULL, 0};
    const uint8_t *p = q;
    /* An int32 varint is at most 5 bytes: Kafka's readers refuse a longer one even when it
     * decodes to a small value, so the walker must too. */
    if (edp_varint_decode(&p, end, &r.value) == EDP_OK && p - q <= max_len &&
        (max_len > 5 || (r.value >= INT32_MIN && r.value <= INT32_MAX)))
        r.next = p;
    return r;
}

/* Most fields of most records are one byte (null or short keys, header counts, small
 * deltas), two (lengths under 8 KiB, offset deltas under 8192) or three (offset deltas of
 * the big batches compression favours): those never leave this function. */
static inline varint_read_t get_varint(const uint8_t *q, const uint8_t *end)
{
    uint32_t u;
    size_t n;
    if (EDP_LIKELY(q < end) && !(q[0] & 0x80)) {
        u = q[0];
        n = 1;
    } else if (EDP_LIKELY(end - q >= 2) && !(q[1] & 0x80)) {
        u = (uint32_t)(q[0] & 0x7f) | (uint32_t)q[1] << 7;
        n = 2;
    } else if (end - q >= 3 && !(q[2] & 0x80)) {
        u = (uint32_t)(q[0] & 0x7f) | (uint32_t)(q[1] & 0x7f) << 7 | (uint32_t)q[2] << 14;
        n = 3;
    } else {
        return varint_slow(q, end, 5);
    }
    return (varint_read_t){q + n, (int32_t)(u >> 1) ^ -(int32_t)(u & 1)};
}

static inline varint_read_t get_varlong(const uint8_t *q, const uint8_t *end)
{
    uint64_t u;
    size_t n;
    if (EDP_LIKELY(q < end) && !(q[0] & 0x80)) {
        u = q[0];
        n = 1;
    } else if (end - q >= 2 && !(q[1] & 0x80)) {
        u = (uint64_t)(q[0] & 0x7f) | (uint64_t)q[1] << 7;
        n = 2;
    } else {
        return varint_slow(q, end, 10);
    }
    return (varint_read_t){q + n, (int64_t)(u >> 1) ^ -(int64_t)(u & 1)};
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
    varint_read_t v;
    q++; /* attributes: present, since the length is at least 6 */
    v = get_varlong(q, rend);
    if (EDP_UNLIKELY(!v.next))
        return bad_record(w, diag, pos, "timestampDelta runs past the record");
    r->timestamp_delta = v.value;
    v = get_varint(v.next, rend);
    if (EDP_UNLIKELY(!v.next))
        return bad_record(w, diag, pos, "offsetDelta is malformed");
    r->offset_delta = (int32_t)v.value;
    if (w->strict) {
        if (EDP_UNLIKELY(v.value != w->index))
            return bad_record(w, diag, pos, "offsetDelta %d, expected %d", r->offset_delta,
                              w->index);
    } else if (EDP_UNLIKELY(v.value <= w->prev_delta || v.value > w->last_offset_delta)) {
        return bad_record(w, diag, pos,
                          "offsetDelta %d is not above the previous %d or is past "
                          "lastOffsetDelta %d",
                          r->offset_delta, w->prev_delta, w->last_offset_delta);
    }
    v = get_varint(v.next, rend);
    if (EDP_UNLIKELY(!v.next || v.value < -1 || v.value > rend - v.next))
        return bad_record(w, diag, pos, "bad keyLength");
    r->key = v.value < 0 ? NULL : v.next;
    r->key_len = (int32_t)v.value;
    q = v.next + (v.value > 0 ? v.value : 0);
    v = get_varint(q, rend);
    if (EDP_UNLIKELY(!v.next || v.value < -1 || v.value > rend - v.next))
        return bad_record(w, diag, pos, "bad valueLength");
    r->value_len = (int32_t)v.value;
    q = v.next + (v.value > 0 ? v.value : 0);
    v = get_varint(q, rend);
    if (EDP_UNLIKELY(!v.next || v.value < 0 || v.value > rend - v.next))
        return bad_record(w, diag, pos, "bad headerCount");
    int64_t count = v.value;
    q = v.next;
    for (int64_t i = 0; i < count; i++) {
        v = get_varint(q, rend);
        if (!v.next || v.value < 0 || v.value > rend - v.next)
            return bad_record(w, diag, pos, "header %d has a bad key length", (int)i);
        v = get_varint(v.next + v.value, rend);
        if (!v.next || v.value < -1 || v.value > rend - v.next)
            return bad_record(w, diag, pos, "header %d has a bad value length", (int)i);
        q = v.next + (v.value > 0 ? v.value : 0);
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
        int64_t pos = w->consumed + (p - buf);
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
        varint_read_t v = get_varint(p, end);
        if (EDP_UNLIKELY(!v.next)) {
            if (!varint_incomplete(p, end))
                rc = bad_record(w, diag, pos, "its length is malformed");
            break; /* else: a partial record whose length is still to come */
        }
        const uint8_t *q = v.next;
        int32_t length = (int32_t)v.value;
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

int edp_records_find_timestamp(void *ctx, const edp_record_ref_t *rec)
{
    edp_timestamp_find_t *f = ctx;
    if (f->offset_delta >= 0)
        return EDP_OK;
    if (f->log_append_time || f->base_timestamp_ms + rec->timestamp_delta == f->target_ms)
        f->offset_delta = rec->offset_delta;
    return EDP_OK;
}
