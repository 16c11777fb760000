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
    Property("segment.bytes", "int", 1 << 30, 14, doc="Roll to a new segment file past this size."),
    Property(
        "segment.ms", "long", 7 * 86_400_000, 1, doc="Roll to a new segment once it is this old."
    ),
    Property(
        "segment.index.bytes",
        "int",
        10 * 1024 * 1024,
        8,
        doc="Size preallocated for each segment's offset and time indexes.",
    ),
    Property(
        "segment.jitter.ms",
        "long",
        0,
        0,
        doc="Random delay subtracted from segment.ms, so that logs do not all roll at once.",
    ),
    Property(
        "index.interval.bytes",
        "int",
        4096,
        0,
        doc="Log bytes written between two entries of the sparse indexes.",
    ),
    Property(
        "retention.ms",
        "long",
        7 * 86_400_000,
        -1,
        doc="Delete segments whose newest record is older than this; -1 keeps them forever.",
    ),
    Property(
        "retention.bytes",
        "long",
        -1,
        -1,
        doc="Delete the oldest segments while a partition is above this size; -1: no limit.",
    ),
    Property(
        "cleanup.policy",
        "list",
        "delete",
        choices=("delete", "compact"),
        doc="delete: drop old segments; compact: keep the latest record of each key.",
    ),
    Property(
        "delete.retention.ms",
        "long",
        86_400_000,
        0,
        doc="How long a compacted log keeps tombstones after cleaning reaches them.",
    ),
    Property(
        "min.compaction.lag.ms",
        "long",
        0,
        0,
        doc="Records younger than this are never compacted away.",
    ),
    Property(
        "max.compaction.lag.ms",
        "long",
        LONG_MAX,
        1,
        doc="A record older than this makes its segment due for compaction.",
    ),
    Property(
        "min.cleanable.dirty.ratio",
        "float",
        0.5,
        0,
        doc="Compact once this share of the log is not yet compacted.",
    ),
    Property(
        "flush.messages",
        "long",
        LONG_MAX,
        1,
        doc="Force the log to disk after this many records.",
    ),
    Property(
        "flush.ms", "long", LONG_MAX, 0, doc="Force the log to disk when unflushed this long."
    ),
    Property(
        "max.message.bytes",
        "int",
        1048588,
        0,
        doc="Largest record batch accepted, after compression.",
    ),
    Property(
        "message.timestamp.type",
        "str",
        "CreateTime",
        choices=("CreateTime", "LogAppendTime"),
        doc="Keep the producer's timestamps (CreateTime) or stamp the append time.",
    ),
    Property(
        "message.timestamp.difference.max.ms",
        "long",
        LONG_MAX,
        0,
        doc="Refuse CreateTime records further than this from the broker's clock.",
    ),
    Property(
        "compression.type",
        "str",
        "producer",
        choices=("producer", "uncompressed", "none", "gzip", "snappy", "lz4", "zstd"),
        doc="Codec the log stores; producer keeps whatever the producer sent.",
    ),
    Property(
        "min.insync.replicas",
        "int",
        1,
        1,
        doc="Replicas that must hold a record before acks=all is answered.",
    ),
    Property(
        "unclean.leader.election.enable",
        "bool",
        False,
        doc="Whether a replica outside the ISR may become leader, losing records.",
    ),
    Property(
        "file.delete.delay.ms",
        "long",
        60_000,
        0,
        doc="Wait before removing the files of a deleted segment.",
    ),
    Property("preallocate", "bool", False, doc="Preallocate a new segment's file on disk."),
    Property(
        "message.downconversion.enable",
        "bool",
        True,
        doc="Whether old fetch versions may be served converted records.",
    ),
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


# Kafka's ConfigType codes (DescribeConfigs v3+ config_type) of each property kind.
CONFIG_TYPES: dict[str, int] = {"bool": 1, "str": 2, "int": 3, "long": 5, "float": 6, "list": 7}


@dataclass(frozen=True)
class BrokerProperty:
    """A broker property DescribeConfigs describes: its kind and a one-line description."""

    kind: str
    doc: str


BROKER_PROPERTIES: dict[str, BrokerProperty] = {
    "broker.id": BrokerProperty("int", "This broker's node id."),
    "log.dirs": BrokerProperty("str", "The directory holding every partition's log."),
    "num.partitions": BrokerProperty("int", "Partitions of a topic created without a count."),
    "auto.create.topics.enable": BrokerProperty(
        "bool", "Create a topic when a client asks for its metadata or produces to it."
    ),
    "message.max.bytes": BrokerProperty(
        "int", "Largest record batch a topic accepts unless it sets max.message.bytes."
    ),
    "socket.request.max.bytes": BrokerProperty("int", "Largest request frame read."),
    "default.replication.factor": BrokerProperty(
        "int", "Replicas of a topic created without a replication factor."
    ),
    "log.segment.bytes": BrokerProperty("int", "Default of segment.bytes."),
    "log.roll.ms": BrokerProperty("long", "Default of segment.ms."),
    "log.index.size.max.bytes": BrokerProperty("int", "Default of segment.index.bytes."),
    "log.index.interval.bytes": BrokerProperty("int", "Default of index.interval.bytes."),
    "log.retention.ms": BrokerProperty("long", "Default of retention.ms."),
    "log.retention.bytes": BrokerProperty("long", "Default of retention.bytes."),
    "log.cleanup.policy": BrokerProperty("list", "Default of cleanup.policy."),
    "log.cleaner.delete.retention.ms": BrokerProperty("long", "Default of delete.retention.ms."),
    "log.flush.interval.messages": BrokerProperty("long", "Default of flush.messages."),
    "log.flush.interval.ms": BrokerProperty("long", "Default of flush.ms."),
    "log.message.timestamp.type": BrokerProperty("str", "Default of message.timestamp.type."),
    "compression.type": BrokerProperty("str", "Default of a topic's compression.type."),
    "min.insync.replicas": BrokerProperty("int", "Default of min.insync.replicas."),
    "log.preallocate": BrokerProperty("bool", "Default of preallocate."),
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


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java ``.properties`` text: ``#``/``!`` comments, ``=``/``:`` separators, ``\\``
    line continuations. Enough of the format for every real ``server.properties``."""
    props: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.lstrip() if pending else raw.strip()
        if not pending and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        pending = ""
        line = line.strip()
        if not line:
            continue
        cut = len(line)
        for i, ch in enumerate(line):
            if ch in "=:" or ch.isspace():
                cut = i
                break
        key = line[:cut].strip()
        rest = line[cut:].lstrip()
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip()
        props[key] = rest
    return props
