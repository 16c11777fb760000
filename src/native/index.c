/*
 * Sparse offset and time indexes over mmap'd files. Layout and contracts: include/edplog/index.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "edplog/index.h"

/* Release: the bytes of the entries below n are written before a reader can load n. */
static inline void publish_entries(edp_index_t *ix, size_t n)
{
    __atomic_store_n(&ix->entries, n, __ATOMIC_RELEASE);
}

/* The key (offset or timestamp) and value of entry i. */
static inline void offset_entry(const edp_index_t *ix, size_t i, int64_t *offset, int64_t *pos)
{
    const uint8_t *e = ix->map + i * EDP_OFFSET_ENTRY_BYTES;
    *offset = ix->base_offset + (int64_t)be32_load(e);
    *pos = (int64_t)be32_load(e + 4);
}

static inline void time_entry(const edp_index_t *ix, size_t i, int64_t *ts, int64_t *offset)
{
    const uint8_t *e = ix->map + i * EDP_TIME_ENTRY_BYTES;
    *ts = (int64_t)be64_load(e);
    *offset = ix->base_offset + (int64_t)be32_load(e + 8);
}

/* The end of the last region of the file that holds data: the part past it is a hole (the
 * untouched preallocation). Reading holes through the mapping would fault a page in for each
 * of them, and on tmpfs that allocates memory and raises SIGBUS when the filesystem is full.
 * Falls back to size where holes cannot be found. */
static size_t data_end(int fd, size_t size)
{
    off_t off = 0, end = 0;
    for (int i = 0; i < 4096 && (size_t)off < size; i++) {
        off_t d = lseek(fd, off, SEEK_DATA);
        if (d < 0)
            return errno == ENXIO ? (size_t)end : size;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0)
            return size;
        end = h;
        off = h;
    }
    return (size_t)off < size ? size : (size_t)end;
}

/* Allocate the file block under the entry at byte pos before writing it through the mapping,
 * so that a full filesystem is an ENOSPC here rather than a SIGBUS on the store. Only the
 * first entry of each page pays for the call. */
static int back_entry(const edp_index_t *ix, size_t pos)
{
    const size_t page = 4096;
    if (pos % page != 0 && pos / page == (pos + ix->entry_bytes - 1) / page)
        return EDP_OK;
    return posix_fallocate(ix->fd, (off_t)pos, (off_t)ix->entry_bytes);
}

static int is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int edp_index_open(edp_index_t *ix, const char *path, int64_t base_offset, size_t entry_bytes,
                   size_t max_bytes, int writable)
{
    int rc = EDP_OK;
    struct stat st;
    ix->fd = -1;
    ix->map = NULL;
    ix->map_bytes = 0;
    ix->entries = 0;
    ix->entry_bytes = entry_bytes;
    ix->base_offset = base_offset;
    ix->max_entries = max_bytes / entry_bytes;

    ix->fd = open(path, (writable ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0644);
    if (ix->fd < 0)
        return errno;
    if (fstat(ix->fd, &st) != 0)
        goto fail_errno;
    size_t file_entries = (size_t)st.st_size / entry_bytes;
    size_t want = writable ? ix->max_entries * entry_bytes : file_entries * entry_bytes;
    if (writable && file_entries > ix->max_entries) {
        ix->max_entries = file_entries; /* an index larger than configured: keep it whole */
        want = file_entries * entry_bytes;
    }
    if (writable && (size_t)st.st_size != want && ftruncate(ix->fd, (off_t)want) != 0)
        goto fail_errno;
    if (want > 0) {
        void *m = mmap(NULL, want, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                       ix->fd, 0);
        if (m == MAP_FAILED)
            goto fail_errno;
        ix->map = m;
        ix->map_bytes = want;
        /* Entries are touched one page at a time: without this, the first append to a fresh
         * (sparse, preallocated) index faults in a whole readahead window of zero pages,
         * 5-20 ms (bench/bench_log.py, append_batches first call). */
        madvise(m, want, MADV_RANDOM);
    }
    if (!writable)
        ix->max_entries = file_entries;
    /* A preallocated file that was not trimmed (a crash) ends in zeroed entries. */
    size_t stored = data_end(ix->fd, (size_t)st.st_size);
    if (file_entries > (stored + entry_bytes - 1) / entry_bytes)
        file_entries = (stored + entry_bytes - 1) / entry_bytes;
    while (file_entries > 0 &&
           is_zero(ix->map + (file_entries - 1) * entry_bytes, entry_bytes))
        file_entries--;
    publish_entries(ix, file_entries);
    return EDP_OK;

fail_errno:
    rc = errno;
    edp_index_close(ix);
    return rc;
}

void edp_index_close(edp_index_t *ix)
{
    if (ix->map)
        munmap(ix->map, ix->map_bytes);
    ix->map = NULL;
    ix->map_bytes = 0;
    /* A lookup on a closed index then finds no entry instead of reading the unmapped pages. */
    publish_entries(ix, 0);
    if (ix->fd >= 0)
        close(ix->fd);
    ix->fd = -1;
}

int edp_index_trim(edp_index_t *ix)
{
    if (ix->fd < 0)
        return EDP_ECLOSED;
    size_t n = edp_index_entries(ix);
    if (ftruncate(ix->fd, (off_t)(n * ix->entry_bytes)) != 0)
        return errno;
    __atomic_store_n(&ix->max_entries, n, __ATOMIC_RELEASE);
    return EDP_OK;
}

void edp_index_reset(edp_index_t *ix)
{
    publish_entries(ix, 0);
}

int edp_index_sanity(const edp_index_t *ix, int64_t log_size, int64_t next_offset)
{
    size_t n = edp_index_entries(ix);
    int64_t prev_key = INT64_MIN, prev_val = -1;
    for (size_t i = 0; i < n; i++) {
        int64_t key, val;
        if (ix->entry_bytes == EDP_OFFSET_ENTRY_BYTES) {
            offset_entry(ix, i, &key, &val);
            if (key <= prev_key || val <= prev_val || val >= log_size || key >= next_offset)
                return EDP_ECORRUPT;
        } else {
            time_entry(ix, i, &key, &val);
            if (key <= prev_key || val < prev_val || val >= next_offset)
                return EDP_ECORRUPT;
        }
        prev_key = key;
        prev_val = val;
    }
    return EDP_OK;
}

int edp_offset_index_append(edp_index_t *ix, int64_t offset, int64_t pos)
{
    size_t n = edp_index_entries(ix);
    if (n >= ix->max_entries)
        return EDP_EINDEX_FULL;
    int64_t rel = offset - ix->base_offset;
    if (rel < 0 || rel > (int64_t)UINT32_MAX || pos > (int64_t)UINT32_MAX)
        return EDP_EOFFSET_OVERFLOW;
    if (n > 0) {
        int64_t last_off, last_pos;
        offset_entry(ix, n - 1, &last_off, &last_pos);
        if (offset <= last_off || pos <= last_pos)
            return EDP_EOUT_OF_ORDER;
    }
    int rc = back_entry(ix, n * EDP_OFFSET_ENTRY_BYTES);
    if (rc != EDP_OK)
        return rc;
    uint8_t *e = ix->map + n * EDP_OFFSET_ENTRY_BYTES;
    be32_store(e, (uint32_t)rel);
    be32_store(e + 4, (uint32_t)pos);
    publish_entries(ix, n + 1);
    return EDP_OK;
}

void edp_offset_index_lookup(const edp_index_t *ix, int64_t target, int64_t *offset,
                             int64_t *pos)
{
    size_t n = edp_index_entries(ix);
    size_t lo = 0, hi = n; /* find the first entry with key > target */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t k, v;
        offset_entry(ix, mid, &k, &v);
        if (k <= target)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) {
        *offset = ix->base_offset;
        *pos = 0;
        return;
    }
    offset_entry(ix, lo - 1, offset, pos);
}

