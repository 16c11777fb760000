/* edp_strerror and diagnostics: the one table of what each code means. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "edplog/edp.h"

const char *edp_strerror(int code)
{
    switch (code) {
    case EDP_OK: return "ok";
    case EDP_ECORRUPT: return "corrupt record batch";
    case EDP_ETRUNCATED: return "truncated record batch";
    case EDP_EOFFSET_OVERFLOW: return "relative offset overflows the segment";
    case EDP_EINDEX_FULL: return "index is full";
    case EDP_EOUT_OF_ORDER: return "offset out of order";
    case EDP_EUNSUPPORTED_CODEC: return "unsupported compression codec";
    case EDP_ECLOSED: return "closed";
    case EDP_EPOISONED: return "segment poisoned by an earlier write or fsync failure";
    case EDP_EBUSY: return "buffers still exported";
    case EDP_EINVAL: return "invalid argument";
    case EDP_ETOO_LARGE: return "too large";
    default: break;
    }
    return code > 0 ? strerror(code) : "unknown edplog error";
}

int edp_diag_set(edp_diag_t *diag, int code, int64_t offset, int64_t pos, const char *fmt, ...)
{
    if (diag == NULL)
        return code;
    diag->code = code;
    diag->offset = offset;
    diag->pos = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof diag->msg, fmt, ap);
    va_end(ap);
    return code;
}
