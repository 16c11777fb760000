# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""edplog's native core: RecordBatch v2, segments, indexes and the per-record append path.

One extension module; each .pxi below wraps one concept of src/native/.
"""
from edp cimport *

include "_status.pxi"
include "_batch.pxi"
include "_segment.pxi"
include "_records.pxi"
include "_keymap.pxi"
include "_log.pxi"
