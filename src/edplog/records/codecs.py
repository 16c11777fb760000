"""The compression codecs of RecordBatch v2 (see :mod:`edplog.codecs`, where they live).

The codecs module sits below the native extension, which compresses and decompresses through
it, so it cannot live in this package (importing the package imports the extension); this
module is its place in the records API.
"""

from __future__ import annotations

from ..codecs import (
    CODEC_NAMES,
    GZIP,
    LZ4,
    NAMES,
    NONE,
    SNAPPY,
    ZSTD,
    codec_id,
    compress,
    decompress,
)

__all__ = [
    "CODEC_NAMES",
    "GZIP",
    "LZ4",
    "NAMES",
    "NONE",
    "SNAPPY",
    "ZSTD",
    "codec_id",
    "compress",
    "decompress",
]
