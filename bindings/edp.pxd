# cython: language_level=3
# C declarations of the edplog core (src/native/include/edplog/*.h). Every function is
# noexcept nogil: none touches Python, and errors come back as return codes.
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t

cdef extern from "edplog/edp.h" nogil:
    enum:
        EDP_OK
        EDP_ECORRUPT
        EDP_ETRUNCATED
        EDP_EOFFSET_OVERFLOW
        EDP_EINDEX_FULL
        EDP_EOUT_OF_ORDER
        EDP_EUNSUPPORTED_CODEC
        EDP_ECLOSED
        EDP_EPOISONED
        EDP_EBUSY
        EDP_EINVAL
        EDP_ETOO_LARGE
    ctypedef struct edp_diag_t:
        int code
        int64_t offset
        int64_t pos
        char msg[192]
    const char *edp_strerror(int code) noexcept

cdef extern from "edplog/crc32c.h" nogil:
    uint32_t edp_crc32c(uint32_t crc, const void *buf, size_t len) noexcept
    uint32_t edp_crc32c_portable(uint32_t crc, const void *buf, size_t len) noexcept

cdef extern from "edplog/batch.h" nogil:
    enum:
        EDP_BATCH_HEADER_BYTES
        EDP_BATCH_LOG_OVERHEAD
        EDP_ATTR_CODEC_MASK
        EDP_ATTR_LOG_APPEND_TIME
        EDP_ATTR_TRANSACTIONAL
        EDP_ATTR_CONTROL
    ctypedef struct edp_batch_hdr_t:
        int64_t base_offset
        int32_t batch_length
        int32_t leader_epoch
        int8_t magic
        uint32_t crc
        int16_t attributes
        int32_t last_offset_delta
        int64_t base_timestamp_ms
        int64_t max_timestamp_ms
        int64_t producer_id
        int16_t producer_epoch
        int32_t base_sequence
        int32_t record_count
    ctypedef struct edp_scan_t:
        int64_t batches
        int64_t records
        int64_t first_offset
        int64_t last_offset
        int64_t max_timestamp_ms
        int64_t offset_of_max_timestamp
        int64_t valid_bytes
        int32_t max_batch_bytes
        int32_t codecs
    ctypedef struct edp_record_t:
        int8_t attributes
        int64_t timestamp_delta
        int32_t offset_delta
        const uint8_t *key
        int32_t key_len
        const uint8_t *value
        int32_t value_len
        const uint8_t *headers
        int32_t header_count
        const uint8_t *end
    ctypedef struct edp_header_t:
        const uint8_t *key
        int32_t key_len
        const uint8_t *value
        int32_t value_len

    int edp_batch_header(const uint8_t *buf, size_t len, edp_batch_hdr_t *hdr, edp_diag_t *diag) noexcept
    int edp_batch_check_crc(const uint8_t *buf, const edp_batch_hdr_t *hdr, edp_diag_t *diag) noexcept
    int edp_batch_validate(const uint8_t *buf, size_t len, int strict, edp_batch_hdr_t *hdr, edp_diag_t *diag) noexcept
    int edp_batches_scan(const uint8_t *buf, size_t len, int strict, int check_crc, int require_ascending, edp_scan_t *scan, edp_diag_t *diag) noexcept
    int64_t edp_batches_assign_offsets(uint8_t *buf, size_t len, int64_t next_offset, int32_t leader_epoch) noexcept
    void edp_batches_set_log_append_time(uint8_t *buf, size_t len, int64_t now_ms) noexcept
    int edp_record_next(const uint8_t **p, const uint8_t *end, edp_record_t *rec) noexcept
    int edp_header_next(const uint8_t **p, const uint8_t *end, edp_header_t *hdr) noexcept
    size_t edp_record_size(int64_t timestamp_delta, int32_t offset_delta, int32_t key_len, int32_t value_len, size_t headers_len, int32_t header_count) noexcept
    size_t edp_record_encode(uint8_t *dst, int64_t timestamp_delta, int32_t offset_delta, const uint8_t *key, int32_t key_len, const uint8_t *value, int32_t value_len, const uint8_t *headers, size_t headers_len, int32_t header_count) noexcept
    size_t edp_header_encode(uint8_t *dst, size_t cap, const uint8_t *key, int32_t key_len, const uint8_t *value, int32_t value_len) noexcept
    size_t edp_batch_finish(uint8_t *buf, size_t records_len, const edp_batch_hdr_t *hdr) noexcept
    ctypedef struct edp_columns_t:
        int64_t *offsets
        int64_t *timestamps_ms
        int32_t *value_lengths
        uint8_t *values
        size_t cap
        size_t value_cap
        size_t rows
        size_t value_bytes
    int edp_records_columns(const uint8_t *p, const uint8_t *end, const edp_batch_hdr_t *h, int64_t min_offset, edp_columns_t *c) noexcept
    size_t edp_varint_encode(uint8_t *dst, int64_t v) noexcept
    int edp_varint_decode(const uint8_t **p, const uint8_t *end, int64_t *out) noexcept
    size_t edp_varint_size(int64_t v) noexcept

