"""Topic and log configuration, under Kafka's property names.

A log's configuration is a mapping of Kafka topic-level names (``segment.bytes``,
``retention.ms``, ``cleanup.policy``, ...) to values; keyword aliases with underscores
(``segment_bytes=...``) are accepted wherever a config is. Unknown names and invalid values
raise :class:`~edplog.errors.InvalidConfigError`, as Kafka does. Values are stored as the
strings Kafka would show (``describe configs``) and parsed into typed values here.

The broker-level names that set the defaults of every topic (``log.segment.bytes``,
``log.retention.ms``, ...) are mapped by :data:`BROKER_DEFAULTS`; the broker reads the
coarser-unit forms (``log.retention.hours``) itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidConfigError

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Property:
    name: str
    kind: str  # "int", "long", "bool", "str", "list", "float"
    default: Any
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""


_PROPS = [
    Property("segment.bytes", "int", 1 << 30, 14, doc="roll a new segment past this size"),
    Property("segment.ms", "long", 7 * 86_400_000, 1, doc="roll a segment older than this"),
    Property("segment.index.bytes", "int", 10 * 1024 * 1024, 8, doc="offset index capacity"),
    Property("segment.jitter.ms", "long", 0, 0),
    Property("index.interval.bytes", "int", 4096, 0, doc="log bytes between index entries"),
    Property("retention.ms", "long", 7 * 86_400_000, -1, doc="-1: keep forever"),
    Property("retention.bytes", "long", -1, -1, doc="-1: no size limit"),
    Property("cleanup.policy", "list", "delete", choices=("delete", "compact")),
    Property("delete.retention.ms", "long", 86_400_000, 0, doc="how long tombstones stay"),
    Property("min.compaction.lag.ms", "long", 0, 0),
    Property("max.compaction.lag.ms", "long", LONG_MAX, 1),
    Property("min.cleanable.dirty.ratio", "float", 0.5, 0),
    Property("flush.messages", "long", LONG_MAX, 1, doc="fsync after this many records"),
    Property("flush.ms", "long", LONG_MAX, 0, doc="fsync records older than this"),
    Property("max.message.bytes", "int", 1048588, 0, doc="largest batch accepted"),
    Property(
        "message.timestamp.type", "str", "CreateTime", choices=("CreateTime", "LogAppendTime")
    ),
    Property("message.timestamp.difference.max.ms", "long", LONG_MAX, 0),
    Property(
        "compression.type",
        "str",
        "producer",
        choices=("producer", "uncompressed", "none", "gzip", "snappy", "lz4", "zstd"),
    ),
    Property("min.insync.replicas", "int", 1, 1),
    Property("unclean.leader.election.enable", "bool", False),
    Property("file.delete.delay.ms", "long", 60_000, 0),
    Property("preallocate", "bool", False),
    Property("message.downconversion.enable", "bool", True),
]

TOPIC_PROPERTIES: dict[str, Property] = {p.name: p for p in _PROPS}

# Broker property -> the topic property whose default it sets (Kafka's names).
BROKER_DEFAULTS: dict[str, str] = {
    "log.segment.bytes": "segment.bytes",
    "log.roll.ms": "segment.ms",
    "log.index.size.max.bytes": "segment.index.bytes",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.retention.ms": "retention.ms",
    "log.retention.bytes": "retention.bytes",
    "log.cleanup.policy": "cleanup.policy",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.flush.interval.messages": "flush.messages",
    "log.flush.interval.ms": "flush.ms",
    "message.max.bytes": "max.message.bytes",
    "log.message.timestamp.type": "message.timestamp.type",
    "compression.type": "compression.type",
    "min.insync.replicas": "min.insync.replicas",
    "log.preallocate": "preallocate",
}


def canonical_name(name: str) -> str:
    """The Kafka spelling of a property name (underscores allowed).

    Raises InvalidConfigError for a name that is not a topic property."""
    key = name.replace("_", ".")
    if key not in TOPIC_PROPERTIES:
        raise InvalidConfigError(f"unknown topic config {name!r}")
    return key


def parse_value(name: str, value: Any) -> Any:
    """The typed value of property name; raises InvalidConfigError when it is invalid."""
    prop = TOPIC_PROPERTIES[canonical_name(name)]
    try:
        if prop.kind in ("int", "long"):
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            out: Any = int(value)
            limit = INT_MAX if prop.kind == "int" else LONG_MAX
            if out > limit:
                raise ValueError(f"above {limit}")
        elif prop.kind == "float":
            out = float(value)
        elif prop.kind == "bool":
            if isinstance(value, bool):
                out = value
            elif str(value).lower() in ("true", "false"):
                out = str(value).lower() == "true"
            else:
                raise ValueError("expected true or false")
        elif prop.kind == "list":
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            out = tuple(item.strip() for item in items if str(item).strip())
            if prop.choices and any(item not in prop.choices for item in out):
                raise ValueError(f"expected a list of {', '.join(prop.choices)}")
            if not out:
                raise ValueError("empty list")
        else:
            out = str(value)
            if prop.choices and out not in prop.choices:
                raise ValueError(f"expected one of {', '.join(prop.choices)}")
    except (TypeError, ValueError) as exc:
        raise InvalidConfigError(f"invalid value {value!r} for {prop.name}: {exc}") from None
    if prop.minimum is not None and prop.kind != "list" and out < prop.minimum:
        raise InvalidConfigError(f"invalid value {value!r} for {prop.name}: below {prop.minimum}")
    return out


def to_string(name: str, value: Any) -> str:
    """The string Kafka shows for a typed value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def normalize(config: Mapping[str, Any] | None = None, **aliases: Any) -> dict[str, str]:
    """Validate overrides and return them under canonical names, as strings."""
    merged: dict[str, Any] = dict(config or {})
    merged.update(aliases)
    out: dict[str, str] = {}
    for name, value in merged.items():
        key = canonical_name(name)
        out[key] = to_string(key, parse_value(key, value))
    return out


class LogConfig(dict[str, Any]):
    """Every topic property with its typed value: the defaults overlaid with overrides.

    Attribute access uses underscores: ``config.segment_bytes``.
    """

    def __init__(
        self,
        overrides: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        values = {name: prop.default for name, prop in TOPIC_PROPERTIES.items()}
        for source in (defaults or {}, overrides or {}):
            for name, value in source.items():
                key = canonical_name(name)
                values[key] = parse_value(key, value)
        if isinstance(values["cleanup.policy"], str):
            values["cleanup.policy"] = (values["cleanup.policy"],)
        super().__init__(values)

    def __getattr__(self, attr: str) -> Any:
        try:
            return self[attr.replace("_", ".")]
        except KeyError:
            raise AttributeError(attr) from None

    @property
    def compact(self) -> bool:
        return "compact" in self["cleanup.policy"]

    @property
    def delete(self) -> bool:
        return "delete" in self["cleanup.policy"]

    def as_strings(self) -> dict[str, str]:
        return {name: to_string(name, value) for name, value in self.items()}
