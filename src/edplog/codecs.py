"""Compression codecs of RecordBatch v2, keyed by the codec number in the batch attributes.

The records section of a compressed batch is one compressed blob. Each codec here writes the
framing Kafka's own clients write and reads every framing they produce:

- 1 gzip: a gzip member (zlib reads gzip and zlib headers alike).
- 2 snappy: the xerial "snappy-java" stream framing (magic, version, then length-prefixed raw
  snappy blocks of up to 32 KiB); raw unframed snappy is accepted on read.
- 3 lz4: the standard LZ4 frame format with independent 64 KiB blocks and no content checksum.
- 4 zstd: a standard zstd frame.

The libraries used (zlib, cramjam, lz4, zstandard) release the GIL while they work. Checked
by a thread spinning a counter while the main thread decompresses 100 MB: the counter runs on
through every call of each library (zlib's decompressobj, lz4.frame's LZ4FrameDecompressor,
zstandard's stream_reader, cramjam's decompress_raw_into, and each compressor), as it does
during time.sleep, and stops during a C call that holds the GIL (bytes.count).

``stream_decompressor`` serves the validators that walk every record of a compressed batch:
its ``read(size)`` gives the decompressed section piece by piece and refuses, with
CorruptRecordError, a stream that would expand past ``max_bytes``, after producing at most that
much. It also refuses what a consumer's decoder would fail on: truncated streams, bytes after
the end of the stream, and snappy blocks that declare more than they can hold.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable

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

# zstandard's (de)compressor objects must not be shared between threads (each holds one
# libzstd context), and callers release the GIL around their calls: one of each per thread.
_zstd = threading.local()


def _zstd_compressor() -> zstandard.ZstdCompressor:
    c = getattr(_zstd, "c", None)
    if c is None:
        c = _zstd.c = zstandard.ZstdCompressor(level=3)
    return c


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_zstd, "d", None)
    if d is None:
        d = _zstd.d = zstandard.ZstdDecompressor()
    return d


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
        return _zstd_compressor().compress(data)
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
            # Every frame, as libzstd's own decoders (and stream_decompressor) read them.
            return _zstd_decompressor().stream_reader(data, read_across_frames=True).read()
    except CorruptRecordError:
        raise
    except Exception as exc:  # each library raises its own type for bad input
        name = CODEC_NAMES.get(codec, codec)
        raise CorruptRecordError(f"cannot decompress {name} batch: {exc}") from exc
    raise UnsupportedCodecError(f"compression codec {codec} is unknown")


# ---- bounded streaming decompression ---------------------------------------------------------

Buffer = bytes | bytearray | memoryview


class DecompressStream:
    """The decompressed records section of one batch, read piece by piece.

    ``read(size)`` returns the next piece (at most ``size`` bytes, except that a snappy block
    comes whole: it is at most 64/3 times its compressed size) and an empty buffer at the
    clean end of the stream. Every failure, the bound included, raises CorruptRecordError.
    """

    name = "?"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.produced = 0  # decompressed bytes handed out so far

    def read(self, size: int) -> Buffer:
        try:
            out = self._read(self._want(size))
        except CorruptRecordError:
            raise
        except Exception as exc:  # each library raises its own type for bad input
            raise CorruptRecordError(f"cannot decompress {self.name} records: {exc}") from exc
        self.produced += len(out)
        if self.produced > self.max_bytes:
            raise self._too_big()
        return out

    def _want(self, size: int) -> int:
        # One byte more than the bound allows, so that passing it is seen, not just reaching it.
        return max(1, min(size, self.max_bytes - self.produced + 1))

    def _too_big(self) -> CorruptRecordError:
        return CorruptRecordError(
            f"{self.name} records expand past the {self.max_bytes} bytes allowed uncompressed"
        )

    def _read(self, size: int) -> Buffer:
        raise NotImplementedError

    def _truncated(self) -> CorruptRecordError:
        return CorruptRecordError(f"the {self.name} stream ends before its end (truncated)")

    def _trailing(self, n: int) -> CorruptRecordError:
        return CorruptRecordError(f"{n} bytes follow the end of the {self.name} stream")


class _GzipStream(DecompressStream):
    name = "gzip"
    # Input goes to zlib in pieces: a call that stops at max_length hands the rest of its
    # input back as a fresh bytes object (unconsumed_tail), so whole-input calls would copy
    # the input once per piece of output.
    _PIECE = 64 * 1024

    def __init__(self, data: Buffer, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._d = zlib.decompressobj(47)  # a gzip or zlib header
        self._mv = memoryview(data)
        self._pos = 0

    def _read(self, size: int) -> Buffer:
        d = self._d
        while not d.eof:
            src = d.unconsumed_tail
            if not src:
                if self._pos >= len(self._mv):
                    raise self._truncated()
                src = self._mv[self._pos : self._pos + self._PIECE]
                self._pos += len(src)
            out = d.decompress(src, size)
            if out:
                return out
            if d.unconsumed_tail and len(d.unconsumed_tail) >= len(src):
                raise CorruptRecordError("the gzip stream makes no progress")
        left = len(d.unused_data) + len(self._mv) - self._pos
        if left:
            raise self._trailing(left)
        return b""


class _Lz4Stream(DecompressStream):
    name = "lz4"

    def __init__(self, data: Buffer, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._d = lz4.frame.LZ4FrameDecompressor()
        self._data: Buffer | None = data

    def _read(self, size: int) -> Buffer:
        d = self._d
        idle = 0
        while not d.eof:
            if self._data is not None:
                src, self._data = self._data, None
            elif d.needs_input:
                raise self._truncated()
            else:
                src = b""  # the decompressor holds input it has not decoded yet
            out = d.decompress(src, max_length=size)
            if out:
                return out
            idle += 1
            if idle > 2:
                raise CorruptRecordError("the lz4 frame makes no progress")
        if d.unused_data:
            raise self._trailing(len(d.unused_data))
        return b""


_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE = 0x184D2A50  # the low 4 bits are free
_ZSTD_BLOCK_MAX = 128 * 1024


def _zstd_frames_check(mv: memoryview, max_bytes: int) -> None:
    """Walk the frame and block headers of a zstd stream (RFC 8878, section 3.1) without
    decompressing anything: the stream must be whole frames and nothing else, and the raw and
    RLE blocks (whose sizes are exact) must not already pass max_bytes.

    zstandard's bounded reader stops silently at the end of a truncated stream, so this is
    how a missing tail (a last block, a checksum) is found. It costs about 90 ns per block
    (timed on a frame of 350,000 empty blocks): microseconds for a legitimate 1 MiB frame,
    whose blocks hold up to 128 KiB each, and about 30 ms for 1 MiB of the smallest blocks a
    client could send.
    """
    n = len(mv)
    pos = 0
    exact = 0
    if n == 0:
        raise CorruptRecordError("empty zstd records section")
    while pos < n:
        if n - pos < 5:
            raise CorruptRecordError("the zstd stream ends inside a frame header (truncated)")
        magic = mv[pos] | mv[pos + 1] << 8 | mv[pos + 2] << 16 | mv[pos + 3] << 24
        if magic & 0xFFFFFFF0 == _ZSTD_SKIPPABLE:
            if n - pos < 8:
                raise CorruptRecordError("the zstd stream ends inside a skippable frame")
            pos += 8 + (mv[pos + 4] | mv[pos + 5] << 8 | mv[pos + 6] << 16 | mv[pos + 7] << 24)
            if pos > n:
                raise CorruptRecordError("a zstd skippable frame runs past the batch")
            continue
        if magic != _ZSTD_MAGIC:
            where = f"{n - pos} bytes after the end of the zstd stream" if pos else "no zstd"
            raise CorruptRecordError(f"{where}: not a zstd frame")
        fhd = mv[pos + 4]
        pos += 5
        if fhd & 0x08:
            raise CorruptRecordError("zstd frame header has its reserved bit set")
        single = fhd >> 5 & 1
        fcs_bytes = (single, 2, 4, 8)[fhd >> 6]
        header = (1 - single) + (0, 1, 2, 4)[fhd & 3] + fcs_bytes
        if pos + header > n:
            raise CorruptRecordError("the zstd stream ends inside a frame header (truncated)")
        content = -1
        if fcs_bytes:
            content = int.from_bytes(mv[pos + header - fcs_bytes : pos + header], "little")
            content += 256 if fcs_bytes == 2 else 0
            if content > max_bytes:  # exact: libzstd checks the frame produces just that
                raise CorruptRecordError(
                    f"a zstd frame declares {content} bytes, past the {max_bytes} allowed "
                    "uncompressed"
                )
        if single:
            window = content
        else:
            wd = mv[pos]
            base = 1 << (10 + (wd >> 3))
            window = base + (base >> 3) * (wd & 7)
        block_max = min(window, _ZSTD_BLOCK_MAX)
        pos += header
        while True:
            if pos + 3 > n:
                raise CorruptRecordError("the zstd stream ends before its last block (truncated)")
            bh = mv[pos] | mv[pos + 1] << 8 | mv[pos + 2] << 16
            kind = bh >> 1 & 3
            size = bh >> 3
            if kind == 3 or size > max(block_max, 1):
                raise CorruptRecordError("corrupt zstd block header")
            pos += 3 + (1 if kind == 1 else size)
            if kind != 2:
                exact += size
                if exact > max_bytes:
                    raise CorruptRecordError(
                        f"zstd records expand past the {max_bytes} bytes allowed uncompressed"
                    )
            if bh & 1:
                break
        if fhd & 0x04:
            pos += 4  # content checksum
        if pos > n:
            raise CorruptRecordError("the zstd stream ends inside its last block (truncated)")


class _ZstdStream(DecompressStream):
    name = "zstd"

    def __init__(self, data: Buffer, max_bytes: int) -> None:
        super().__init__(max_bytes)
        mv = memoryview(data)
        _zstd_frames_check(mv, max_bytes)
        # Concatenated frames are one stream (RFC 8878), as libzstd's decoders read them.
        self._r = _zstd_decompressor().stream_reader(mv, read_across_frames=True)

    def _read(self, size: int) -> Buffer:
        return self._r.read(size)


class _SnappyStream(DecompressStream):
    name = "snappy"

    def __init__(self, data: Buffer, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._mv = memoryview(data)
        if bytes(self._mv[:8]) == _XERIAL_MAGIC:
            if len(self._mv) < 16:
                raise CorruptRecordError("the snappy stream ends inside its header (truncated)")
            self._pos = 16
            self._framed = True
        else:
            self._pos = 0
            self._framed = False

    def _read(self, size: int) -> Buffer:
        mv = self._mv
        if self._pos >= len(mv):
            if not self._framed and self._pos == 0:
                raise CorruptRecordError("empty snappy records section")
            return b""
        if self._framed:
            if self._pos + 4 > len(mv):
                raise CorruptRecordError("snappy block length runs past the batch")
            (n,) = struct.unpack_from(">i", mv, self._pos)
            if n < 0 or self._pos + 4 + n > len(mv):
                raise CorruptRecordError("snappy block runs past the batch")
            block = mv[self._pos + 4 : self._pos + 4 + n]
            self._pos += 4 + n
        else:
            block = mv
            self._pos = len(mv)
        declared, head = _uvarint32(block)
        # The bound is checked on what the block declares, before anything is allocated: a
        # raw snappy block can declare up to 4 GiB in five bytes.
        if self.produced + declared > self.max_bytes:
            raise self._too_big()
        # No snappy element yields more than 64 bytes per 3 of input (a 2-byte-offset copy),
        # so a block declaring more cannot be valid: refused without decompressing it.
        if declared * 3 > (len(block) - head) * 64:
            raise CorruptRecordError(
                f"a snappy block of {len(block)} bytes declares {declared} bytes, more than "
                "it can hold"
            )
        out = bytearray(declared)
        if declared and cramjam.snappy.decompress_raw_into(block, out) != declared:
            raise CorruptRecordError("a snappy block decompresses to less than it declares")
        return out


def _uvarint32(mv: memoryview) -> tuple[int, int]:
    """A snappy block's preamble: (its uncompressed length, the preamble's size)."""
    value = 0
    for i in range(min(5, len(mv))):
        b = mv[i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if value >= 1 << 32:
                break
            return value, i + 1
    raise CorruptRecordError("a snappy block's length preamble is malformed")


_STREAMS: dict[int, Callable[[Buffer, int], DecompressStream]] = {
    GZIP: _GzipStream,
    SNAPPY: _SnappyStream,
    LZ4: _Lz4Stream,
    ZSTD: _ZstdStream,
}


def stream_decompressor(codec: int, data: Buffer, max_bytes: int) -> DecompressStream:
    """A bounded reader of the compressed records section ``data`` (see DecompressStream).

    Raises CorruptRecordError at once when the stream's framing already shows it bad or
    larger than max_bytes (zstd frame headers), UnsupportedCodecError for codec 0 or unknown.
    """
    cls = _STREAMS.get(codec)
    if cls is None:
        raise UnsupportedCodecError(f"compression codec {codec} has no stream decompressor")
    return cls(data, max_bytes)
