"""Wire primitives shared by the generated codecs: varints, pre-compiled structs, FileRegion
and the protocol errors.

Generated code calls these by name from its namespace; they are kept small because they sit
on the per-field path of every request.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..errors import EdplogError, ErrorCode


class ProtocolError(EdplogError):
    """A request or response frame is malformed, truncated or not encodable.

    Kafka answers a request it cannot parse by closing the connection; the code is
    INVALID_REQUEST so a broker that prefers to answer has the right one at hand.
    """

    kafka_code = ErrorCode.INVALID_REQUEST


class UnsupportedVersionError(ProtocolError):
    """The API key is unknown or the version is outside what edplog can decode."""

    kafka_code = ErrorCode.UNSUPPORTED_VERSION


class FileRegion(NamedTuple):
    """``length`` bytes of ``file`` (anything with ``.fileno()``) starting at byte ``pos``.

    Response encoders emit it as its own part so the broker can ``sendfile`` it: record bytes
    of a fetch never pass through Python.
    """

    file: object
    pos: int
    length: int


I8 = struct.Struct(">b")
I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
REQUEST_HEADER = struct.Struct(">hhi")


def read_uvarint(buf: memoryview, p: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 varint at ``p``; returns ``(value, next position)``.

    Limited to 10 bytes (a 64-bit value) so a run of continuation bytes cannot loop long.
    """
    b = buf[p]
    if b < 0x80:
        return b, p + 1
    result = b & 0x7F
    shift = 7
    p += 1
    while True:
        b = buf[p]
        p += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, p
        shift += 7
        if shift > 63:
            raise ProtocolError("varint longer than 10 bytes")


def read_varint(buf: memoryview, p: int) -> tuple[int, int]:
    """Decode a zigzag-encoded signed varint (Kafka's varint/varlong)."""
    u, p = read_uvarint(buf, p)
    return (u >> 1) ^ -(u & 1), p


def uvarint(value: int) -> bytes:
    """Encode ``value`` (non-negative) as an unsigned varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint(value: int) -> bytes:
    """Encode ``value`` as a zigzag signed varint (64-bit range)."""
    return uvarint((value << 1) ^ (value >> 63))


def skip_tagged_fields(buf: memoryview, p: int, end: int) -> int:
    """Skip a tagged-field section (used by headers, whose tags edplog does not read)."""
    n, p = read_uvarint(buf, p)
    if n > end - p:
        raise ProtocolError("tagged field count exceeds the frame")
    for _ in range(n):
        _tag, p = read_uvarint(buf, p)
        size, p = read_uvarint(buf, p)
        p += size
        if p > end:
            raise ProtocolError("tagged field runs past the frame")
    return p
