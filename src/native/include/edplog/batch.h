/*
 * RecordBatch v2: the unit edplog stores on disk and serves on the wire, byte for byte as Kafka.
 *
 * Batch header (big-endian, 61 bytes), then the records section:
 *
 *   pos  size  field                 notes
 *     0     8  baseOffset            rewritten by the log on append (outside the CRC)
 *     8     4  batchLength           bytes after this field: total size - 12
 *    12     4  partitionLeaderEpoch  stamped by the leader on append (outside the CRC)
 *    16     1  magic                 2
 *    17     4  crc                   CRC-32C of bytes 21 .. end
 *    21     2  attributes            bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
 *    23     4  lastOffsetDelta
 *    27     8  baseTimestamp
 *    35     8  maxTimestamp
 *    43     8  producerId            -1 when not idempotent
 *    51     2  producerEpoch
 *    53     4  baseSequence
 *    57     4  recordCount
 *    61     .  records               compressed as a whole when codec != 0
 *
 * Record (all integers zigzag varints; lengths of -1 mean null):
 *   length, attributes int8, timestampDelta (varlong), offsetDelta, keyLength, key,
 *   valueLength, value, headerCount, then per header: keyLength, key, valueLength, value.
 *
 * Validity: magic 2; batchLength >= 49; the CRC matches; recordCount >= 0; lastOffsetDelta >=
 * recordCount - 1. For a batch a producer sends ("strict"), lastOffsetDelta == recordCount - 1,
 * and, when uncompressed, the records section holds exactly recordCount well-formed records with
 * offsetDelta 0, 1, 2, ... A batch from our own log may have fewer records than offsets (after
 * compaction), so the non-strict check allows gaps.
 *
 * Everything here works on caller-owned buffers: no I/O, no allocation, any thread.
 */
#ifndef EDPLOG_BATCH_H
#define EDPLOG_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "edplog/edp.h"

#define EDP_BATCH_HEADER_BYTES 61
#define EDP_BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define EDP_BATCH_MAGIC 2

enum {
    EDP_CODEC_NONE = 0,
    EDP_CODEC_GZIP = 1,
    EDP_CODEC_SNAPPY = 2,
    EDP_CODEC_LZ4 = 3,
    EDP_CODEC_ZSTD = 4,
};
#define EDP_ATTR_CODEC_MASK 0x07
#define EDP_ATTR_LOG_APPEND_TIME 0x08
#define EDP_ATTR_TRANSACTIONAL 0x10
#define EDP_ATTR_CONTROL 0x20

/** The decoded header of one batch. */
typedef struct edp_batch_hdr {
    int64_t base_offset;
    int32_t batch_length;      /**< as stored: total bytes - 12 */
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp_ms;
    int64_t max_timestamp_ms;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
} edp_batch_hdr_t;

/** Totals over a run of batches (edp_batches_scan). */
typedef struct edp_scan {
    int64_t batches;
    int64_t records;
    int64_t first_offset;      /**< baseOffset of the first batch, or -1 */
    int64_t last_offset;       /**< last offset of the last batch, or -1 */
    int64_t max_timestamp_ms;  /**< largest maxTimestamp seen, or -1 */
    int64_t offset_of_max_timestamp;
    int64_t valid_bytes;       /**< bytes of whole valid batches from the start */
    int32_t max_batch_bytes;   /**< the largest single batch */
    int32_t codecs;            /**< bit (1 << codec) set for each codec seen */
} edp_scan_t;

/**
 * Decode the header at buf without checking the CRC.
 * @return EDP_OK; EDP_ETRUNCATED when len is shorter than the header or than the batch it
 *         announces; EDP_ECORRUPT when magic is not 2 or batchLength is impossible.
 */
int edp_batch_header(const uint8_t *buf, size_t len, edp_batch_hdr_t *hdr, edp_diag_t *diag);

/**
 * Check the CRC of a batch whose header edp_batch_header accepted (the whole batch is in buf).
 * @return EDP_OK or EDP_ECORRUPT.
 */
int edp_batch_check_crc(const uint8_t *buf, const edp_batch_hdr_t *hdr, edp_diag_t *diag);

/**
 * Validate one whole batch: header, CRC and, with strict, the producer rules above.
 * @return EDP_OK, EDP_ETRUNCATED or EDP_ECORRUPT (diag says which check failed).
 */
int edp_batch_validate(const uint8_t *buf, size_t len, int strict, edp_batch_hdr_t *hdr,
                       edp_diag_t *diag);

/**
 * Walk consecutive batches in buf, validating each (CRC included unless check_crc is 0), and
 * sum them up in *scan. Stops at the first batch that fails; scan->valid_bytes says how far
 * the good prefix reaches. With require_contiguous, every batch must start at the offset after
 * the previous one's last offset (as in a log); otherwise offsets must merely ascend.
 * @return EDP_OK when the whole buffer is valid batches; else the first failure's code.
 */
