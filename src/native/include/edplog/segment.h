/*
 * One segment of a partition log: <base offset, 20 digits>.log holding RecordBatch v2 back to
 * back, exactly as Kafka stores them, with its .index and .timeindex (see index.h).
 *
 * Durability contract: the .log is the truth. A batch is durable once edp_segment_flush has
 * returned after it was appended. After a crash the tail past the last flush may hold a partial
 * or garbled batch: edp_segment_recover validates every batch (structure and CRC), truncates the
 * file at the first invalid one and rebuilds both indexes. A failed write, truncate or fsync
 * poisons the segment: every later mutation returns EDP_EPOISONED, and the failed fsync is never
 * retried (the kernel may have dropped the dirty pages it could not write).
 *
 * Threading: one writer at a time, serialised by the caller. What may overlap:
 *   - While the writer runs edp_segment_append or edp_segment_seal, any number of threads may
 *     run the readers: edp_segment_find, _slice, _find_timestamp, _pread, the accessors below
 *     and the index lookups on oidx / tidx (index.h).
 *   - edp_segment_flush may also run beside the writer (fdatasync beside pwrite): it makes
 *     durable at least every batch below a next_offset loaded before the call.
 *   - edp_segment_open, _load, _recover, _truncate and _close must not overlap any other call
 *     on the segment, reader or writer: they reset or cut the bytes, the indexes and the
 *     fields that readers use, and close releases the file and the mappings.
 *
 * What readers see: a prefix of the appends. An append writes its bytes; then, batch by
 * batch, its index entries and the max-timestamp pair; then next_offset; then size: each
 * store with release ordering. Readers read these fields only through the accessors below (acquire loads), never
 * directly. A loaded size guarantees that every batch below it is in the file and that every
 * index entry pointing below it is whole; a loaded next_offset guarantees the same for every
 * batch holding an offset below it. The two are separate loads, not a snapshot: next_offset
 * loaded after size covers at least the batches below that size (it may be further on, when an
 * append ran in between); size loaded after next_offset may lag behind it. The pair
 * (max_timestamp_ms, offset_of_max_timestamp) is read as one: a sequence count makes the
 * reader retry while the writer updates it. fd, base_offset and writable do not change
 * between open and close.
 *
 * Verified prefix: a segment loaded as trusted (edp_segment_load, a clean shutdown) has not had
 * its CRCs checked; verified_pos says how far they have been, and edp_segment_verify extends it
 * (any thread, beside the writer and other readers: it only reads the file and raises the
 * value). Recovery verifies the whole file; appends of validated batches extend the prefix
 * when they start at its end. Readers that hand bytes on unchecked (a fetch's sendfile) verify
 * what they send first, so a bit flipped on disk is found before a client is given it.
 */
#ifndef EDPLOG_SEGMENT_H
#define EDPLOG_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "edplog/batch.h"
#include "edplog/edp.h"
#include "edplog/index.h"

typedef struct edp_segment {
    int fd;                        /**< the .log, owned; -1 when closed */
    int writable;
    int poisoned;                  /**< an earlier write or fsync failed (atomic) */
    int64_t base_offset;
    int64_t size;                  /**< bytes of whole batches (atomic) */
    int64_t next_offset;           /**< last offset + 1, or base_offset when empty (atomic) */
    int64_t max_timestamp_ms;      /**< largest batch maxTimestamp, -1 when empty (seq) */
    int64_t offset_of_max_timestamp; /**< last offset of that batch, -1 when empty (seq) */
    uint32_t max_timestamp_seq;    /**< odd while the writer updates the pair above */
    int64_t bytes_since_index;     /**< log bytes appended since the last index entry */
    int64_t verified_pos;          /**< every batch below it passed a CRC check (atomic) */
    int32_t index_interval_bytes;
    edp_index_t oidx;
    edp_index_t tidx;
} edp_segment_t;

/** What edp_segment_recover found. */
typedef struct edp_recovery {
    int64_t valid_bytes;     /**< the length kept */
    int64_t truncated_bytes; /**< bytes cut from the tail */
    int64_t batches;
    int64_t records;
    int code;                /**< why the scan stopped early (EDP_OK when the file was whole) */
} edp_recovery_t;

/** How far from position 0 every batch's CRC has been checked (acquire). */
static inline int64_t edp_segment_verified(const edp_segment_t *seg)
{
    return __atomic_load_n(&seg->verified_pos, __ATOMIC_ACQUIRE);
}

/** Bytes of whole batches in the file (acquire). */
static inline int64_t edp_segment_size(const edp_segment_t *seg)
{
    return __atomic_load_n(&seg->size, __ATOMIC_ACQUIRE);
}

/** The offset the next batch starts at: last offset + 1, base_offset when empty (acquire). */
static inline int64_t edp_segment_next_offset(const edp_segment_t *seg)
{
    return __atomic_load_n(&seg->next_offset, __ATOMIC_ACQUIRE);
}

/**
 * The largest batch maxTimestamp (-1 when empty) and the last offset of the batch that holds
 * it (-1 when empty), both from the same append. A seqlock read: the writer holds the count
 * odd only across two stores, so the loop repeats only while a writer is between them.
 */
