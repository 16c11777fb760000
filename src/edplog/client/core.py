"""What both client flavours share and no socket touches: versions, correlation, framing.

The blocking and the asyncio client differ only in how bytes move. Everything else — which
version of an API to send, the correlation id of each request, which responses are still
owed and in what order, decoding a response frame — is here, so the two cannot drift apart.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol import (
    API_KEYS,
    API_NAMES,
    REJECTED,
    SUPPORTED,
    ProtocolError,
    UnsupportedVersionError,
    decode_response,
    encode_request,
)

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
PRODUCE = 0
FETCH = 1
UNSUPPORTED_VERSION = 35
DEFAULT_CLIENT_ID = "edplog-client"
#: Kafka caps correlation ids at int32; they wrap to 1 (0 is left out so it never looks unset).
MAX_CORRELATION_ID = 0x7FFFFFFF
#: The typed calls name topics, which Produce v13 and Fetch v13+ replace by topic ids: typed
#: produces and fetches stay at v12 (a raw ``call`` may still send any version the codec has).
TYPED_MAX = {PRODUCE: 12, FETCH: 12}
_SIZE = struct.Struct(">i")
_I16 = struct.Struct(">h")


def api_key_of(api: int | str) -> int:
    """An API key from its number or Kafka's name (``"Fetch"`` -> 1)."""
    if isinstance(api, int):
        return api
    try:
        return API_KEYS[api]
    except KeyError:
        raise ValueError(f"unknown API name {api!r}") from None


def api_name(api_key: int) -> str:
    return API_NAMES.get(api_key, f"api {api_key}")


def client_range(api_key: int, typed_max: int | None = None) -> tuple[int, int] | None:
    """The versions this client sends in typed calls, without the ones Kafka 4 removed
    (edplog's broker advertises those for old librdkafka but answers UNSUPPORTED_VERSION).
    ``typed_max`` replaces :data:`TYPED_MAX` for a call that can go further (a fetch whose
    positions all carry topic ids)."""
    span = SUPPORTED.get(api_key)
    if span is None:
        return None
    lo, hi = span
    hi = min(hi, typed_max if typed_max is not None else TYPED_MAX.get(api_key, hi))
    rejected = REJECTED.get(api_key)
    while rejected is not None and lo in rejected and lo <= hi:
        lo += 1
    return lo, hi


class Versions:
    """The version to send for each API: the highest both sides speak, capped by the caller.

    ``broker`` is what the broker advertised in ApiVersions (``{api_key: (min, max)}``);
    ``max_versions`` caps chosen APIs (keys are API keys or names). :meth:`pick` raises
    :class:`UnsupportedVersionError` naming both ranges when there is no common version.
    """

    def __init__(
        self,
        broker: Mapping[int, tuple[int, int]],
        max_versions: Mapping[int | str, int] | None = None,
    ) -> None:
        self.broker = dict(broker)
        self.max_versions = {api_key_of(k): v for k, v in (max_versions or {}).items()}
        self._picked: dict[tuple[int, int | None], int] = {}

    def pick(self, api_key: int, typed_max: int | None = None) -> int:
        """The version for ``api_key`` (``typed_max``: see :func:`client_range`)."""
        key = (api_key, typed_max)
        version = self._picked.get(key)
        if version is None:
            version = self._picked[key] = self._choose(api_key, typed_max)
        return version

    def _choose(self, api_key: int, typed_max: int | None) -> int:
        ours = client_range(api_key, typed_max)
        theirs = self.broker.get(api_key)
        cap = self.max_versions.get(api_key)
        name = api_name(api_key)
        if ours is None:
            raise UnsupportedVersionError(f"{name}: this client has no codec for api {api_key}")
        if theirs is None:
            raise UnsupportedVersionError(f"{name}: the broker does not offer this API")
        lo = max(ours[0], theirs[0])
        hi = min(ours[1], theirs[1], cap if cap is not None else ours[1])
        if hi < lo:
            capped = f", capped at v{cap}" if cap is not None else ""
            raise UnsupportedVersionError(
                f"{name}: no common version (broker v{theirs[0]}-{theirs[1]}, "
                f"client v{ours[0]}-{ours[1]}{capped})"
            )
        return hi


