/*
 * The records of a RecordBatch v2, checked one by one by a streaming walker: the records
 * section (decompressed, when the batch is compressed) is fed in chunks of any size, so a
 * compressed batch is checked while it is decompressed, in bounded memory.
 *
 * Record layout (integers are zigzag varints: "varint" holds an int32 in at most 5 bytes,
 * "varlong" an int64 in at most 10) and the rule the walker enforces on each field:
 *
 *   field              type      rule
 *   length             varint    >= 6; the record ends inside the records section
 *   attributes         int8      present (its bits are unused in v2: not checked, as Kafka)
 *   timestampDelta     varlong   any value
 *   offsetDelta        varint    strict: == the record's index (0, 1, 2, ...); otherwise
 *                                above the previous record's and <= lastOffsetDelta
 *   keyLength          varint    -1 (null key) or 0 .. the bytes left in the record
 *   key                bytes
 *   valueLength        varint    -1 (null value) or 0 .. the bytes left in the record
 *   value              bytes
 *   headerCount        varint    0 .. the bytes left in the record
 *   per header:
 *     headerKeyLength  varint    0 .. the bytes left (a header key is never null)
 *     headerKey        bytes
 *     headerValueLength varint   -1 (null) or 0 .. the bytes left
 *     headerValue      bytes
 *   -- the fields end exactly where length says the record ends.
 *
 * The smallest record is 7 bytes: length 6, then one byte each for attributes, timestamp
 * delta, offset delta, key length, value length and header count.
 *
 * Section rules: exactly recordCount records, nothing after the last one, and never more
 * than max_bytes in all (the section's own size when it is not compressed; the caller's
 * bound on decompressed bytes when it is, so that a decompression bomb is refused as soon
 * as its output passes the bound).
 *
 * Streaming contract: edp_walker_feed consumes whole records from the front of a chunk and
 * reports how many bytes it used. The rest of the chunk is the start of one partial record:
 * the caller keeps it and, once it has more bytes, feeds that record again from its first
 * byte. walker->need then tells how many bytes the partial record takes in all (0 while even
 * its length varint is incomplete), so a carry buffer grows only as far as the largest
 * record needs. edp_walker_end, given the bytes still held back, checks the section's end.
 *
 * A walker is owned by one thread at a time; it allocates nothing, does no I/O and never
 * touches Python, so it runs with the GIL released.
 *
 * Cost: about 8 ns a record, whatever its size (bench/bench_validate.py: 100 B records walk
 * at ~15 GB/s uncompressed; behind lz4 or zstd the walk adds up to ~40 % to decompressing).
 * The structure check of batch.c (edp_batch_validate) keeps its own lighter walk of
 * uncompressed batches (lengths and offset deltas only, ~3 ns a record): running this walker
 * there instead made append_batches of 100 B records 10-20 % slower (bench/bench_log.py,
 * test_append_batches_edplog, three interleaved A/B runs of each), so the full walk is a
 * separate step the produce path takes after it.
 */
#ifndef EDPLOG_RECORDS_H
#define EDPLOG_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "edplog/batch.h"
#include "edplog/edp.h"

#define EDP_RECORD_MIN_BYTES 7

/** One checked record, as the walker hands it to a visitor; pointers alias the chunk fed. */
typedef struct edp_record_ref {
    const uint8_t *raw;      /**< the whole record, its length varint included */
    size_t raw_len;
    int64_t timestamp_delta;
    int32_t offset_delta;
    int32_t index;           /**< 0 for the batch's first record */
    const uint8_t *key;      /**< NULL when the key is null */
    int32_t key_len;         /**< -1 when null */
    int32_t value_len;       /**< -1 when the value is null (a tombstone, when keyed) */
} edp_record_ref_t;

/**
 * Called once per record, after the record passed every check. Returns 0 to go on, or any
 * other code to stop the walk: edp_walker_feed then returns that code, and the record counts
 * as not consumed.
 */
