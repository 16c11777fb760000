"""The API table: names, advertised ranges, flexible thresholds and the compiled codecs.

Every codec is compiled here, at import, so the first request of a kind pays nothing extra
and a schema mistake that breaks code generation fails the import rather than a client.
"""

from __future__ import annotations

from .codegen import Decoder, Encoder, build_decoder, build_encoder
from .dsl import Api, parse
from .schema import TEXT

APIS: dict[int, Api] = parse(TEXT)

API_KEYS: dict[str, int] = {api.name: key for key, api in APIS.items()}
API_NAMES: dict[int, str] = {key: api.name for key, api in APIS.items()}

#: Ranges advertised in ApiVersions. SASL is described but not served yet.
SUPPORTED: dict[int, tuple[int, int]] = {
    key: (api.min_version, api.max_version) for key, api in APIS.items() if key not in (17, 36)
}

#: Versions advertised only so that old librdkafka enables features (it tests for a specific
#: low version being in range), answered with UNSUPPORTED_VERSION as Kafka 4 does.
REJECTED: dict[int, range] = {0: range(0, 3), 1: range(0, 4)}

#: First flexible version per API (APIs with no flexible version are absent).
FLEXIBLE_FROM: dict[int, int] = {
    key: api.flexible_from for key, api in APIS.items() if api.flexible_from is not None
}

REQUEST_DECODERS: dict[tuple[int, int], Decoder] = {}
REQUEST_ENCODERS: dict[tuple[int, int], Encoder] = {}
RESPONSE_DECODERS: dict[tuple[int, int], Decoder] = {}
RESPONSE_ENCODERS: dict[tuple[int, int], Encoder] = {}


def _build() -> None:
    for key, api in APIS.items():
        for version in range(api.min_version, api.max_version + 1):
            flex = api.is_flexible(version)
            kv = (key, version)
            label = f"{api.name} v{version}"
            REQUEST_DECODERS[kv] = build_decoder(api.request, version, flex, label + " request")
            REQUEST_ENCODERS[kv] = build_encoder(api.request, version, flex, label + " request")
            RESPONSE_DECODERS[kv] = build_decoder(api.response, version, flex, label + " response")
            RESPONSE_ENCODERS[kv] = build_encoder(api.response, version, flex, label + " response")


_build()


def is_flexible(api_key: int, api_version: int) -> bool:
    """Whether this API version uses flexible encodings (and header v2 / v1)."""
    first = FLEXIBLE_FROM.get(api_key)
    return first is not None and api_version >= first
