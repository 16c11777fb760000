"""The ``kio`` package (dataclasses generated from Kafka's message schemas) as a second
independent, test-only codec, for the APIs kafka-python has no classes for.

Our messages are dicts keyed by Kafka's field names in snake_case; kio's entities use the same
names except that millisecond durations drop their ``_ms`` suffix and become timedeltas. This
module converts between the two and encodes / decodes with kio's own readers and writers.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import io
import typing
from typing import Any

from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i8, i16, i32, i32Timedelta, i64

#: API key -> kio's module name, for the APIs this oracle covers.
MODULES = {
    16: "list_groups",
    43: "elect_leaders",
    45: "alter_partition_reassignments",
    46: "list_partition_reassignments",
    68: "consumer_group_heartbeat",
    69: "consumer_group_describe",
}
_CLASS_NAMES = {
    16: "ListGroups",
    43: "ElectLeaders",
    45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments",
    68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe",
}
_INTS = {"int8": i8, "int16": i16, "int32": i32, "int64": i64}


def message_class(api_key: int, kind: str, version: int) -> type:
    module = importlib.import_module(f"kio.schema.{MODULES[api_key]}.v{version}.{kind}")
    return getattr(module, _CLASS_NAMES[api_key] + kind.capitalize())


def _entity_type(hint: Any) -> type | None:
    """The dataclass inside a hint like ``X``, ``X | None`` or ``tuple[X, ...] | None``."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        found = _entity_type(arg)
        if found is not None:
            return found
    return None


def _ours(f: dataclasses.Field, data: dict) -> str | None:
    for key in (f.name, f.name + "_ms"):
        if key in data:
            return key
    return None


def _scalar_in(kafka_type: str, value: Any) -> Any:
    if value is None:
        return None
    if kafka_type == "timedelta_i32":
        return i32Timedelta.parse(datetime.timedelta(milliseconds=value))
    if kafka_type == "error_code":
        return ErrorCode(value)
    if kafka_type in _INTS:
        return _INTS[kafka_type](value)
    return value


def to_entity(cls: type, data: dict) -> Any:
    """Our dict as a kio entity of ``cls`` (missing fields keep kio's defaults)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = _ours(f, data)
        if key is None:
            continue
        value = data[key]
        nested = _entity_type(hints[f.name])
        if nested is not None and value is not None:
            if isinstance(value, list):
                value = tuple(to_entity(nested, item) for item in value)
            else:
                value = to_entity(nested, value)
        elif isinstance(value, list):
            value = tuple(_scalar_in(f.metadata.get("kafka_type", ""), v) for v in value)
        else:
            value = _scalar_in(f.metadata.get("kafka_type", ""), value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _scalar_out(value: Any) -> Any:
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, ErrorCode):
        return int(value.value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def to_dict(entity: Any) -> dict:
    """A kio entity as a dict keyed by kio's field names (durations as int milliseconds)."""
    out = {}
    for f in dataclasses.fields(entity):
        value = getattr(entity, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = [to_dict(v) if dataclasses.is_dataclass(v) else _scalar_out(v) for v in value]
        else:
            value = _scalar_out(value)
        out[f.name] = value
    return out


def encode_body(api_key: int, kind: str, version: int, data: dict) -> bytes:
    cls = message_class(api_key, kind, version)
    buf = io.BytesIO()
    entity_writer(cls)(buf, to_entity(cls, data))
    return buf.getvalue()


def decode_body(api_key: int, kind: str, version: int, data: bytes) -> dict:
    cls = message_class(api_key, kind, version)
    entity, _ = entity_reader(cls)(memoryview(data), 0)
    return to_dict(entity)


__all__ = ["MODULES", "ErrorCode", "decode_body", "encode_body", "message_class"]