int edp_batches_scan(const uint8_t *buf, size_t len, int strict, int check_crc,
                     int require_ascending, edp_scan_t *scan, edp_diag_t *diag);

/**
 * Rewrite baseOffset (and partitionLeaderEpoch when leader_epoch >= 0) of every batch in buf so
 * that they take offsets next_offset, next_offset + 1, ... in order. The CRC does not cover
 * these fields, so it stays valid. buf must already have passed edp_batches_scan.
 * @return the offset after the last one assigned (the new log end offset).
 */
int64_t edp_batches_assign_offsets(uint8_t *buf, size_t len, int64_t next_offset,
                                   int32_t leader_epoch);

/**
 * Stamp LogAppendTime into every batch in buf: set the timestamp-type bit, maxTimestamp =
 * now_ms, and recompute the CRC (both fields are covered by it).
 */
void edp_batches_set_log_append_time(uint8_t *buf, size_t len, int64_t now_ms);

/* ---- records --------------------------------------------------------------------------- */

/** One record inside a records section; pointers alias the caller's buffer. */
typedef struct edp_record {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    const uint8_t *key;   /**< NULL when the key is null */
    int32_t key_len;      /**< -1 when null */
    const uint8_t *value; /**< NULL when the value is null */
    int32_t value_len;    /**< -1 when null */
    const uint8_t *headers; /**< the first header's bytes */
    int32_t header_count;
    const uint8_t *end;   /**< one past this record */
} edp_record_t;

/** One header of a record. */
typedef struct edp_header {
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value; /**< NULL when null */
    int32_t value_len;    /**< -1 when null */
} edp_header_t;

/**
 * Decode the record at *p (bounded by end) and advance *p past it.
 * @return EDP_OK or EDP_ECORRUPT (a length or varint that runs past end).
 */
int edp_record_next(const uint8_t **p, const uint8_t *end, edp_record_t *rec);

/** Decode the header at *p and advance; the record's header bytes must have been bounded. */
int edp_header_next(const uint8_t **p, const uint8_t *end, edp_header_t *hdr);

/**
 * The exact encoded size of a record (length prefix included). headers_len is the size of the
 * already-encoded header list (see edp_header_encode), header_count their number.
 */
size_t edp_record_size(int64_t timestamp_delta, int32_t offset_delta, int32_t key_len,
                       int32_t value_len, size_t headers_len, int32_t header_count);

/** Encode a record into dst, which must hold edp_record_size(...) bytes. Returns bytes written. */
size_t edp_record_encode(uint8_t *dst, int64_t timestamp_delta, int32_t offset_delta,
                         const uint8_t *key, int32_t key_len, const uint8_t *value,
                         int32_t value_len, const uint8_t *headers, size_t headers_len,
                         int32_t header_count);

/** Encode one header into dst (capacity cap). Returns bytes written, or 0 if cap is too small. */
size_t edp_header_encode(uint8_t *dst, size_t cap, const uint8_t *key, int32_t key_len,
                         const uint8_t *value, int32_t value_len);

/**
 * Write the 61-byte header at buf (the records section already follows it, records_len bytes)
 * and compute the CRC. Returns the total batch size.
 */
size_t edp_batch_finish(uint8_t *buf, size_t records_len, const edp_batch_hdr_t *hdr);

/** Column buffers filled by edp_records_columns (caller-owned). */
typedef struct edp_columns {
    int64_t *offsets;
    int64_t *timestamps_ms;
    int32_t *value_lengths;   /**< -1 for a null value */
    uint8_t *values;          /**< the values back to back */
    size_t cap;               /**< rows the arrays hold */
    size_t value_cap;         /**< bytes values holds */
    size_t rows;              /**< rows filled so far */
    size_t value_bytes;       /**< value bytes filled so far */
} edp_columns_t;

/**
 * Append the records of an uncompressed records section [p, end) of batch h with offset >=
 * min_offset to the columns. Only lengths, deltas and values are read (keys and headers are
 * skipped by length). @return 0; 1 when the value buffer is full (the rows this batch added
 * remain, the caller rolls back to its own mark); 2 when every row is taken; -1 on bad input.
 */
int edp_records_columns(const uint8_t *p, const uint8_t *end, const edp_batch_hdr_t *h,
                        int64_t min_offset, edp_columns_t *c);

/* ---- varints (exposed for the protocol codec and tests) -------------------------------- */
size_t edp_varint_encode(uint8_t *dst, int64_t v);            /**< zigzag; <= 10 bytes */
int edp_varint_decode(const uint8_t **p, const uint8_t *end, int64_t *out); /**< zigzag */
size_t edp_varint_size(int64_t v);

#endif