void edp_offset_index_truncate(edp_index_t *ix, int64_t offset)
{
    size_t n = edp_index_entries(ix);
    while (n > 0) {
        int64_t k, v;
        offset_entry(ix, n - 1, &k, &v);
        if (k < offset)
            break;
        n--;
    }
    publish_entries(ix, n);
}

void edp_offset_index_last(const edp_index_t *ix, int64_t *offset, int64_t *pos)
{
    size_t n = edp_index_entries(ix);
    if (n == 0) {
        *offset = ix->base_offset;
        *pos = 0;
        return;
    }
    offset_entry(ix, n - 1, offset, pos);
}

int edp_time_index_maybe_append(edp_index_t *ix, int64_t timestamp_ms, int64_t offset)
{
    size_t n = edp_index_entries(ix);
    if (n > 0) {
        int64_t ts, off;
        time_entry(ix, n - 1, &ts, &off);
        if (timestamp_ms <= ts)
            return EDP_OK;
        if (offset < off)
            return EDP_EOUT_OF_ORDER;
    }
    if (n >= ix->max_entries)
        return EDP_EINDEX_FULL;
    int64_t rel = offset - ix->base_offset;
    if (rel < 0 || rel > (int64_t)UINT32_MAX)
        return EDP_EOFFSET_OVERFLOW;
    int rc = back_entry(ix, n * EDP_TIME_ENTRY_BYTES);
    if (rc != EDP_OK)
        return rc;
    uint8_t *e = ix->map + n * EDP_TIME_ENTRY_BYTES;
    be64_store(e, (uint64_t)timestamp_ms);
    be32_store(e + 8, (uint32_t)rel);
    publish_entries(ix, n + 1);
    return EDP_OK;
}

int64_t edp_time_index_lookup(const edp_index_t *ix, int64_t target_ms)
{
    size_t n = edp_index_entries(ix);
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t ts, off;
        time_entry(ix, mid, &ts, &off);
        if (ts <= target_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return ix->base_offset;
    int64_t ts, off;
    time_entry(ix, lo - 1, &ts, &off);
    return off;
}

void edp_time_index_truncate(edp_index_t *ix, int64_t offset)
{
    size_t n = edp_index_entries(ix);
    while (n > 0) {
        int64_t ts, off;
        time_entry(ix, n - 1, &ts, &off);
        if (off < offset)
            break;
        n--;
    }
    publish_entries(ix, n);
}

void edp_time_index_last(const edp_index_t *ix, int64_t *timestamp_ms, int64_t *offset)
{
    size_t n = edp_index_entries(ix);
    if (n == 0) {
        *timestamp_ms = -1;
        *offset = ix->base_offset;
        return;
    }
    time_entry(ix, n - 1, timestamp_ms, offset);
}