static inline void edp_segment_max_timestamp(const edp_segment_t *seg, int64_t *timestamp_ms,
                                             int64_t *offset)
{
    uint32_t before, after;
    do {
        before = __atomic_load_n(&seg->max_timestamp_seq, __ATOMIC_ACQUIRE);
        *timestamp_ms = __atomic_load_n(&seg->max_timestamp_ms, __ATOMIC_RELAXED);
        *offset = __atomic_load_n(&seg->offset_of_max_timestamp, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        after = __atomic_load_n(&seg->max_timestamp_seq, __ATOMIC_RELAXED);
    } while ((before & 1) != 0 || before != after);
}

/** Whether an earlier write, truncate or fsync failed (acquire). */
static inline int edp_segment_poisoned(const edp_segment_t *seg)
{
    return __atomic_load_n(&seg->poisoned, __ATOMIC_ACQUIRE);
}

/**
 * Refuse every later mutation (EDP_EPOISONED), e.g. when a flush of data written before it
 * failed elsewhere. Safe from any thread.
 */
static inline void edp_segment_poison(edp_segment_t *seg)
{
    __atomic_store_n(&seg->poisoned, 1, __ATOMIC_RELEASE);
}

/**
 * Open the three files of a segment (creating them when writable). Reads nothing yet: follow
 * with edp_segment_load (trusted, clean shutdown) or edp_segment_recover (after a crash).
 * @return EDP_OK or an errno.
 */
int edp_segment_open(edp_segment_t *seg, const char *log_path, const char *index_path,
                     const char *timeindex_path, int64_t base_offset, size_t index_max_bytes,
                     int32_t index_interval_bytes, int writable);

/**
 * Load state without validating every batch: sanity-check the indexes (rebuilding them with a
 * header scan if they fail), then find the last batch from the last index entry.
 * @return EDP_OK; EDP_ECORRUPT/EDP_ETRUNCATED when the batch headers do not chain to the end
 *         of the file (diag names the position).
 */
int edp_segment_load(edp_segment_t *seg, edp_diag_t *diag);

/**
 * Validate every batch from position 0 (structure, offsets ascending and within the segment,
 * CRC), rebuild both indexes, and truncate the file at the first invalid batch.
 * When must_keep_offset >= 0, an invalid batch found before that offset is reached is not cut:
 * the call returns EDP_ECORRUPT with diag naming the position (corruption in data that was
 * flushed must never be dropped silently).
 */
int edp_segment_recover(edp_segment_t *seg, int64_t must_keep_offset, edp_recovery_t *out,
                        edp_diag_t *diag);

/**
 * Append validated batches whose offsets were already assigned (they must start at
 * seg->next_offset), and index them. On a short or failed write the file is cut back to its
 * previous size and the segment is poisoned.
 * @return EDP_OK, EDP_EPOISONED, EDP_EOFFSET_OVERFLOW, EDP_EINDEX_FULL or an errno.
 */
int edp_segment_append(edp_segment_t *seg, const uint8_t *buf, size_t len);

/** fdatasync the .log. A failure poisons the segment. @return EDP_OK or an errno. */
int edp_segment_flush(edp_segment_t *seg);

/**
 * Find the batch holding offset (or the first batch after it): its position, or seg->size when
 * offset is past the end. hdr (may be NULL) receives the batch header.
 */
int edp_segment_find(edp_segment_t *seg, int64_t offset, int64_t *pos, edp_batch_hdr_t *hdr);

/**
 * The byte range of whole batches starting with the one that holds offset, up to max_bytes
 * (but always at least one whole batch when there is one), leaving out every batch whose base
 * offset is at or above max_offset (when max_offset >= 0: a high watermark, a last stable
 * offset). *len is 0 past the end.
 */
int edp_segment_slice(edp_segment_t *seg, int64_t offset, int64_t max_bytes, int64_t max_offset,
                      int64_t *pos, int64_t *len);

/**
 * Check the CRC and structure of every batch from the verified prefix up to (at least)
 * position upto, reading the file in chunks, and extend the prefix. Reads only; any thread.
 * @return EDP_OK; EDP_ECORRUPT with diag naming the position of the first damaged batch (the
 *         prefix stops there); EDP_ETRUNCATED when the file ends inside a batch; an errno.
 */
int edp_segment_verify(edp_segment_t *seg, int64_t upto, edp_diag_t *diag);

/**
 * Bring a poisoned segment back after its disk failed (space was freed): cut it at the batch
 * that holds offset (every batch from there goes, as with edp_segment_truncate), fsync, and
 * only if both succeed clear the poison. What stays below offset was fsynced before the
 * failure, so the segment is whole again. Must not overlap any other call on the segment.
 * @return EDP_OK, or an errno (the segment stays poisoned).
 */
int edp_segment_revive(edp_segment_t *seg, int64_t offset);

/**
 * The first batch whose maxTimestamp >= target_ms: its position (seg->size when none).
 */
int edp_segment_find_timestamp(edp_segment_t *seg, int64_t target_ms, int64_t *pos,
                               edp_batch_hdr_t *hdr);

/**
 * Remove every batch whose last offset >= offset (a batch holding offset goes whole), and the
 * index entries for them. @return EDP_OK, EDP_EPOISONED or an errno.
 */
int edp_segment_truncate(edp_segment_t *seg, int64_t offset);

/** Trim both indexes to their entries (at roll). @return EDP_OK or an errno. */
int edp_segment_seal(edp_segment_t *seg);

/** Read len bytes at pos into dst (a loop over pread). @return EDP_OK, EDP_ETRUNCATED or errno. */
int edp_segment_pread(const edp_segment_t *seg, uint8_t *dst, int64_t pos, int64_t len);

/** Close the three files (trimming the indexes when writable). */
void edp_segment_close(edp_segment_t *seg);

#endif