cdef extern from "edplog/index.h" nogil:
    ctypedef struct edp_index_t:
        int fd
        size_t entries
        size_t max_entries
        int64_t base_offset
    void edp_offset_index_lookup(const edp_index_t *ix, int64_t target, int64_t *offset, int64_t *pos) noexcept
    int64_t edp_time_index_lookup(const edp_index_t *ix, int64_t target_ms) noexcept
    int edp_index_sanity(const edp_index_t *ix, int64_t log_size, int64_t next_offset) noexcept
    # Fields a writer may change while readers run are read through these (index.h, Threading).
    size_t edp_index_entries(const edp_index_t *ix) noexcept
    int edp_index_is_full(const edp_index_t *ix) noexcept

cdef extern from "edplog/segment.h" nogil:
    ctypedef struct edp_segment_t:
        int fd
        int writable
        int poisoned
        int64_t base_offset
        int64_t size
        int64_t next_offset
        int64_t max_timestamp_ms
        int64_t offset_of_max_timestamp
        edp_index_t oidx
        edp_index_t tidx
    ctypedef struct edp_recovery_t:
        int64_t valid_bytes
        int64_t truncated_bytes
        int64_t batches
        int64_t records
        int code
    int edp_segment_open(edp_segment_t *seg, const char *log_path, const char *index_path, const char *timeindex_path, int64_t base_offset, size_t index_max_bytes, int32_t index_interval_bytes, int writable) noexcept
    int edp_segment_load(edp_segment_t *seg, edp_diag_t *diag) noexcept
    int edp_segment_recover(edp_segment_t *seg, int64_t must_keep_offset, edp_recovery_t *out, edp_diag_t *diag) noexcept
    int edp_segment_append(edp_segment_t *seg, const uint8_t *buf, size_t len) noexcept
    int edp_segment_flush(edp_segment_t *seg) noexcept
    int edp_segment_find(edp_segment_t *seg, int64_t offset, int64_t *pos, edp_batch_hdr_t *hdr) noexcept
    int edp_segment_slice(edp_segment_t *seg, int64_t offset, int64_t max_bytes, int64_t max_offset, int64_t *pos, int64_t *len) noexcept
    int edp_segment_verify(edp_segment_t *seg, int64_t upto, edp_diag_t *diag) noexcept
    int edp_segment_revive(edp_segment_t *seg, int64_t offset) noexcept
    int64_t edp_segment_verified(const edp_segment_t *seg) noexcept
    int edp_segment_find_timestamp(edp_segment_t *seg, int64_t target_ms, int64_t *pos, edp_batch_hdr_t *hdr) noexcept
    int edp_segment_truncate(edp_segment_t *seg, int64_t offset) noexcept
    int edp_segment_seal(edp_segment_t *seg) noexcept
    int edp_segment_pread(const edp_segment_t *seg, uint8_t *dst, int64_t pos, int64_t len) noexcept
    void edp_segment_close(edp_segment_t *seg) noexcept
    # Fields a writer may change while readers run are read through these (segment.h,
    # Threading): atomic loads that never block, so callers need not release the GIL for them.
    int64_t edp_segment_size(const edp_segment_t *seg) noexcept
    int64_t edp_segment_next_offset(const edp_segment_t *seg) noexcept
    void edp_segment_max_timestamp(const edp_segment_t *seg, int64_t *timestamp_ms, int64_t *offset) noexcept
    int edp_segment_poisoned(const edp_segment_t *seg) noexcept
    void edp_segment_poison(edp_segment_t *seg) noexcept

