"""Values for any message version, derived from our schema: a deterministic fully populated
instance and hypothesis strategies, plus the dict our decoder must return for them."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from hypothesis import strategies as st

from edplog.protocol import registry
from edplog.protocol.dsl import Field
from edplog.protocol.registry import APIS

INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
}


def ours_encode(api_key: int, version: int, kind: str, value: dict) -> bytes:
    """``value`` encoded by our generated codec."""
    table = registry.REQUEST_ENCODERS if kind == "request" else registry.RESPONSE_ENCODERS
    parts: list = []
    b = table[(api_key, version)](value, bytearray(), parts)
    return b"".join(bytes(p) for p in [*parts, b])


def ours_decode(api_key: int, version: int, kind: str, data: bytes) -> dict:
    """``data`` decoded by our generated codec, which must use all of it."""
    table = registry.REQUEST_DECODERS if kind == "request" else registry.RESPONSE_DECODERS
    body, end = table[(api_key, version)](memoryview(data), 0, len(data))
    assert end == len(data)
    return body


def fields_of(api_key: int, kind: str) -> list[Field]:
    return getattr(APIS[api_key], kind)


def all_cases() -> list[tuple[int, int, str]]:
    return [
        (key, v, kind)
        for key, api in sorted(APIS.items())
        for v in range(api.min_version, api.max_version + 1)
        for kind in ("request", "response")
    ]


def _scalar(f: Field, n: int) -> Any:
    t = f.type
    if t in INT_RANGES:
        lo, hi = INT_RANGES[t]
        return (n * 7919 + 3) % hi - (n % 3 == 0 and lo < 0) * n
    return {
        "bool": n % 2 == 0,
        "float64": n + 0.5,
        "string": f"s{n}-é",
        "bytes": bytes([n % 256]) * (n % 5 + 1),
        "records": bytes(range(n % 7, n % 7 + 9)),
        "uuid": uuid.UUID(int=n * 0x1234567 + 1),
    }[t]


def populated(fields: list[Field], version: int, counter: Any = None) -> dict:
    """Every field of ``version`` set to a distinct non-default value; arrays of two."""
    counter = counter if counter is not None else itertools.count(1)
    out: dict[str, Any] = {}
    for f in fields:
        if not f.exists(version):
            continue
        if f.kind == "struct":
            out[f.name] = populated(f.fields, version, counter)
        elif f.kind == "structs":
            out[f.name] = [populated(f.fields, version, counter) for _ in range(2)]
        elif f.kind == "array":
            out[f.name] = [_scalar(f, next(counter)) for _ in range(2)]
        else:
            out[f.name] = _scalar(f, next(counter))
    return out


def _value_strategy(f: Field, version: int) -> st.SearchStrategy:
    if f.kind == "struct":
        return strategy(f.fields, version)
    if f.kind == "structs":
        s = st.lists(strategy(f.fields, version), max_size=3)
    elif f.kind == "array":
        s = st.lists(_scalar_strategy(f.type), max_size=3)
    else:
        s = _scalar_strategy(f.type)
    if f.is_nullable(version):
        s = st.none() | s
    return s


def _scalar_strategy(t: str) -> st.SearchStrategy:
    if t in INT_RANGES:
        lo, hi = INT_RANGES[t]
        return st.integers(lo, hi)
    return {
        "bool": st.booleans(),
        "float64": st.floats(allow_nan=False),
        "string": st.text(max_size=6),
        "bytes": st.binary(max_size=8),
        "records": st.binary(max_size=24),
        "uuid": st.uuids(),
    }[t]


def strategy(fields: list[Field], version: int) -> st.SearchStrategy:
    """Dicts holding every non-tagged field of ``version`` and a random subset of tagged ones."""
    required = {f.name: _value_strategy(f, version) for f in fields if f.exists(version)}
    return st.fixed_dictionaries(required)


def drop_default_tags(fields: list[Field], version: int, value: dict) -> dict:
    """Remove tagged fields equal to their default: Kafka does not write those."""
    out = {}
    for f in fields:
        if f.name not in value:
            continue
        v = value[f.name]
        if f.tag is not None and (v is None or v == f.default_value()):
            continue
        if f.kind == "struct" and v is not None:
            v = drop_default_tags(f.fields, version, v)
        elif f.kind == "structs" and v is not None:
            v = [drop_default_tags(f.fields, version, x) for x in v]
        out[f.name] = v
    return out


def expected(fields: list[Field], version: int, flexible: bool, value: dict) -> dict:
    """What our decoder returns for ``value`` encoded at ``version``."""
    out = {}
    for f in fields:
        present = f.exists(version) and (f.tag is None or flexible) and f.name in value
        if not present:
            out[f.name] = f.default_value()
            continue
        v = value[f.name]
        if v is None:
            out[f.name] = None
        elif f.kind == "struct":
            out[f.name] = expected(f.fields, version, flexible, v)
        elif f.kind == "structs":
            out[f.name] = [expected(f.fields, version, flexible, x) for x in v]
        else:
            out[f.name] = v
    return out


def plain(value: Any) -> Any:
    """Decoded value with memoryviews turned into bytes, for comparison."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value
