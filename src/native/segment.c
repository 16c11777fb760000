/*
 * One .log segment with its indexes: append, find, slice, recover, truncate, flush.
 * Layout of the batches: batch.h. Layout of the indexes: index.h. Contracts: segment.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "edplog/segment.h"

#define HDR EDP_BATCH_HEADER_BYTES

/* Every field a reader loads (through the accessors in segment.h) is stored atomically with
 * release ordering, after the bytes and index entries it covers; the writer itself reads them
 * plainly, as no other thread stores them. */
static inline void store_i64(int64_t *field, int64_t v)
{
    __atomic_store_n(field, v, __ATOMIC_RELEASE);
}

static int scan_file(edp_segment_t *seg, int validate, int64_t *end, edp_recovery_t *out,
                     edp_diag_t *diag);

static inline void publish(edp_segment_t *seg, int64_t size, int64_t next_offset)
{
    store_i64(&seg->next_offset, next_offset);
    store_i64(&seg->size, size);
}

/* The writer's half of the seqlock read by edp_segment_max_timestamp. */
static void set_max_timestamp(edp_segment_t *seg, int64_t timestamp_ms, int64_t offset)
{
    uint32_t seq = seg->max_timestamp_seq;
    __atomic_store_n(&seg->max_timestamp_seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&seg->max_timestamp_ms, timestamp_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&seg->offset_of_max_timestamp, offset, __ATOMIC_RELAXED);
    __atomic_store_n(&seg->max_timestamp_seq, seq + 2, __ATOMIC_RELEASE);
}

