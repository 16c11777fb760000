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

from ..config import BROKER_DEFAULTS, LogConfig, parse_properties
from ..errors import EdplogError, InvalidConfigError
from ..security import secrets
from ..security.acl import AUTHORIZER_CLASS_NAMES, parse_super_users
from ..security.audit_settings import AuditError, AuditSettings
from ..security.groups import GroupSettings
from ..security.tls import TlsSettings
from . import properties
from .listeners import (
    InterBroker,
    ListenerConfig,
    client_listener,
    client_listeners,
    inter_broker,
)
from .zookeeper_settings import PROPERTIES as ZOOKEEPER_SECURITY
from .zookeeper_settings import zookeeper_security

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


@dataclass
class BrokerConfig:
    """What one broker needs to start: where, as whom, and the limits it enforces."""

    data_dir: str = "./edplog-data"
    # Every log dir (``log.dirs``), data_dir first; empty: data_dir alone.
    log_dirs: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    advertised_port: int | None = None
    node_id: int = 0
    cluster_id: str = field(default_factory=lambda: "edplog-" + uuid.uuid4().hex[:16])
    # Whether cluster.id was set (else the one the log dirs record is used).
    cluster_id_configured: bool = False
    num_partitions: int = 1
    default_replication_factor: int = 1
    auto_create_topics: bool = True
    message_max_bytes: int = 1_048_588
    socket_request_max_bytes: int = 104_857_600
    transaction_max_timeout_ms: int = 900_000
    # Connections: Kafka's names, Kafka's defaults except queued.max.request.bytes (bounded).
    queued_max_request_bytes: int = DEFAULT_QUEUED_MAX_REQUEST_BYTES
    connections_max_idle_ms: int = 600_000
    # The wait before a failed login's answer (security/sasl.py FailedLogins).
    connection_failed_authentication_delay_ms: int = 100
    # The largest request a connection may send before it has logged in (Kafka's default).
    sasl_server_max_receive_size: int = 524_288
    max_connections: int = UNLIMITED_CONNECTIONS
    max_connections_per_ip: int = UNLIMITED_CONNECTIONS
    max_connections_per_ip_overrides: dict[str, int] = field(default_factory=dict)
    # Housekeeping, with Kafka's names and defaults.
    retention_check_interval_ms: int = 300_000
    producer_id_expiration_ms: int = 86_400_000
    log_cleaner_enable: bool = True
    log_cleaner_dedupe_buffer_size: int = 128 * 1024 * 1024
    # KIP-227 fetch sessions: cache slots (0 turns sessions off) and how long a session is
    # safe from eviction by a larger or a follower's one after its last use / its creation.
    fetch_session_cache_slots: int = 1000
    fetch_session_eviction_ms: int = 120_000
    # Open a partition whose offsets have a hole (a segment file lost) instead of refusing it.
    accept_missing_segments: bool = False
    # ACLs (security/acl.py): on with authorizer.class.name, Kafka's names and defaults.
    authorizer_enabled: bool = False
    super_users: frozenset[str] = frozenset()
    allow_everyone_if_no_acl_found: bool = False
    # Role bindings' groups (file or LDAP) and reload interval (security/groups.py).
    roles: GroupSettings = field(default_factory=GroupSettings)
    # The audit log (security/audit.py; edplog's own audit.log.* names).
    audit: AuditSettings = field(default_factory=AuditSettings)
    # Bytes per second a move between log dirs (AlterReplicaLogDirs) may copy; 0: no limit.
    replica_alter_log_dirs_io_max_bytes_per_second: int = 0
    # acks=-1 is answered only after the log is flushed to disk (group commit).
    flush_on_acks_all: bool = True
    # Record request metrics, and walk the records of compressed batches before acknowledging
    # them: always on; `edplog perf` turns them off to measure what each costs.
    metrics_enabled: bool = True
    validate_compressed_records: bool = True
    # Client quotas are measured over quota.window.num samples of quota.window.size.seconds.
    quota_window_num: int = 11
    quota_window_size_seconds: int = 1
    # Cluster mode (docs/cluster.md): on when zookeeper.connect is set. Kafka's names and
    # defaults, except the ZooKeeper session (6 s here, 18 s in Kafka: a smaller failover).
    zookeeper_connect: str | None = None
    zookeeper_session_timeout_ms: int = 6_000
    zookeeper_connection_timeout_ms: int = 10_000
    broker_rack: str | None = None
    unclean_leader_election_enable: bool = False
    replica_lag_time_max_ms: int = 30_000
    replica_fetch_max_bytes: int = 1_048_576
    replica_fetch_response_max_bytes: int = 10_485_760
    replica_fetch_wait_max_ms: int = 500
    replica_fetch_min_bytes: int = 1
    replica_fetch_backoff_ms: int = 1_000
    replica_socket_timeout_ms: int = 30_000
    controlled_shutdown_enable: bool = True
    controlled_shutdown_timeout_ms: int = 30_000
    auto_leader_rebalance_enable: bool = True
    leader_imbalance_check_interval_seconds: int = 300
    leader_imbalance_per_broker_percentage: int = 10
    offsets_topic_replication_factor: int = 3
    # The client listeners of ``listeners`` (empty: one PLAINTEXT listener). The first one's
    # address is always ``host``/``port`` above (which --listen and a bound port 0 update).
    listeners: list[ListenerConfig] = field(default_factory=list)
    # The listener brokers replicate over, with its security (cluster mode).
    inter_broker: InterBroker = field(default_factory=InterBroker)
    # TLS to ZooKeeper and ACLs on the znodes this broker creates (zookeeper_settings.py).
    zookeeper_tls: TlsSettings | None = None
    zookeeper_set_acl: bool = False
    # How often TLS listeners look for changed key and trust store files (docs/security.md).
    tls_reload_interval_s: float = 5.0
    # Property names this broker does not know (warned about at start).
    unknown_properties: list[str] = field(default_factory=list)
    topic_defaults: dict[str, str] = field(default_factory=dict)
    group_settings: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    # Properties whose values held ENC[...] or ${provider:...}: answered as sensitive.
    secret_properties: set[str] = field(default_factory=set)

    @property
    def all_log_dirs(self) -> list[str]:
        """Every log dir, the first being data_dir (where the per-broker files live)."""
        if self.log_dirs and self.log_dirs[0] == self.data_dir:
            return list(self.log_dirs)
        return [self.data_dir]

    @property
    def advertised(self) -> tuple[str, int]:
        """The (host, port) clients are told to connect to."""
        host = self.advertised_host or self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return host, self.advertised_port or self.port

    def client_listeners(self) -> list[ListenerConfig]:
        """Every client listener, the first at ``host``/``port``."""
        if not self.listeners:
            first = ListenerConfig("PLAINTEXT", "PLAINTEXT", self.host, self.port)
            return [first]
        first = self.listeners[0]
        first.host, first.port = self.host, self.port
        first.advertised_host, first.advertised_port = self.advertised_host, self.advertised_port
        return list(self.listeners)

    def advertised_for(self, listener: str) -> tuple[str, int]:
        """The (host, port) a client that came on ``listener`` is told to connect to: the
        same listener's address (as Kafka answers Metadata)."""
        for other in self.listeners[1:]:
            if other.name == listener:
                host = other.advertised_host or other.host
                if host in ("0.0.0.0", "::", ""):
                    host = "127.0.0.1"
                return host, other.advertised_port or other.port
        return self.advertised

    def advertised_endpoints(self) -> tuple[tuple[str, str, str, int], ...]:
        """Every client listener as clients are told to reach it: (name, protocol, host,
        port), once they listen (what a clustered broker registers)."""
        return tuple(
            (lc.name, lc.protocol, *self.advertised_for(lc.name)) for lc in self.client_listeners()
        )

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
        """Read every property this broker understands; keep the rest in ``extra``.

        Encrypted values and config-provider references are put in first (every check
        below sees the real values); a configuration error never quotes what was put in."""
        resolved = secrets.resolve(props)
        self.secret_properties |= resolved.sensitive
        try:
            self._apply_properties(resolved.properties)
        except (EdplogError, ValueError) as exc:
            if not resolved.secrets:
                raise
            raise InvalidConfigError(secrets.scrub(str(exc), resolved.secrets)) from None

    def _apply_properties(self, props: dict[str, str]) -> None:
        self.unknown_properties = properties.check(props)
        retention: dict[str, int] = {}
        roll: dict[str, int] = {}
        for key, value in props.items():
            if key in ("log.dirs", "log.dir"):
                if key == "log.dir" and "log.dirs" in props:
                    continue  # Kafka: log.dirs wins over log.dir
                dirs = [d.strip() for d in value.split(",") if d.strip()]
                if not dirs:
                    raise InvalidConfigError(f"{key} is empty")
                if key == "log.dir" and len(dirs) > 1:
                    raise InvalidConfigError("log.dir names one directory: use log.dirs")
                self.data_dir, self.log_dirs = dirs[0], dirs
            elif key == "listeners":
                self.host, self.port = client_listener(key, value, props)
            elif key == "advertised.listeners":
                self.advertised_host, self.advertised_port = client_listener(key, value, props)
            elif key in ("broker.id", "node.id"):
                self.node_id = _integer(key, value, 0)
            elif key == "cluster.id":
                self.cluster_id = value
                self.cluster_id_configured = True
            elif key in _CLUSTER_PROPERTIES:
                self._apply_cluster_property(key, value)
            elif key == "num.partitions":
                self.num_partitions = _integer(key, value, 1)
            elif key == "default.replication.factor":
                self.default_replication_factor = _integer(key, value, 1)
            elif key == "auto.create.topics.enable":
                self.auto_create_topics = _boolean(key, value)
            elif key == "authorizer.class.name":
                self.authorizer_enabled = _authorizer(key, value)
            elif key == "super.users":
                try:
                    self.super_users = parse_super_users(value)
                except ValueError as exc:
                    raise InvalidConfigError(f"{key}: {exc}") from None
            elif key == "allow.everyone.if.no.acl.found":
                self.allow_everyone_if_no_acl_found = _boolean(key, value)
            elif key == "socket.request.max.bytes":
                self.socket_request_max_bytes = _integer(key, value, 1)
            elif key == "transaction.max.timeout.ms":
                self.transaction_max_timeout_ms = _integer(key, value, 1)
            elif key == "log.retention.check.interval.ms":
                self.retention_check_interval_ms = _integer(key, value, 1)
                self.extra[key] = value
            elif key == "producer.id.expiration.ms":
                self.producer_id_expiration_ms = _integer(key, value, 1)
                self.extra[key] = value
            elif key == "log.cleaner.enable":
                self.log_cleaner_enable = _boolean(key, value)
                self.extra[key] = value
            elif key == "log.cleaner.dedupe.buffer.size":
                self.log_cleaner_dedupe_buffer_size = _integer(key, value, 1 << 16)
                self.extra[key] = value
            elif key == "max.incremental.fetch.session.cache.slots":
                self.fetch_session_cache_slots = _integer(key, value, 0)
                self.extra[key] = value
            elif key == "min.incremental.fetch.session.eviction.ms":
                self.fetch_session_eviction_ms = _integer(key, value, 0)
                self.extra[key] = value
            elif key == "log.accept.missing.segments":
                self.accept_missing_segments = _boolean(key, value)
                self.extra[key] = value
            elif key == "replica.alter.log.dirs.io.max.bytes.per.second":
                self.replica_alter_log_dirs_io_max_bytes_per_second = _integer(key, value, 1)
                self.extra[key] = value
            elif key in ("offset.metadata.max.bytes", "offsets.topic.num.partitions"):
                _integer(key, value, 1)
                self.extra[key] = value
            elif key == "quota.window.num":
                self.quota_window_num = _integer(key, value, 1)
                self.extra[key] = value
            elif key == "quota.window.size.seconds":
                self.quota_window_size_seconds = _integer(key, value, 1)
                self.extra[key] = value
            elif key in _CONNECTION_PROPERTIES:
                self._apply_connection_property(key, value)
            elif key in _GROUP_PROPERTIES:
                _integer(key, value, 0)
                self.group_settings[key] = value
            elif key == "group.consumer.assignors":
                names = [n.strip() for n in value.split(",") if n.strip()]
                unknown = [n for n in names if n not in ("uniform", "range")]
                if not names or unknown:
                    raise InvalidConfigError(
                        f"{key}={value!r}: the server-side assignors are uniform and range"
                    )
                self.group_settings[key] = ",".join(names)
            elif key == "group.coordinator.rebalance.protocols":
                protocols = {n.strip().lower() for n in value.split(",") if n.strip()}
                if protocols != {"classic", "consumer"}:
                    raise InvalidConfigError(
                        f"{key}={value!r}: both protocols are always served here; only "
                        "'classic,consumer' is accepted"
                    )
                self.group_settings[key] = "classic,consumer"
            elif key == "group.consumer.migration.policy":
                if value.strip().lower() != "disabled":
                    raise InvalidConfigError(
                        f"{key}={value!r}: online migration of non-empty groups between the "
                        "classic and consumer protocols is not implemented; only 'disabled' is "
                        "accepted (empty groups change type either way, as in Kafka)"
                    )
                self.group_settings[key] = "disabled"
            elif key.count(".") == 2 and key.startswith("log.retention."):
                if key.rsplit(".", 1)[1] not in _UNIT_MS:
                    self.extra[key] = value  # log.retention.bytes and friends
                    if key in TOPIC_DEFAULTS_FROM_BROKER:
                        self.topic_defaults[TOPIC_DEFAULTS_FROM_BROKER[key]] = value
                    continue
                retention[key.rsplit(".", 1)[1]] = _integer(key, value, -1)
                continue
            elif key.count(".") == 2 and key.startswith("log.roll."):
                roll[key.rsplit(".", 1)[1]] = _integer(key, value, 1)
                continue
            else:
                self.extra[key] = value
            if key == "message.max.bytes":
                self.message_max_bytes = _integer(key, value, 0)
            if key in TOPIC_DEFAULTS_FROM_BROKER:
                self.topic_defaults[TOPIC_DEFAULTS_FROM_BROKER[key]] = value
        for target, values in (("retention.ms", retention), ("segment.ms", roll)):
            for unit in ("ms", "minutes", "hours"):
                if unit in values:
                    ms = values[unit] if values[unit] < 0 else values[unit] * _UNIT_MS[unit]
                    self.topic_defaults[target] = str(ms)
                    break
        if "listeners" in props:
            self._apply_listeners(props)
        # A single node reaches no other broker: its inter-broker settings are checked only
        # when given, or when it writes its audit records to a topic (through its own
        # inter-broker listener, as a client of itself).
        if (
            self.zookeeper_connect is not None
            or "inter.broker.listener.name" in props
            or "security.inter.broker.protocol" in props
            or props.get("audit.log.topic", "").strip()
        ):
            self.inter_broker = inter_broker(props, self.listeners)
        try:
            self.roles = GroupSettings.from_properties(props)
        except ValueError as exc:
            raise InvalidConfigError(str(exc)) from None
        if self.roles.configured and not self.authorizer_enabled:
            raise InvalidConfigError(
                f"{min(self.roles.configured)}: roles and groups work with authorizer.class.name"
            )
        try:
            self.audit = AuditSettings.from_properties(props)
        except AuditError as exc:
            raise InvalidConfigError(str(exc)) from None
        if (self.audit.topics_read or self.audit.topics_write) and not self.authorizer_enabled:
            raise InvalidConfigError(
                "audit.log.topics.read/write audit the authorizer's decisions: they need "
                "authorizer.class.name"
            )
        if self.zookeeper_connect is not None:
            self.zookeeper_tls, self.zookeeper_set_acl = zookeeper_security(props)
        elif any(k in ZOOKEEPER_SECURITY for k in props):
            raise InvalidConfigError(
                f"{', '.join(sorted(k for k in props if k in ZOOKEEPER_SECURITY))}: a setting "
                "of the connection to ZooKeeper, which a single node (no zookeeper.connect) "
                "does not have"
            )

    def _apply_cluster_property(self, key: str, value: str) -> None:
        """Read one cluster property (docs/cluster.md)."""
        if key == "zookeeper.connect":
            if not value.strip():
                raise InvalidConfigError("zookeeper.connect is empty")
            self.zookeeper_connect = value.strip()
        elif key == "broker.rack":
            self.broker_rack = value.strip() or None
        elif key in _CLUSTER_BOOLEANS:
            setattr(self, _CLUSTER_BOOLEANS[key], _boolean(key, value))
        else:
            minimum = 0 if key == "replica.fetch.wait.max.ms" else 1
            setattr(self, _CLUSTER_PROPERTIES[key], _integer(key, value, minimum))

    @property
    def clustered(self) -> bool:
        return self.zookeeper_connect is not None

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
        elif key == "connection.failed.authentication.delay.ms":
            self.connection_failed_authentication_delay_ms = number
        elif key == "sasl.server.max.receive.size":
            if number < 1:
                raise InvalidConfigError(f"{key}={value}: must be 1 or more")
            self.sasl_server_max_receive_size = number
        elif key == "max.connections":
            self.max_connections = number
        else:
            self.max_connections_per_ip = number

    def _apply_listeners(self, props: dict[str, str]) -> None:
        """Every client listener (broker/listeners.py), and the first one's advertised
        address as the broker's."""
        self.listeners, first_advertised = client_listeners(props)
        if first_advertised is not None:
            self.advertised_host, self.advertised_port = first_advertised

    def store_defaults(self) -> dict[str, str]:
        """Topic-level defaults for the store, with ``max.message.bytes`` always set.

        Every default is validated here (a bad ``log.segment.bytes`` stops the start with the
        broker property's name), not when the first topic is created."""
        defaults = dict(self.topic_defaults)
        defaults.setdefault("max.message.bytes", str(self.message_max_bytes))
        try:
            LogConfig(defaults=defaults)
        except InvalidConfigError as exc:
            names = [b for b, t in TOPIC_DEFAULTS_FROM_BROKER.items() if t in str(exc)]
            raise InvalidConfigError(f"{' / '.join(names) or 'a log default'}: {exc}") from None
        return defaults


