/*
 * edplog C core: status codes, diagnostics and the conventions every edp_* function follows.
 *
 * Return values: EDP_OK (0); a positive errno for a failed system call (passed through as the
 * kernel reported it); or a negative EDP_E* code below. One edp_strerror covers both ranges.
 *
 * Threading: the core has no global mutable state. Each object documents its own contract;
 * in general one writer and any number of concurrent readers per segment. Every function may
 * be called without the Python GIL: nothing here touches Python.
 */
#ifndef EDPLOG_EDP_H
#define EDPLOG_EDP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    EDP_OK = 0,
    EDP_ECORRUPT = -1000,           /**< bad CRC, magic, length, record count or offsets */
    EDP_ETRUNCATED = -1001,         /**< a partial batch: the buffer or file ends inside it */
    EDP_EOFFSET_OVERFLOW = -1002,   /**< relative offset does not fit in 32 bits: roll first */
    EDP_EINDEX_FULL = -1003,        /**< the index file has no free slot: roll first */
    EDP_EOUT_OF_ORDER = -1004,      /**< offset not above the last one appended */
    EDP_EUNSUPPORTED_CODEC = -1005, /**< compression bits name no codec we know */
    EDP_ECLOSED = -1006,            /**< the handle is closed */
    EDP_EPOISONED = -1007,          /**< an earlier write or fsync failed; writes are refused */
    EDP_EBUSY = -1008,              /**< buffers still exported */
    EDP_EINVAL = -1009,             /**< an argument out of range */
    EDP_ETOO_LARGE = -1010,         /**< a record or batch exceeds the configured maximum */
};

/** Context for an error: filled by functions that take an edp_diag_t * (which may be NULL). */
typedef struct edp_diag {
    int code;          /**< the code the function returned */
    int64_t offset;    /**< the record offset concerned, or -1 */
    int64_t pos;       /**< the byte position in the buffer or file, or -1 */
    char msg[192];     /**< a one-line human description, NUL-terminated */
} edp_diag_t;

/** A static, human-readable description of an EDP_E* code or an errno. Never NULL. */
const char *edp_strerror(int code);

/** Fill diag (if not NULL) with code, offset, position and a printf-style message; returns code. */
int edp_diag_set(edp_diag_t *diag, int code, int64_t offset, int64_t pos, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#ifdef __cplusplus
}
#endif
#endif