typedef int (*edp_record_visit_fn)(void *ctx, const edp_record_ref_t *rec);

/** A walk over one batch's records section. Fields are read-only for the caller. */
typedef struct edp_walker {
    int64_t base_offset;       /**< of the batch, for diagnostics */
    int32_t record_count;
    int32_t last_offset_delta;
    int strict;
    int64_t section_bytes;     /**< the section's exact size, or -1 when not known */
    int64_t max_bytes;         /**< the section may not be larger than this */
    int32_t index;             /**< records walked so far */
    int32_t prev_delta;        /**< offsetDelta of the last record walked, -1 before any */
    int64_t consumed;          /**< bytes of whole records walked so far */
    int64_t need;              /**< size of the partial record held back, 0 if not known */
    edp_record_visit_fn visit; /**< may be NULL */
    void *ctx;
} edp_walker_t;

/**
 * Start a walk over the records section of the batch hdr. section_bytes is the section's
 * size when known (an uncompressed batch: then max_bytes should equal it) or -1; max_bytes
 * bounds the section. visit (may be NULL) is called with ctx for every record.
 * @return EDP_OK, or EDP_ECORRUPT when the header's recordCount or lastOffsetDelta cannot
 *         describe any records section (negative, or fewer offsets than records).
 */
int edp_walker_init(edp_walker_t *w, const edp_batch_hdr_t *hdr, int strict,
                    int64_t section_bytes, int64_t max_bytes, edp_record_visit_fn visit,
                    void *ctx, edp_diag_t *diag);

/**
 * Walk the whole records at the start of [buf, buf + len); *used is set to the bytes they
 * took. Bytes after them are one partial record, to be fed again with more bytes.
 * @return EDP_OK; EDP_ECORRUPT (diag->pos is the bad record's position in the section);
 *         or the visitor's code when it stopped the walk.
 */
int edp_walker_feed(edp_walker_t *w, const uint8_t *buf, size_t len, size_t *used,
                    edp_diag_t *diag);

/**
 * The section has ended, with held_back bytes of a partial record never completed.
 * @return EDP_OK when the section held exactly recordCount records and nothing else;
 *         EDP_ECORRUPT otherwise.
 */
int edp_walker_end(edp_walker_t *w, size_t held_back, edp_diag_t *diag);

/**
 * Walk a whole uncompressed records section [p, end) of the batch hdr in one call (init,
 * feed, end). diag->pos is relative to p.
 */
int edp_records_check(const uint8_t *p, const uint8_t *end, const edp_batch_hdr_t *hdr,
                      int strict, edp_record_visit_fn visit, void *ctx, edp_diag_t *diag);

/**
 * Which record of a batch carries a given timestamp: the walker visitor behind ListOffsets
 * MAX_TIMESTAMP. A segment remembers the batch that holds its largest timestamp (by the
 * batch's last offset, as the time index does); Kafka answers the offset of the first record
 * with that timestamp, so that one batch is walked (decompressed when it is compressed) with
 * edp_records_find_timestamp as the visitor and this struct as its ctx.
 *
 * Set base_timestamp_ms to the batch's base timestamp, target_ms to the timestamp sought,
 * log_append_time to whether the batch has LogAppendTime (then every record's timestamp is
 * the batch's max timestamp, and the first record matches), and offset_delta to -1. After
 * the walk offset_delta is the first matching record's offset delta, or still -1. The
 * visitor never stops the walk, so the batch is checked to its end as well.
 */
typedef struct edp_timestamp_find {
    int64_t base_timestamp_ms;
    int64_t target_ms;
    int log_append_time;
    int32_t offset_delta;
} edp_timestamp_find_t;

/** The edp_record_visit_fn of edp_timestamp_find_t (ctx); always returns EDP_OK. */
int edp_records_find_timestamp(void *ctx, const edp_record_ref_t *rec);

#endif