#: Cluster properties -> BrokerConfig attributes.
_CLUSTER_PROPERTIES = {
    "zookeeper.connect": "zookeeper_connect",
    "zookeeper.session.timeout.ms": "zookeeper_session_timeout_ms",
    "zookeeper.connection.timeout.ms": "zookeeper_connection_timeout_ms",
    "broker.rack": "broker_rack",
    "unclean.leader.election.enable": "unclean_leader_election_enable",
    "replica.lag.time.max.ms": "replica_lag_time_max_ms",
    "replica.fetch.max.bytes": "replica_fetch_max_bytes",
    "replica.fetch.response.max.bytes": "replica_fetch_response_max_bytes",
    "replica.fetch.wait.max.ms": "replica_fetch_wait_max_ms",
    "replica.fetch.min.bytes": "replica_fetch_min_bytes",
    "replica.fetch.backoff.ms": "replica_fetch_backoff_ms",
    "replica.socket.timeout.ms": "replica_socket_timeout_ms",
    "controlled.shutdown.enable": "controlled_shutdown_enable",
    "auto.leader.rebalance.enable": "auto_leader_rebalance_enable",
    "leader.imbalance.check.interval.seconds": "leader_imbalance_check_interval_seconds",
    "leader.imbalance.per.broker.percentage": "leader_imbalance_per_broker_percentage",
    "offsets.topic.replication.factor": "offsets_topic_replication_factor",
}
_CLUSTER_BOOLEANS = {
    "unclean.leader.election.enable": "unclean_leader_election_enable",
    "controlled.shutdown.enable": "controlled_shutdown_enable",
    "auto.leader.rebalance.enable": "auto_leader_rebalance_enable",
}

