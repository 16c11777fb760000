"""edplog: Kafka-format partition logs in C, an embeddable Python library and a broker.

The library in four names:

- :class:`Log` — one partition: ``append``, ``append_batches``, ``read``, ``read_numpy``;
- :class:`Store` — a data directory of topics and partitions;
- :class:`Record` — a record as read back (offset, timestamp_ms, key, value, headers);
- :mod:`edplog.records` — building and decoding RecordBatch v2 buffers.
"""

from __future__ import annotations

try:
    from . import _native  # noqa: F401  (fail loudly here, before anything else loads)
except ImportError as exc:  # never fall back to a slower path silently
    raise ImportError(
        "edplog's native extension (edplog._native) is missing or failed to load: "
        f"{exc}. Reinstall with a C compiler, cmake and Cython available: pip install ."
    ) from exc

from ._native import Record
from ._version import __version__
from .errors import EdplogError
from .storage import Log, RecordColumns, Store

__all__ = ["EdplogError", "Log", "Record", "RecordColumns", "Store", "__version__"]
