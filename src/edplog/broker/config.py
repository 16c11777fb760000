"""Broker configuration under Kafka's own property names.

A ``server.properties`` written for Apache Kafka should mean the same thing here, so the
file is parsed with Java-properties rules and read by Kafka's names (``log.dirs``,
``listeners``, ``num.partitions``, ...). Broker-level log defaults (``log.segment.bytes``)
are translated to the topic-level names (``segment.bytes``) the store understands, exactly
as Kafka derives a topic's effective config from the broker's ``log.*`` settings.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..config import BROKER_DEFAULTS
from ..errors import InvalidConfigError

# broker property -> topic-level property it provides the default for (Kafka's LogConfig);
# the table is the store's, so both read server.properties alike.
TOPIC_DEFAULTS_FROM_BROKER = BROKER_DEFAULTS
# Units of the coarse retention/roll properties (``log.retention.hours`` ...), read below;
# the finest one given wins, and -1 ("unlimited") stays -1, as in Kafka.
_UNIT_MS = {"ms": 1, "minutes": 60_000, "hours": 3_600_000}
# Kafka's "unlimited" for max.connections and max.connections.per.ip (Integer.MAX_VALUE).
UNLIMITED_CONNECTIONS = 2_147_483_647
# queued.max.request.bytes: Kafka's default is -1 (no limit), under which 20 clients that each
# announce a 100 MiB request can make a broker hold 2 GiB. 256 MiB holds two maximal requests
# (socket.request.max.bytes, 100 MiB) with room for everyone else's small ones, which keeps
# one large request from ever waiting for memory that only its own completion would free.
DEFAULT_QUEUED_MAX_REQUEST_BYTES = 256 * 1024 * 1024


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


def parse_listener(value: str) -> tuple[str, int]:
    """``PLAINTEXT://host:port`` (the first of a comma list) or ``host:port`` -> (host, port).

    An empty host means every interface, as in Kafka (``PLAINTEXT://:9092``)."""
    first = value.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, sep, port = first.rpartition(":")
    if not sep:
        raise ValueError(f"listener {value!r} has no port")
    host = host.strip("[]")
    return (host or "0.0.0.0"), int(port)


def _bool(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes", "on")


@dataclass
class BrokerConfig:
    """What one broker needs to start: where, as whom, and the limits it enforces."""

    data_dir: str = "./edplog-data"
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    advertised_port: int | None = None
    node_id: int = 0
    cluster_id: str = field(default_factory=lambda: "edplog-" + uuid.uuid4().hex[:16])
    num_partitions: int = 1
    default_replication_factor: int = 1
    auto_create_topics: bool = True
    message_max_bytes: int = 1_048_588
    socket_request_max_bytes: int = 104_857_600
    transaction_max_timeout_ms: int = 900_000
    # Connections: Kafka's names, Kafka's defaults except queued.max.request.bytes (bounded).
    queued_max_request_bytes: int = DEFAULT_QUEUED_MAX_REQUEST_BYTES
    connections_max_idle_ms: int = 600_000
    max_connections: int = UNLIMITED_CONNECTIONS
    max_connections_per_ip: int = UNLIMITED_CONNECTIONS
    max_connections_per_ip_overrides: dict[str, int] = field(default_factory=dict)
    # acks=-1 is answered only after the log is flushed to disk (group commit).
    flush_on_acks_all: bool = True
    topic_defaults: dict[str, str] = field(default_factory=dict)
    group_settings: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def advertised(self) -> tuple[str, int]:
        """The (host, port) clients are told to connect to."""
        host = self.advertised_host or self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return host, self.advertised_port or self.port

    def max_connections_from(self, host: str) -> int:
        """``max.connections.per.ip`` for ``host``, after its override if it has one."""
        return self.max_connections_per_ip_overrides.get(host, self.max_connections_per_ip)

    @classmethod
    def from_properties(cls, props: dict[str, str], **overrides: object) -> BrokerConfig:
        """Build a config from Kafka broker properties; keyword overrides win (CLI flags)."""
        cfg = cls()
        cfg.apply_properties(props)
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg

    def apply_properties(self, props: dict[str, str]) -> None:
        """Read every property this broker understands; keep the rest in ``extra``."""
        retention: dict[str, int] = {}
        roll: dict[str, int] = {}
        for key, value in props.items():
            if key in ("log.dirs", "log.dir"):
                self.data_dir = value.split(",")[0].strip()
            elif key == "listeners":
                self.host, self.port = parse_listener(value)
            elif key == "advertised.listeners":
                self.advertised_host, self.advertised_port = parse_listener(value)
            elif key in ("broker.id", "node.id"):
                self.node_id = int(value)
            elif key == "cluster.id":
                self.cluster_id = value
            elif key == "num.partitions":
                self.num_partitions = int(value)
            elif key == "default.replication.factor":
                self.default_replication_factor = int(value)
            elif key == "auto.create.topics.enable":
                self.auto_create_topics = _bool(value)
            elif key == "socket.request.max.bytes":
                self.socket_request_max_bytes = int(value)
            elif key == "transaction.max.timeout.ms":
                self.transaction_max_timeout_ms = int(value)
            elif key in _CONNECTION_PROPERTIES:
                self._apply_connection_property(key, value)
            elif key.startswith("group."):
                self.group_settings[key] = value
            elif key.count(".") == 2 and key.startswith("log.retention."):
                if key.rsplit(".", 1)[1] not in _UNIT_MS:
                    self.extra[key] = value  # log.retention.bytes and friends
                    if key in TOPIC_DEFAULTS_FROM_BROKER:
                        self.topic_defaults[TOPIC_DEFAULTS_FROM_BROKER[key]] = value
                    continue
                retention[key.rsplit(".", 1)[1]] = int(value)
                continue
            elif key.count(".") == 2 and key.startswith("log.roll."):
                roll[key.rsplit(".", 1)[1]] = int(value)
                continue
            else:
                self.extra[key] = value
            if key == "message.max.bytes":
                self.message_max_bytes = int(value)
            if key in TOPIC_DEFAULTS_FROM_BROKER:
                self.topic_defaults[TOPIC_DEFAULTS_FROM_BROKER[key]] = value
        for target, values in (("retention.ms", retention), ("segment.ms", roll)):
            for unit in ("ms", "minutes", "hours"):
                if unit in values:
                    ms = values[unit] if values[unit] < 0 else values[unit] * _UNIT_MS[unit]
                    self.topic_defaults[target] = str(ms)
                    break

    def _apply_connection_property(self, key: str, value: str) -> None:
        """Read one connection property; a value this broker cannot honour is refused."""
        if key == "max.connections.per.ip.overrides":
            self.max_connections_per_ip_overrides = _parse_ip_overrides(value)
            return
        number = _integer(key, value)
        if key == "queued.max.request.bytes":
            if number == 0 or number < -1:
                raise InvalidConfigError(f"{key}={value}: must be -1 (no limit) or positive")
            self.queued_max_request_bytes = number
        elif key == "connections.max.idle.ms":
            self.connections_max_idle_ms = number  # negative: never close idle connections
        elif number < 0:
            raise InvalidConfigError(f"{key}={value}: must be 0 or more")
        elif key == "max.connections":
            self.max_connections = number
        else:
            self.max_connections_per_ip = number

    def store_defaults(self) -> dict[str, str]:
        """Topic-level defaults for the store, with ``max.message.bytes`` always set."""
        defaults = dict(self.topic_defaults)
        defaults.setdefault("max.message.bytes", str(self.message_max_bytes))
        return defaults


_CONNECTION_PROPERTIES = frozenset(
    {
        "queued.max.request.bytes",
        "connections.max.idle.ms",
        "max.connections",
        "max.connections.per.ip",
        "max.connections.per.ip.overrides",
    }
)


def _integer(key: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidConfigError(f"{key}={value!r}: not an integer") from None


def _parse_ip_overrides(value: str) -> dict[str, int]:
    """Kafka's ``host:count,host:count`` list. Only IP addresses are honoured: a host name
    would have to be resolved (and re-resolved) to match a peer, so it is refused."""
    overrides: dict[str, int] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        if not sep:
            raise InvalidConfigError(f"max.connections.per.ip.overrides: {item!r} is not IP:COUNT")
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise InvalidConfigError(
                f"max.connections.per.ip.overrides: {host!r} is not an IP address "
                "(host names are not supported)"
            ) from None
        number = _integer("max.connections.per.ip.overrides", count)
        if number < 0:
            raise InvalidConfigError(f"max.connections.per.ip.overrides: {item!r} is negative")
        overrides[str(address)] = number
    return overrides


def load_config(path: str | Path | None, **overrides: object) -> BrokerConfig:
    """Read ``server.properties`` (when given) and apply command-line overrides."""
    props = parse_properties(Path(path).read_text()) if path else {}
    return BrokerConfig.from_properties(props, **overrides)
