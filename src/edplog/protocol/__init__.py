"""Kafka wire protocol: framing and a schema-driven codec for every API edplog serves.

Each message is described once in :mod:`edplog.protocol.schema`; decoders and encoders for
every version are generated from those descriptions at import. Requests decode to plain dicts
keyed by the snake_case form of Kafka's field names, with every field present whatever the
version, so broker handlers never branch on versions to read a field.
"""

from __future__ import annotations

from .framing import (
    RequestHeader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    read_request_header,
)
from .registry import API_KEYS, API_NAMES, FLEXIBLE_FROM, REJECTED, SUPPORTED, is_flexible
from .wire import FileRegion, ProtocolError, UnsupportedVersionError

__all__ = [
    "API_KEYS",
    "API_NAMES",
    "FLEXIBLE_FROM",
    "REJECTED",
    "SUPPORTED",
    "FileRegion",
    "ProtocolError",
    "RequestHeader",
    "UnsupportedVersionError",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "is_flexible",
    "read_request_header",
]
