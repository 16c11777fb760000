"""The API table: names, advertised ranges, flexible thresholds and the compiled codecs.

The schema text is parsed at import (a syntax mistake fails the import); each codec is
generated and compiled the first time its (api, version, direction) is used, then cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from .codegen import Decoder, Encoder, build_decoder, build_encoder
from .dsl import Api, parse
from .schema import TEXT

APIS: dict[int, Api] = parse(TEXT)

API_KEYS: dict[str, int] = {api.name: key for key, api in APIS.items()}
API_NAMES: dict[int, str] = {key: api.name for key, api in APIS.items()}

#: Ranges advertised in ApiVersions.
SUPPORTED: dict[int, tuple[int, int]] = {
    key: (api.min_version, api.max_version) for key, api in APIS.items()
}

#: Versions advertised only so that old librdkafka enables features (it tests for a specific
#: low version being in range), answered with UNSUPPORTED_VERSION as Kafka 4 does.
REJECTED: dict[int, range] = {0: range(0, 3), 1: range(0, 4)}

#: First flexible version per API (APIs with no flexible version are absent).
FLEXIBLE_FROM: dict[int, int] = {
    key: api.flexible_from for key, api in APIS.items() if api.flexible_from is not None
}


_C = TypeVar("_C")


class _CodecTable(dict[tuple[int, int], _C]):
    """``(api_key, version) -> codec``, compiled on first use and kept.

    Compiling all ~650 codecs costs about half a second, which every short-lived process
    (the CLI, a test broker) would pay at import; compiling on first use costs ~1 ms once per
    kind of message. :func:`build_all` compiles everything (the test suite does, so a schema
    that cannot generate fails there). Missing keys raise ``KeyError``.
    """

    def __init__(self, kind: str, build: Callable[..., _C]) -> None:
        super().__init__()
        self.kind = kind
        self.build = build

    def __missing__(self, kv: tuple[int, int]) -> _C:
        api = APIS.get(kv[0])
        if api is None or not api.min_version <= kv[1] <= api.max_version:
            raise KeyError(kv)
        fields = getattr(api, self.kind)
        label = f"{api.name} v{kv[1]} {self.kind}"
        codec = self.build(fields, kv[1], api.is_flexible(kv[1]), label)
        self[kv] = codec
        return codec


REQUEST_DECODERS: dict[tuple[int, int], Decoder] = _CodecTable("request", build_decoder)
REQUEST_ENCODERS: dict[tuple[int, int], Encoder] = _CodecTable("request", build_encoder)
RESPONSE_DECODERS: dict[tuple[int, int], Decoder] = _CodecTable("response", build_decoder)
RESPONSE_ENCODERS: dict[tuple[int, int], Encoder] = _CodecTable("response", build_encoder)
_TABLES = (REQUEST_DECODERS, REQUEST_ENCODERS, RESPONSE_DECODERS, RESPONSE_ENCODERS)


def build_all() -> None:
    """Compile every codec now (the broker may call it at start to move the cost there)."""
    for key, api in APIS.items():
        for version in range(api.min_version, api.max_version + 1):
            for table in _TABLES:
                table[(key, version)]


def codec(table: Mapping[tuple[int, int], _C], api_key: int, api_version: int) -> _C | None:
    """The codec for ``(api_key, api_version)`` in ``table``, or None if there is none."""
    try:
        return table[(api_key, api_version)]
    except KeyError:
        return None


def is_flexible(api_key: int, api_version: int) -> bool:
    """Whether this API version uses flexible encodings (and header v2 / v1)."""
    first = FLEXIBLE_FROM.get(api_key)
    return first is not None and api_version >= first
