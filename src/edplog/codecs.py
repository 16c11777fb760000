"""Compression codecs of RecordBatch v2, keyed by the codec number in the batch attributes.

The records section of a compressed batch is one compressed blob. Each codec here writes the
framing Kafka's own clients write and reads every framing they produce:

- 1 gzip: a gzip member (zlib reads gzip and zlib headers alike).
- 2 snappy: the xerial "snappy-java" stream framing (magic, version, then length-prefixed raw
  snappy blocks of up to 32 KiB); raw unframed snappy is accepted on read.
- 3 lz4: the standard LZ4 frame format with independent 64 KiB blocks and no content checksum.
- 4 zstd: a standard zstd frame.

The libraries used (zlib, cramjam, lz4, zstandard) release the GIL while they work.
"""

from __future__ import annotations

import struct
import zlib

import cramjam
import lz4.frame
import zstandard

from .errors import CorruptRecordError, UnsupportedCodecError

NONE, GZIP, SNAPPY, LZ4, ZSTD = range(5)
NAMES = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
CODEC_NAMES = {v: k for k, v in NAMES.items()}

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024

_zstd_c = zstandard.ZstdCompressor(level=3)
_zstd_d = zstandard.ZstdDecompressor()


def codec_id(compression: str | int | None) -> int:
    """The codec number for a name ('none', 'gzip', 'snappy', 'lz4', 'zstd') or number."""
    if compression is None:
        return NONE
    if isinstance(compression, int):
        if compression in CODEC_NAMES:
            return compression
    elif compression.lower() in NAMES:
        return NAMES[compression.lower()]
    raise UnsupportedCodecError(f"unknown compression {compression!r}; use one of {list(NAMES)}")


def compress(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    """Compress a records section with codec."""
    if codec == GZIP:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec == SNAPPY:
        mv = memoryview(data)
        parts = [_XERIAL_HEADER]
        for start in range(0, len(mv), _XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(mv[start : start + _XERIAL_BLOCK]))
            parts.append(struct.pack(">i", len(block)))
            parts.append(block)
        return b"".join(parts)
    if codec == LZ4:
        return lz4.frame.compress(
            data,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=False,
            content_checksum=False,
        )
    if codec == ZSTD:
        return _zstd_c.compress(data)
    raise UnsupportedCodecError(f"compression codec {codec} is unknown")


def decompress(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    """Decompress a records section; raises CorruptRecordError on bad input."""
    try:
        if codec == GZIP:
            return zlib.decompress(data, 47)
        if codec == SNAPPY:
            mv = memoryview(data)
            if bytes(mv[:8]) != _XERIAL_MAGIC:
                return bytes(cramjam.snappy.decompress_raw(mv))
            pos, out = 16, []
            while pos < len(mv):
                if pos + 4 > len(mv):
                    raise CorruptRecordError("snappy block length runs past the batch")
                (n,) = struct.unpack_from(">i", mv, pos)
                if n < 0 or pos + 4 + n > len(mv):
                    raise CorruptRecordError("snappy block runs past the batch")
                out.append(bytes(cramjam.snappy.decompress_raw(mv[pos + 4 : pos + 4 + n])))
                pos += 4 + n
            return b"".join(out)
        if codec == LZ4:
            return lz4.frame.decompress(data)
        if codec == ZSTD:
            return _zstd_d.decompressobj().decompress(data)
    except CorruptRecordError:
        raise
    except Exception as exc:  # each library raises its own type for bad input
        name = CODEC_NAMES.get(codec, codec)
        raise CorruptRecordError(f"cannot decompress {name} batch: {exc}") from exc
    raise UnsupportedCodecError(f"compression codec {codec} is unknown")
