"""Request and response frames: headers, the size prefix and the public codec entry points.

Header rules (Kafka's): a request header is v2 (with a tagged-field section) when the API
version is flexible, else v1; a response header is v1 (tagged fields) when flexible, else v0
— except ApiVersions, whose response header is always v0 so that a client that does not yet
know the broker's versions can always read the answer.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, NamedTuple, cast

from .codegen import Encoder
from .registry import (
    APIS,
    REQUEST_DECODERS,
    REQUEST_ENCODERS,
    RESPONSE_DECODERS,
    RESPONSE_ENCODERS,
    codec,
    is_flexible,
)
from .wire import (
    I16,
    I32,
    REQUEST_HEADER,
    FileRegion,
    ProtocolError,
    UnsupportedVersionError,
    skip_tagged_fields,
)

API_VERSIONS_KEY = 18
_DECODE_ERRORS = (struct.error, IndexError, UnicodeDecodeError, ValueError, OverflowError)


class RequestHeader(NamedTuple):
    """A parsed request header; ``body_offset`` is -1 when the body cannot be located."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


def _as_bytes_view(frame: Any) -> memoryview:
    mv = frame if isinstance(frame, memoryview) else memoryview(frame)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def read_request_header(frame: memoryview) -> RequestHeader:
    """Parse the header of one request frame (without its 4-byte size prefix).

    For an unknown API key the header is still returned, with ``body_offset=-1``, so the
    broker can answer UNSUPPORTED_VERSION or close. Raises :class:`ProtocolError` when the
    header itself is truncated or malformed.
    """
    frame = _as_bytes_view(frame)
    end = len(frame)
    try:
        api_key, api_version, correlation_id = REQUEST_HEADER.unpack_from(frame, 0)
        (n,) = I16.unpack_from(frame, 8)
        p = 10
        if n < 0:
            client_id = None
        else:
            if p + n > end:
                raise ProtocolError("client id runs past the frame")
            client_id = str(frame[p : p + n], "utf-8")
            p += n
        if api_key not in APIS:
            return RequestHeader(api_key, api_version, correlation_id, client_id, -1)
        if is_flexible(api_key, api_version):
            p = skip_tagged_fields(frame, p, end)
    except ProtocolError:
        raise
    except _DECODE_ERRORS as exc:
        raise ProtocolError(f"malformed request header: {exc}") from None
    return RequestHeader(api_key, api_version, correlation_id, client_id, p)


def decode_request(
    api_key: int, api_version: int, frame: memoryview, offset: int
) -> dict[str, Any]:
    """Decode a request body starting at ``offset`` of ``frame`` into a dict.

    Every field of the message is present (version-absent ones with their default);
    ``records`` fields are zero-copy slices of ``frame``. Raises :class:`ProtocolError` on any
    malformed input and :class:`UnsupportedVersionError` for a version edplog cannot decode.
    """
    decoder = codec(REQUEST_DECODERS, api_key, api_version)
    if decoder is None:
        raise UnsupportedVersionError(f"no decoder for api {api_key} version {api_version}")
    frame = _as_bytes_view(frame)
    if offset < 0:
        raise ProtocolError("request body offset unknown")
    try:
        body, _ = decoder(frame, offset, len(frame))
    except ProtocolError:
        raise
    except _DECODE_ERRORS as exc:
        raise ProtocolError(f"malformed api {api_key} v{api_version} request: {exc}") from None
    except (TypeError, RecursionError, MemoryError) as exc:
        raise ProtocolError(f"malformed api {api_key} v{api_version} request: {exc}") from None
    return body


def _encoder(table: Mapping[tuple[int, int], Encoder], api_key: int, api_version: int) -> Encoder:
    encoder = codec(table, api_key, api_version)
    if encoder is None:
        raise UnsupportedVersionError(f"no encoder for api {api_key} version {api_version}")
    return encoder


def _finish(parts: list[Any], b: bytearray) -> tuple[list[Any], int]:
    if b:
        parts.append(b)
    total = 0
    for part in parts:
        total += cast(FileRegion, part).length if isinstance(part, tuple) else len(part)
    I32.pack_into(parts[0], 0, total - 4)
    return parts, total


def encode_response(
    api_key: int, api_version: int, correlation_id: int, body: dict[str, Any]
) -> tuple[list[Any], int]:
    """Encode a response frame as ``(parts, total_bytes)``, size prefix included.

    ``parts`` holds bytes-like objects and :class:`FileRegion` items in wire order; the regions
    are meant for ``sendfile``. Missing fields take their defaults; fields the version lacks
    are ignored.
    """
    encoder = _encoder(RESPONSE_ENCODERS, api_key, api_version)
    b = bytearray(8)
    I32.pack_into(b, 4, correlation_id)
    if api_key != API_VERSIONS_KEY and is_flexible(api_key, api_version):
        b.append(0)
    parts: list[Any] = []
    try:
        b = encoder(body, b, parts)
    except (struct.error, TypeError, AttributeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode api {api_key} v{api_version} response: {exc}") from exc
    # The bytearray that holds the size prefix is never empty, so it is always parts[0].
    return _finish(parts, b)


def encode_request(
    api_key: int,
    api_version: int,
    correlation_id: int,
    client_id: str | None,
    body: dict[str, Any],
) -> bytes:
    """Encode a complete request frame (size prefix included), as a client sends it."""
    encoder = _encoder(REQUEST_ENCODERS, api_key, api_version)
    b = bytearray(4)
    b += REQUEST_HEADER.pack(api_key, api_version, correlation_id)
    if client_id is None:
        b += b"\xff\xff"
    else:
        cid = client_id.encode()
        b += I16.pack(len(cid)) + cid
    if is_flexible(api_key, api_version):
        b.append(0)
    parts: list[Any] = []
    try:
        b = encoder(body, b, parts)
    except (struct.error, TypeError, AttributeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode api {api_key} v{api_version} request: {exc}") from exc
    parts, _ = _finish(parts, b)
    return b"".join(bytes(p) if not isinstance(p, tuple) else _read_region(p) for p in parts)


def _read_region(region: Any) -> bytes:
    import os

    return os.pread(region.file.fileno(), region.length, region.pos)


def decode_response(
    api_key: int, api_version: int, frame: memoryview
) -> tuple[int, dict[str, Any]]:
    """Decode a response frame (without size prefix) into ``(correlation_id, body)``."""
    decoder = codec(RESPONSE_DECODERS, api_key, api_version)
    if decoder is None:
        raise UnsupportedVersionError(f"no decoder for api {api_key} version {api_version}")
    frame = _as_bytes_view(frame)
    end = len(frame)
    try:
        (correlation_id,) = I32.unpack_from(frame, 0)
        p = 4
        if api_key != API_VERSIONS_KEY and is_flexible(api_key, api_version):
            p = skip_tagged_fields(frame, p, end)
        body, _ = decoder(frame, p, end)
    except ProtocolError:
        raise
    except (*_DECODE_ERRORS, TypeError, RecursionError) as exc:
        raise ProtocolError(f"malformed api {api_key} v{api_version} response: {exc}") from None
    return correlation_id, body