int edp_segment_pread(const edp_segment_t *seg, uint8_t *dst, int64_t pos, int64_t len)
{
    while (len > 0) {
        ssize_t n = pread(seg->fd, dst, (size_t)len, (off_t)pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EDP_ETRUNCATED;
        dst += n;
        pos += n;
        len -= n;
    }
    return EDP_OK;
}

int edp_segment_open(edp_segment_t *seg, const char *log_path, const char *index_path,
                     const char *timeindex_path, int64_t base_offset, size_t index_max_bytes,
                     int32_t index_interval_bytes, int writable)
{
    int rc;
    struct stat st;
    memset(seg, 0, sizeof *seg);
    seg->fd = -1;
    seg->oidx.fd = seg->tidx.fd = -1;
    seg->writable = writable;
    seg->base_offset = base_offset;
    seg->next_offset = base_offset;
    seg->max_timestamp_ms = -1;
    seg->offset_of_max_timestamp = -1;
    seg->index_interval_bytes = index_interval_bytes;

    seg->fd = open(log_path, (writable ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0644);
    if (seg->fd < 0)
        return errno;
    if (fstat(seg->fd, &st) != 0) {
        rc = errno;
        goto fail;
    }
    seg->size = st.st_size;
    /* Index entries hold 8 or 12 bytes; keep the two capacities in step (Kafka sizes the time
     * index from the same segment.index.bytes). */
    rc = edp_index_open(&seg->oidx, index_path, base_offset, EDP_OFFSET_ENTRY_BYTES,
                        index_max_bytes, writable);
    if (rc != EDP_OK)
        goto fail;
    rc = edp_index_open(&seg->tidx, timeindex_path, base_offset, EDP_TIME_ENTRY_BYTES,
                        index_max_bytes / EDP_OFFSET_ENTRY_BYTES * EDP_TIME_ENTRY_BYTES,
                        writable);
    if (rc != EDP_OK)
        goto fail;
    return EDP_OK;

fail:
    edp_segment_close(seg);
    return rc;
}

void edp_segment_close(edp_segment_t *seg)
{
    if (seg->writable && !edp_segment_poisoned(seg) && seg->oidx.fd >= 0) {
        edp_index_trim(&seg->oidx);
        edp_index_trim(&seg->tidx);
    }
    edp_index_close(&seg->oidx);
    edp_index_close(&seg->tidx);
    if (seg->fd >= 0)
        close(seg->fd);
    seg->fd = -1;
}

int edp_segment_seal(edp_segment_t *seg)
{
    int rc = edp_index_trim(&seg->oidx);
    if (rc == EDP_OK)
        rc = edp_index_trim(&seg->tidx);
    return rc;
}

/* Add index entries for one batch that starts at pos; called for every appended batch. */
static int index_batch(edp_segment_t *seg, int64_t pos, int64_t last_offset, int64_t max_ts,
                       int64_t batch_bytes)
{
    int rc = EDP_OK;
    if (max_ts > seg->max_timestamp_ms)
        set_max_timestamp(seg, max_ts, last_offset);
    if (seg->bytes_since_index > seg->index_interval_bytes) {
        rc = edp_offset_index_append(&seg->oidx, last_offset, pos);
        if (rc == EDP_OK)
            rc = edp_time_index_maybe_append(&seg->tidx, seg->max_timestamp_ms,
                                             seg->offset_of_max_timestamp);
        seg->bytes_since_index = 0;
    }
    seg->bytes_since_index += batch_bytes;
    return rc;
}

int edp_segment_append(edp_segment_t *seg, const uint8_t *buf, size_t len)
{
    if (seg->fd < 0)
        return EDP_ECLOSED;
    if (edp_segment_poisoned(seg))
        return EDP_EPOISONED;
    int64_t start = seg->size, next = seg->next_offset;
    /* Check that every batch fits the indexes' 32-bit relative offsets before writing. */
    size_t pos = 0;
    int64_t last_offset = next - 1;
    while (pos + HDR <= len) {
        int32_t blen = (int32_t)be32_load(buf + pos + 8);
        last_offset = (int64_t)be64_load(buf + pos) + (int32_t)be32_load(buf + pos + 23);
        pos += (size_t)blen + EDP_BATCH_LOG_OVERHEAD;
    }
    if (last_offset - seg->base_offset > (int64_t)INT32_MAX ||
        start + (int64_t)len > (int64_t)INT32_MAX)
        return EDP_EOFFSET_OVERFLOW;

    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(seg->fd, buf + done, len - done, (off_t)(start + (int64_t)done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            edp_segment_poison(seg);
            /* Cut back any partial batch so readers of this file never see it. */
            if (ftruncate(seg->fd, (off_t)start) != 0) { /* the file stays poisoned */ }
            return err;
        }
        done += (size_t)n;
    }
    pos = 0;
    while (pos + HDR <= len) {
        int32_t blen = (int32_t)be32_load(buf + pos + 8);
        int64_t base = (int64_t)be64_load(buf + pos);
        int64_t last = base + (int32_t)be32_load(buf + pos + 23);
        int64_t max_ts = (int64_t)be64_load(buf + pos + 35);
        int64_t total = (int64_t)blen + EDP_BATCH_LOG_OVERHEAD;
        /* An index full of entries only costs lookups a longer scan; roll handles it next. */
        int rc = index_batch(seg, start + (int64_t)pos, last, max_ts, total);
        if (rc != EDP_OK && rc != EDP_EINDEX_FULL) {
            edp_segment_poison(seg);
            return rc;
        }
        pos += (size_t)total;
        next = last + 1;
    }
    publish(seg, start + (int64_t)len, next);
    /* The batches were validated before they were appended (or come from a verified source):
     * a verified prefix that reached the old end reaches the new one. */
    if (edp_segment_verified(seg) == start)
        store_i64(&seg->verified_pos, start + (int64_t)len);
    return EDP_OK;
}

int edp_segment_flush(edp_segment_t *seg)
{
    if (seg->fd < 0)
        return EDP_ECLOSED;
    if (edp_segment_poisoned(seg))
        return EDP_EPOISONED;
    if (fdatasync(seg->fd) != 0) {
        edp_segment_poison(seg);
        return errno;
    }
    return EDP_OK;
}

/* Read the header of the batch at pos (no CRC). */
static int read_header(const edp_segment_t *seg, int64_t pos, int64_t size, edp_batch_hdr_t *h,
                       edp_diag_t *diag)
{
    uint8_t raw[HDR];
    if (size - pos < HDR)
        return edp_diag_set(diag, EDP_ETRUNCATED, -1, pos, "partial batch header at %ld",
                            (long)pos);
    int rc = edp_segment_pread(seg, raw, pos, HDR);
    if (rc != EDP_OK)
        return rc;
    rc = edp_batch_header(raw, HDR, h, NULL);
    if (rc == EDP_ETRUNCATED)
        rc = EDP_OK; /* only the header was read; the length is checked below */
    if (rc != EDP_OK)
        return edp_diag_set(diag, rc, h->base_offset, pos, "bad batch header at %ld", (long)pos);
    if (pos + h->batch_length + EDP_BATCH_LOG_OVERHEAD > size)
        return edp_diag_set(diag, EDP_ETRUNCATED, h->base_offset, pos,
                            "batch at %ld runs past the end of the segment", (long)pos);
    return EDP_OK;
}

int edp_segment_find(edp_segment_t *seg, int64_t offset, int64_t *pos_out,
                     edp_batch_hdr_t *hdr_out)
{
    int64_t size = edp_segment_size(seg);
    int64_t ioff, pos;
    edp_offset_index_lookup(&seg->oidx, offset, &ioff, &pos);
    if (pos > size)
        pos = 0; /* never trust an index entry past what is published */
    while (pos < size) {
        edp_batch_hdr_t h;
        int rc = read_header(seg, pos, size, &h, NULL);
        if (rc != EDP_OK)
            return rc;
        if (h.base_offset + h.last_offset_delta >= offset) {
            if (hdr_out)
                *hdr_out = h;
            break;
        }
        pos += h.batch_length + EDP_BATCH_LOG_OVERHEAD;
    }
    *pos_out = pos < size ? pos : size;
    return EDP_OK;
}

int edp_segment_slice(edp_segment_t *seg, int64_t offset, int64_t max_bytes, int64_t max_offset,
                      int64_t *pos_out, int64_t *len_out)
{
    int64_t size = edp_segment_size(seg);
    int64_t start;
    *len_out = 0;
    int rc = edp_segment_find(seg, offset, &start, NULL);
    *pos_out = start;
    if (rc != EDP_OK || start >= size)
        return rc;
    int64_t end = start;
    while (end < size) {
        edp_batch_hdr_t h;
        rc = read_header(seg, end, size, &h, NULL);
        if (rc != EDP_OK)
            return rc;
        int64_t total = h.batch_length + EDP_BATCH_LOG_OVERHEAD;
        if (max_offset >= 0 && h.base_offset >= max_offset)
            break;
        if (end > start && end + total - start > max_bytes)
            break;
        end += total;
        if (end - start >= max_bytes)
            break;
    }
    *len_out = end - start;
    return EDP_OK;
}

static inline void raise_verified(edp_segment_t *seg, int64_t pos)
{
    int64_t cur = __atomic_load_n(&seg->verified_pos, __ATOMIC_ACQUIRE);
    while (cur < pos &&
           !__atomic_compare_exchange_n(&seg->verified_pos, &cur, pos, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_ACQUIRE)) {
    }
}

#define VERIFY_CHUNK (1 << 20)

int edp_segment_verify(edp_segment_t *seg, int64_t upto, edp_diag_t *diag)
{
    int rc = EDP_OK;
    int64_t size = edp_segment_size(seg);
    int64_t pos = edp_segment_verified(seg);
    size_t cap = VERIFY_CHUNK;
    uint8_t *buf = NULL;
    if (upto > size)
        upto = size;
    if (pos >= upto)
        return EDP_OK;
    buf = malloc(cap);
    if (!buf)
        return ENOMEM;
    while (pos < upto) {
        int64_t want = size - pos < (int64_t)cap ? size - pos : (int64_t)cap;
        rc = edp_segment_pread(seg, buf, pos, want);
        if (rc != EDP_OK)
            goto out;
        int64_t used = 0;
        while (used < want) {
            edp_batch_hdr_t h;
            rc = edp_batch_validate(buf + used, (size_t)(want - used), 0, &h, diag);
            if (rc == EDP_ETRUNCATED && pos + want < size) {
                rc = EDP_OK; /* the chunk ended, not the file: read on from this batch */
                break;
            }
            if (rc != EDP_OK) {
                if (diag)
                    diag->pos = pos + used + (diag->pos > 0 ? diag->pos : 0);
                goto out;
            }
            used += h.batch_length + EDP_BATCH_LOG_OVERHEAD;
        }
        if (used == 0) {
            /* One batch larger than the buffer: grow the buffer to hold it whole. */
            int64_t total = (int64_t)be32_load(buf + 8) + EDP_BATCH_LOG_OVERHEAD;
            if (want < EDP_BATCH_HEADER_BYTES || total <= want || total > size - pos) {
                rc = edp_diag_set(diag, EDP_ETRUNCATED, -1, pos,
                                  "the batch at %ld runs past the end of the segment", (long)pos);
                goto out;
            }
            uint8_t *bigger = realloc(buf, (size_t)total);
            if (!bigger) {
                rc = ENOMEM;
                goto out;
            }
            buf = bigger;
            cap = (size_t)total;
            continue;
        }
        pos += used;
        raise_verified(seg, pos);
    }
out:
    free(buf);
    return rc;
}

int edp_segment_revive(edp_segment_t *seg, int64_t offset)
{
    if (seg->fd < 0)
        return EDP_ECLOSED;
    int64_t pos;
    int rc = edp_segment_find(seg, offset, &pos, NULL);
    if (rc != EDP_OK)
        return rc;
    if (pos < seg->size && ftruncate(seg->fd, (off_t)pos) != 0)
        return errno;
    if (fdatasync(seg->fd) != 0)
        return errno;
    if (pos < seg->size) {
        store_i64(&seg->size, pos);
        int64_t end;
        rc = scan_file(seg, 0, &end, NULL, NULL);
        if (rc != EDP_OK)
            return rc;
        publish(seg, end, seg->next_offset);
    }
    if (seg->verified_pos > pos)
        store_i64(&seg->verified_pos, pos);
    __atomic_store_n(&seg->poisoned, 0, __ATOMIC_RELEASE);
    return EDP_OK;
}

int edp_segment_find_timestamp(edp_segment_t *seg, int64_t target_ms, int64_t *pos_out,
                               edp_batch_hdr_t *hdr_out)
{
    int64_t size = edp_segment_size(seg);
    int64_t ioff, pos;
    int64_t from = edp_time_index_lookup(&seg->tidx, target_ms);
    edp_offset_index_lookup(&seg->oidx, from, &ioff, &pos);
    if (pos > size)
        pos = 0;
    while (pos < size) {
        edp_batch_hdr_t h;
        int rc = read_header(seg, pos, size, &h, NULL);
        if (rc != EDP_OK)
            return rc;
        if (h.max_timestamp_ms >= target_ms) {
            if (hdr_out)
                *hdr_out = h;
            break;
        }
        pos += h.batch_length + EDP_BATCH_LOG_OVERHEAD;
    }
    *pos_out = pos < size ? pos : size;
    return EDP_OK;
}

/* Walk batches over a read-only mapping of the file from position 0, rebuilding the indexes.
 * validate: check CRC and structure (recovery) or headers only (index rebuild of trusted data).
 * Stops at the first invalid batch; *end receives the end of the valid prefix. */
static int scan_file(edp_segment_t *seg, int validate, int64_t *end, edp_recovery_t *out,
                     edp_diag_t *diag)
{
    int rc = EDP_OK;
    int64_t size = seg->size;
    uint8_t *map = NULL;
    int64_t pos = 0, next = seg->base_offset;
    edp_index_reset(&seg->oidx);
    edp_index_reset(&seg->tidx);
    seg->bytes_since_index = 0;
    set_max_timestamp(seg, -1, -1);
    if (size > 0) {
        map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, seg->fd, 0);
        if (map == MAP_FAILED)
            return errno;
        madvise(map, (size_t)size, MADV_SEQUENTIAL);
    }
    while (pos < size) {
        edp_batch_hdr_t h;
        rc = validate ? edp_batch_validate(map + pos, (size_t)(size - pos), 0, &h, diag)
                      : edp_batch_header(map + pos, (size_t)(size - pos), &h, diag);
        if (rc == EDP_OK && (h.base_offset < next || h.base_offset + h.last_offset_delta -
                                                             seg->base_offset > INT32_MAX))
            rc = edp_diag_set(diag, EDP_ECORRUPT, h.base_offset, 0,
                              "batch base offset %ld does not follow offset %ld",
                              (long)h.base_offset, (long)next - 1);
        if (rc != EDP_OK) {
            if (diag)
                diag->pos = pos;
            break;
        }
        int64_t total = h.batch_length + EDP_BATCH_LOG_OVERHEAD;
        int64_t last = h.base_offset + h.last_offset_delta;
        int irc = index_batch(seg, pos, last, h.max_timestamp_ms, total);
        if (irc != EDP_OK && irc != EDP_EINDEX_FULL) {
            rc = irc;
            break;
        }
        if (out) {
            out->batches++;
            out->records += h.record_count;
        }
        pos += total;
        next = last + 1;
    }
    if (map)
        munmap(map, (size_t)size);
    *end = pos;
    store_i64(&seg->next_offset, next);
    return rc;
}

int edp_segment_recover(edp_segment_t *seg, int64_t must_keep_offset, edp_recovery_t *out,
                        edp_diag_t *diag)
{
    int64_t end;
    memset(out, 0, sizeof *out);
    if (edp_segment_poisoned(seg))
        return EDP_EPOISONED;
    int rc = scan_file(seg, 1, &end, out, diag);
    out->code = rc;
    out->valid_bytes = end;
    out->truncated_bytes = seg->size - end;
    if (rc > 0)
        return rc; /* an I/O error: nothing is cut */
    if (rc != EDP_OK && must_keep_offset >= 0 && seg->next_offset < must_keep_offset)
        return rc; /* flushed data is damaged: refuse to drop it */
    if (end < seg->size) {
        if (!seg->writable)
            return EDP_EINVAL;
        if (ftruncate(seg->fd, (off_t)end) != 0) {
            edp_segment_poison(seg);
            return errno;
        }
    }
    publish(seg, end, seg->next_offset);
    store_i64(&seg->verified_pos, end); /* every batch kept passed the CRC check */
    return EDP_OK;
}

int edp_segment_load(edp_segment_t *seg, edp_diag_t *diag)
{
    int64_t size = seg->size;
    int64_t ioff, pos;
    int rc;
    edp_offset_index_last(&seg->oidx, &ioff, &pos);
    int index_ok = pos < size || (pos == 0 && size == 0);
    /* Walk headers from the last index entry to the end of the file. An index that stops
     * early (deleted, zeroed or cut short after a crash) still chains, but appends would have
     * added an entry once more than index_interval_bytes followed the last one: replaying that
     * rule finds the missing entries, and the index is rebuilt rather than left sparse (a
     * sparse index makes every later lookup scan the segment from its start). */
    int64_t next = seg->base_offset;
    int64_t since_entry = 0;
    int oidx_full = seg->oidx.entries >= seg->oidx.max_entries;
    if (index_ok) {
        int64_t p = pos;
        while (p < size) {
            edp_batch_hdr_t h;
            rc = read_header(seg, p, size, &h, NULL);
            int chained = p == pos ? (pos == 0 || h.base_offset + h.last_offset_delta == ioff)
                                   : h.base_offset >= next;
            if (rc != EDP_OK || !chained ||
                (p != pos && since_entry > seg->index_interval_bytes && !oidx_full)) {
                index_ok = 0;
                break;
            }
            next = h.base_offset + h.last_offset_delta + 1;
            since_entry += h.batch_length + EDP_BATCH_LOG_OVERHEAD;
            p += h.batch_length + EDP_BATCH_LOG_OVERHEAD;
        }
    }
    /* Every offset-index entry is written together with a time-index entry when the time
     * index is empty, so entries in one and none in the other mean the time index was lost. */
    if (seg->oidx.entries > 0 && seg->tidx.entries == 0)
        index_ok = 0;
    if (index_ok && edp_index_sanity(&seg->oidx, size, next) == EDP_OK &&
        edp_index_sanity(&seg->tidx, size, next) == EDP_OK) {
        int64_t ts, toff;
        edp_time_index_last(&seg->tidx, &ts, &toff);
        int64_t max_ts = ts, max_ts_offset = ts >= 0 ? toff : -1;
        /* The newest batches may be past the last time-index entry: include them. */
        if (size > 0) {
            edp_batch_hdr_t h;
            int64_t p = pos;
            while (p < size && read_header(seg, p, size, &h, NULL) == EDP_OK) {
                if (h.max_timestamp_ms > max_ts) {
                    max_ts = h.max_timestamp_ms;
                    max_ts_offset = h.base_offset + h.last_offset_delta;
                }
                p += h.batch_length + EDP_BATCH_LOG_OVERHEAD;
            }
        }
        set_max_timestamp(seg, max_ts, max_ts_offset);
        seg->bytes_since_index = since_entry;
        publish(seg, size, next);
        return EDP_OK;
    }
    /* The indexes are missing or damaged: rebuild them from the batch headers. */
    int64_t end;
    rc = scan_file(seg, 0, &end, NULL, diag);
    if (rc == EDP_OK && end != size)
        rc = edp_diag_set(diag, EDP_ECORRUPT, -1, end, "batches end at %ld of %ld bytes",
                          (long)end, (long)size);
    if (rc == EDP_OK)
        publish(seg, size, seg->next_offset);
    return rc;
}

int edp_segment_truncate(edp_segment_t *seg, int64_t offset)
{
    if (seg->fd < 0)
        return EDP_ECLOSED;
    if (edp_segment_poisoned(seg))
        return EDP_EPOISONED;
    int64_t pos;
    int rc = edp_segment_find(seg, offset, &pos, NULL);
    if (rc != EDP_OK)
        return rc;
    if (pos >= seg->size)
        return EDP_OK;
    if (ftruncate(seg->fd, (off_t)pos) != 0) {
        edp_segment_poison(seg);
        return errno;
    }
    store_i64(&seg->size, pos);
    if (edp_segment_verified(seg) > pos)
        store_i64(&seg->verified_pos, pos);
    /* Rebuild the in-memory state from the (trusted) headers that remain. */
    int64_t end;
    rc = scan_file(seg, 0, &end, NULL, NULL);
    publish(seg, end, seg->next_offset);
    return rc;
}
