"""kafka-python's protocol classes as an independent, test-only codec for our messages."""

from __future__ import annotations

import importlib
import uuid
from typing import Any

from kafka.protocol.api_message import ApiMessage
from kafka.protocol.data_container import DataContainer

for _mod in ("admin", "consumer", "metadata", "producer", "sasl"):
    importlib.import_module(f"kafka.protocol.{_mod}")


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


CLASSES: dict[tuple[int, str], type] = {}
for _cls in _all_subclasses(ApiMessage):
    if getattr(_cls, "_class_version", None) is None and getattr(_cls, "_json", None):
        CLASSES[(_cls.API_KEY, _cls.type)] = _cls


def message_class(api_key: int, kind: str) -> type:
    """The kafka-python class of (api_key, "request" | "response")."""
    return CLASSES[(api_key, kind)]


def _data_class(f: Any) -> type:
    if not f.has_data_class() or f.data_class is None:
        f.set_data_class(type(f.type_str, (DataContainer,), {"_struct": f}))
    return f.data_class


def _our_key(f: Any, data: dict) -> str | None:
    """kafka-python renames the *_authorized_operations fields to authorized_operations."""
    if f.name in data:
        return f.name
    if f.name == "authorized_operations":
        return next((k for k in data if k.endswith("authorized_operations")), None)
    return None


def _is_bitfield(f: Any) -> bool:
    return getattr(f, "type_str", "") == "bitfield"


def _int_to_bits(value: int) -> set[int] | None:
    u = value & 0xFFFFFFFF
    bits = {i for i in range(32) if u >> i & 1}
    return None if bits == {31} else bits


def _bits_to_int(bits: set[int] | None) -> int:
    u = sum(1 << i for i in ({31} if bits is None else bits))
    return u - (1 << 32) if u >= 1 << 31 else u


def _to_obj(struct_field: Any, data: dict, version: int, data_class: type) -> Any:
    kwargs = {}
    for f in struct_field._fields:
        key = _our_key(f, data)
        if not f.for_version_q(version) or key is None:
            continue
        value = data[key]
        if _is_bitfield(f):
            value = _int_to_bits(value)
        elif f.is_struct_array() and value is not None:
            value = [_to_obj(f, item, version, _data_class(f)) for item in value]
        elif f.is_struct() and value is not None:
            value = _to_obj(f, value, version, _data_class(f))
        elif isinstance(value, memoryview):
            value = bytes(value)
        kwargs[f.name] = value
    return data_class(version=version, **kwargs)


def encode_body(api_key: int, kind: str, version: int, data: dict) -> bytes:
    """kafka-python's encoding of a message body (no header, no size prefix)."""
    cls = message_class(api_key, kind)
    obj = _to_obj(cls._struct, data, version, cls)
    return bytes(obj.encode(version=version))


def _to_dict(struct_field: Any, obj: Any, version: int) -> dict:
    out = {}
    for f in struct_field._fields:
        if not f.for_version_q(version):
            continue
        value = getattr(obj, f.name)
        if _is_bitfield(f):
            value = _bits_to_int(value)
        if f.is_struct_array() and value is not None:
            value = [_to_dict(f, item, version) for item in value]
        elif f.is_struct() and value is not None:
            value = _to_dict(f, value, version)
        elif isinstance(value, memoryview | bytearray):
            value = bytes(value)
        out[f.name] = value
    return out


def decode_body(api_key: int, kind: str, version: int, data: bytes) -> dict:
    """kafka-python's decoding of a message body, as a dict of the fields in ``version``."""
    cls = message_class(api_key, kind)
    obj = cls.decode(data, version=version)
    return _to_dict(cls._struct, obj, version)


def field_names(api_key: int, kind: str) -> set[str]:
    """Top-level field names kafka-python knows for the message."""
    return {f.name for f in message_class(api_key, kind)._struct._fields}


__all__ = ["decode_body", "encode_body", "field_names", "message_class", "uuid"]
