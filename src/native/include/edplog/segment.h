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
 * Threading: one writer (append, truncate, flush, seal) at a time, serialised by the caller;
 * any number of concurrent readers (find, slice, pread). size and next_offset are published
 * with release ordering after the bytes and index entries they cover are in place.
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
    int poisoned;                  /**< an earlier write or fsync failed */
    int64_t base_offset;
    int64_t size;                  /**< bytes of whole batches (atomic) */
    int64_t next_offset;           /**< last offset + 1, or base_offset when empty (atomic) */
    int64_t max_timestamp_ms;      /**< largest batch maxTimestamp, -1 when empty */
    int64_t offset_of_max_timestamp;
    int64_t bytes_since_index;     /**< log bytes appended since the last index entry */
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
 * (but always at least one whole batch when there is one). *len is 0 past the end.
 */
int edp_segment_slice(edp_segment_t *seg, int64_t offset, int64_t max_bytes, int64_t *pos,
                      int64_t *len);

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