_CONNECTION_PROPERTIES = frozenset(
    {
        "queued.max.request.bytes",
        "connections.max.idle.ms",
        "connection.failed.authentication.delay.ms",
        "sasl.server.max.receive.size",
        "max.connections",
        "max.connections.per.ip",
        "max.connections.per.ip.overrides",
    }
)


_GROUP_PROPERTIES = frozenset(
    {
        "group.min.session.timeout.ms",
        "group.max.session.timeout.ms",
        "group.initial.rebalance.delay.ms",
        "group.consumer.session.timeout.ms",
        "group.consumer.min.session.timeout.ms",
        "group.consumer.max.session.timeout.ms",
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.min.heartbeat.interval.ms",
        "group.consumer.max.heartbeat.interval.ms",
        "group.consumer.max.size",
    }
)


def _integer(key: str, value: str, minimum: int | None = None) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidConfigError(f"{key}={value!r}: not an integer") from None
    if minimum is not None and number < minimum:
        raise InvalidConfigError(f"{key}={value}: must be {minimum} or more")
    return number


def _authorizer(key: str, value: str) -> bool:
    """authorizer.class.name: empty is none; edplog's or Kafka's ACL authorizer is ours."""
    name = value.strip()
    if not name:
        return False
    if name not in AUTHORIZER_CLASS_NAMES:
        known = ", ".join(sorted(AUTHORIZER_CLASS_NAMES))
        raise InvalidConfigError(f"{key}={value!r}: not an authorizer edplog has (one of {known})")
    return True


def _boolean(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise InvalidConfigError(f"{key}={value!r}: expected true or false")
    return text == "true"


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
