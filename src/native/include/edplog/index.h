/*
 * Sparse indexes of one segment, memory-mapped, in Kafka's file layout.
 *
 *   .index      8-byte entries: relative offset (u32, offset - base offset), position (u32)
 *   .timeindex 12-byte entries: timestamp (i64, ms), relative offset (u32)
 *
 * All big-endian. An offset-index entry (o, p) says the batch starting at byte p of the .log
 * ends with offset base + o; a time-index entry (t, o) says every record up to the batch that
 * ends at offset base + o has a timestamp <= t. Entries strictly ascend. One entry is written
 * per index.interval.bytes of log.
 *
 * Durability contract: derived data, not checksummed. A writable index is preallocated to its
 * maximum size (so appends never grow the file) and trimmed to its entries when the segment is
 * sealed or closed. After a crash the file may hold zeroed or stale entries past the real ones:
 * the segment layer sanity-checks indexes on open and rebuilds them from the .log when in doubt.
 *
 * Threading: one writer at a time (serialised by the caller). What may overlap:
 *   - Lookups (edp_offset_index_lookup, edp_time_index_lookup, the _last functions,
 *     edp_index_sanity) and the accessors edp_index_entries / edp_index_is_full may run in any
 *     number of threads while the writer runs edp_offset_index_append,
 *     edp_time_index_maybe_append or edp_index_trim. An append writes the entry's bytes, then
 *     publishes the new count with release ordering; readers load the count with acquire and
 *     read only entries below it, so they never see a half-written entry. Trim shrinks the
 *     file to the published entries, which readers never read past.
 *   - edp_index_open, _close, _reset and the _truncate functions must not overlap any reader:
 *     after a reset or truncate the next append rewrites an entry that a reader holding the
 *     older, larger count may still be reading, and close unmaps it.
 * Readers read entries and max_entries only through the accessors below, never the fields.
 */
#ifndef EDPLOG_INDEX_H
#define EDPLOG_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "edplog/edp.h"

#define EDP_OFFSET_ENTRY_BYTES 8
#define EDP_TIME_ENTRY_BYTES 12

typedef struct edp_index {
    int fd;               /**< owned; -1 when closed */
    uint8_t *map;         /**< the mapping, map_bytes long; NULL when empty */
    size_t map_bytes;
    size_t entry_bytes;   /**< 8 (offset index) or 12 (time index) */
    size_t max_entries;   /**< capacity of the preallocated file (atomic: edp_index_is_full) */
    size_t entries;       /**< published entry count (atomic: edp_index_entries) */
    int64_t base_offset;
} edp_index_t;

/** The published entry count (an acquire load: the entries below it are whole). */
static inline size_t edp_index_entries(const edp_index_t *ix)
{
    return __atomic_load_n(&ix->entries, __ATOMIC_ACQUIRE);
}

/** Whether an append would return EDP_EINDEX_FULL (every entry used, or trimmed at seal). */
static inline int edp_index_is_full(const edp_index_t *ix)
{
    return edp_index_entries(ix) >= __atomic_load_n(&ix->max_entries, __ATOMIC_ACQUIRE);
}

/**
 * Open (creating if needed) an index file. With writable, the file is extended to max_bytes
 * (rounded down to whole entries) so appends need no syscalls. The entry count is taken from
 * the file, less trailing all-zero entries; call edp_index_sanity before trusting it.
 * @return EDP_OK or an errno.
 */
int edp_index_open(edp_index_t *ix, const char *path, int64_t base_offset, size_t entry_bytes,
                   size_t max_bytes, int writable);

/** Unmap and close; the index then has no entries. Safe on a closed index. */
void edp_index_close(edp_index_t *ix);

/** Shrink the file to its entries (at seal and close). @return EDP_OK or an errno. */
int edp_index_trim(edp_index_t *ix);

/** Forget every entry (before a rebuild). */
void edp_index_reset(edp_index_t *ix);

/**
 * Check that entries ascend and that positions lie below log_size (offset index) or relative
 * offsets lie below next_offset - base (time index). @return EDP_OK or EDP_ECORRUPT.
 */
int edp_index_sanity(const edp_index_t *ix, int64_t log_size, int64_t next_offset);

/**
 * Offset index: append (offset, pos). @return EDP_OK, EDP_EINDEX_FULL,
 * EDP_EOFFSET_OVERFLOW (offset - base does not fit u32) or EDP_EOUT_OF_ORDER.
 */
int edp_offset_index_append(edp_index_t *ix, int64_t offset, int64_t pos);

/** Offset index: the entry with the largest offset <= target, or (base, 0) if none. */
void edp_offset_index_lookup(const edp_index_t *ix, int64_t target, int64_t *offset,
                             int64_t *pos);

/** Offset index: drop entries for offsets >= offset. */
void edp_offset_index_truncate(edp_index_t *ix, int64_t offset);

/** Offset index: the last entry (base, 0 when empty). */
void edp_offset_index_last(const edp_index_t *ix, int64_t *offset, int64_t *pos);

/** Time index: append (timestamp, offset) if timestamp is above the last entry's. */
int edp_time_index_maybe_append(edp_index_t *ix, int64_t timestamp_ms, int64_t offset);

/** Time index: the entry with the largest timestamp <= target: its offset, or base if none. */
int64_t edp_time_index_lookup(const edp_index_t *ix, int64_t target_ms);

/** Time index: drop entries for offsets >= offset. */
void edp_time_index_truncate(edp_index_t *ix, int64_t offset);

/** Time index: the last entry's timestamp (-1 when empty) and offset. */
void edp_time_index_last(const edp_index_t *ix, int64_t *timestamp_ms, int64_t *offset);

#endif
