# The one place where C return codes become Python exceptions.
import os as _os
from edplog import errors as _errors

_CODE_TO_ERROR = {
    EDP_ECORRUPT: _errors.CorruptRecordError,
    EDP_ETRUNCATED: _errors.TruncatedRecordError,
    EDP_EUNSUPPORTED_CODEC: _errors.UnsupportedCodecError,
    EDP_EPOISONED: _errors.LogPoisonedError,
    EDP_ECLOSED: _errors.LogClosedError,
    EDP_ETOO_LARGE: _errors.RecordTooLargeError,
}


cdef int _check(int rc, edp_diag_t *diag=NULL, object path=None) except -1:
    """Raise the exception for rc (0 is success and returns 0)."""
    if rc == 0:
        return 0
    cdef str msg
    if rc > 0:
        msg = _os.strerror(rc)
        if diag != NULL and diag.msg[0] != 0:
            msg = diag.msg.decode("utf-8", "replace")
        if path is None:
            raise OSError(rc, msg)
        raise OSError(rc, msg, path)
    msg = edp_strerror(rc).decode()
    if diag != NULL and diag.msg[0] != 0:
        msg = diag.msg.decode("utf-8", "replace")
    if path is not None:
        msg = f"{path}: {msg}"
    cls = _CODE_TO_ERROR.get(rc)
    if cls is None:
        if rc == EDP_EINVAL:
            raise ValueError(msg)
        if rc == EDP_EBUSY:
            raise BufferError(msg)
        cls = _errors.EdplogError
    err = cls(msg, path=path,
              position=(diag.pos if diag != NULL and diag.pos >= 0 else None),
              offset=(diag.offset if diag != NULL and diag.offset >= 0 else None))
    err.code = rc
    raise err


cdef inline void _diag_clear(edp_diag_t *diag) noexcept nogil:
    diag.code = 0
    diag.offset = -1
    diag.pos = -1
    diag.msg[0] = 0