def api_versions_version(max_versions: Mapping[int | str, int] | None) -> int:
    """The ApiVersions version a client opens with: its highest, unless capped."""
    hi = SUPPORTED[API_VERSIONS][1]
    for key, cap in (max_versions or {}).items():
        if api_key_of(key) == API_VERSIONS:
            hi = min(hi, cap)
    return hi


def api_versions_body() -> dict[str, Any]:
    return {"client_software_name": "edplog", "client_software_version": _software_version()}


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edplog")
    except PackageNotFoundError:
        return "0"


def broker_ranges(body: dict[str, Any]) -> dict[int, tuple[int, int]]:
    return {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"] or ()}


@dataclass(slots=True)
class Pending:
    """A request on the wire whose response has not been read yet."""

    correlation_id: int
    api_key: int
    api_version: int
    #: ``time.monotonic()`` by which the response must be complete (blocking client).
    deadline: float = 0.0
    #: The future the asyncio client's reader completes with the frame.
    future: Any = None
    #: A :class:`~edplog.client.ReceiveBuffer` the response is read into (asyncio client).
    buffer: Any = None


@dataclass(slots=True)
class Wire:
    """Correlation ids and the responses still owed, oldest first.

    Kafka answers the requests of one connection in the order they were sent, so the next
    frame always belongs to the oldest pending request; a different correlation id means the
    stream is out of step and the connection must end.
    """

    client_id: str | None = DEFAULT_CLIENT_ID
    pending: deque[Pending] = field(default_factory=deque)
    _last_id: int = 0

    @property
    def last_id(self) -> int:
        """The correlation id of the request encoded last."""
        return self._last_id

    def next_id(self) -> int:
        self._last_id = self._last_id + 1 if self._last_id < MAX_CORRELATION_ID else 1
        return self._last_id

    def encode(
        self, api_key: int, version: int, body: dict[str, Any], expect_response: bool = True
    ) -> tuple[bytes, Pending | None]:
        """The request frame and, when a response will come, its :class:`Pending` entry
        (already queued). Produce with ``acks=0`` gets no response from Kafka."""
        cid = self.next_id()
        frame = encode_request(api_key, version, cid, self.client_id, body)
        if not expect_response:
            return frame, None
        entry = Pending(cid, api_key, version)
        self.pending.append(entry)
        return frame, entry

    def match(self, frame: memoryview) -> Pending:
        """The pending request ``frame`` answers (removed from the queue)."""
        if not self.pending:
            raise ProtocolError("the broker sent a response to no request")
        if len(frame) < 4:
            raise ProtocolError("response frame shorter than its header")
        (cid,) = _SIZE.unpack_from(frame, 0)
        entry = self.pending.popleft()
        if cid != entry.correlation_id:
            raise ProtocolError(
                f"response correlation id {cid} does not match the oldest request's "
                f"({entry.correlation_id}, {api_name(entry.api_key)})"
            )
        return entry


def expects_response(api_key: int, body: dict[str, Any]) -> bool:
    return not (api_key == PRODUCE and body.get("acks") == 0)


def decode(api_key: int, version: int, frame: memoryview) -> dict[str, Any]:
    """Decode a response body; an ApiVersions refusal is read in v0, as Kafka sends it."""
    if (
        api_key == API_VERSIONS
        and version > 0
        and len(frame) >= 6
        and _I16.unpack_from(frame, 4)[0] == UNSUPPORTED_VERSION
    ):
        version = 0
    return decode_response(api_key, version, frame)[1]


def frame_size(header: bytes | bytearray | memoryview, limit: int) -> int:
    """The size in a response's 4-byte prefix, checked against ``limit``."""
    (size,) = _SIZE.unpack_from(header, 0)
    if size < 4 or size > limit:
        raise ProtocolError(f"response frame size {size} outside 4..{limit}")
    return int(size)