cdef extern from "edplog/clock.h" nogil:
    ctypedef struct edp_clock_t:
        int mode
    void edp_clock_init(edp_clock_t *c) noexcept
    int64_t edp_clock_now_ms(edp_clock_t *c) noexcept

from libc.stdint cimport uint64_t

cdef extern from "edplog/records.h" nogil:
    enum:
        EDP_RECORD_MIN_BYTES
    ctypedef struct edp_record_ref_t:
        const uint8_t *raw
        size_t raw_len
        int64_t timestamp_delta
        int32_t offset_delta
        int32_t index
        const uint8_t *key
        int32_t key_len
        int32_t value_len
    ctypedef int (*edp_record_visit_fn)(void *ctx, const edp_record_ref_t *rec) noexcept nogil
    ctypedef struct edp_walker_t:
        int64_t base_offset
        int32_t record_count
        int32_t last_offset_delta
        int strict
        int64_t section_bytes
        int64_t max_bytes
        int32_t index
        int32_t prev_delta
        int64_t consumed
        int64_t need
        edp_record_visit_fn visit
        void *ctx
    int edp_walker_init(edp_walker_t *w, const edp_batch_hdr_t *hdr, int strict, int64_t section_bytes, int64_t max_bytes, edp_record_visit_fn visit, void *ctx, edp_diag_t *diag) noexcept
    int edp_walker_feed(edp_walker_t *w, const uint8_t *buf, size_t len, size_t *used, edp_diag_t *diag) noexcept
    int edp_walker_end(edp_walker_t *w, size_t held_back, edp_diag_t *diag) noexcept
    int edp_records_check(const uint8_t *p, const uint8_t *end, const edp_batch_hdr_t *hdr, int strict, edp_record_visit_fn visit, void *ctx, edp_diag_t *diag) noexcept
    ctypedef struct edp_timestamp_find_t:
        int64_t base_timestamp_ms
        int64_t target_ms
        int log_append_time
        int32_t offset_delta
    int edp_records_find_timestamp(void *ctx, const edp_record_ref_t *rec) noexcept nogil

cdef extern from "edplog/keymap.h" nogil:
    enum:
        EDP_KEYMAP_SLOT_BYTES
    ctypedef struct edp_keymap_t:
        size_t capacity
        size_t limit
        size_t size
        uint64_t seed
        int64_t max_offset
    int edp_keymap_init(edp_keymap_t *m, size_t capacity_bytes, uint64_t seed) noexcept
    void edp_keymap_free(edp_keymap_t *m) noexcept
    void edp_keymap_clear(edp_keymap_t *m) noexcept
    int edp_keymap_put(edp_keymap_t *m, const uint8_t *key, size_t len, int64_t offset) noexcept
    int64_t edp_keymap_get(const edp_keymap_t *m, const uint8_t *key, size_t len) noexcept
    void edp_keymap_fingerprint(const uint8_t *key, size_t len, uint64_t seed, uint64_t *out) noexcept
