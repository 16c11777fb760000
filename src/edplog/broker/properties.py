"""Which Kafka broker properties edplog honours, and what happens to the others.

A ``server.properties`` written for Apache Kafka must never start a broker that silently does
less than it says: SASL, an authorizer, a TLS setting or a ZooKeeper setting that edplog does
not serve yet stops the start with a message naming the property (:class:`InvalidConfigError`);
they are implemented by later work behind the same names. Properties that only tune Kafka's
own threads and buffers, and have no effect on what a client sees, are accepted (listed in
``NO_EFFECT``). Any other name is not a Kafka broker property edplog knows: it gets a warning
naming it (a typo must not pass unnoticed), and the broker starts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..config import BROKER_DEFAULTS
from ..errors import InvalidConfigError
from ..security.audit_settings import AUDIT_PROPERTIES
from ..security.groups import GROUP_PROPERTIES
from ..security.oauth import SETTINGS as OAUTH_SETTINGS
from ..security.sasl import MECHANISMS as SASL_MECHANISMS
from ..security.tls import SSL_PROPERTIES
from .zookeeper_settings import PROPERTIES as ZOOKEEPER_PROPERTIES

log = logging.getLogger("edplog.broker")

#: Properties edplog reads (BrokerConfig.apply_properties); prefixes end with ".".
HONOURED = (
    frozenset(
        {
            "log.dirs",
            "log.dir",
            "listeners",
            "advertised.listeners",
            "broker.id",
            "node.id",
            "cluster.id",
            "num.partitions",
            "default.replication.factor",
            "auto.create.topics.enable",
            "socket.request.max.bytes",
            "message.max.bytes",
            "transaction.max.timeout.ms",
            "queued.max.request.bytes",
            "connections.max.idle.ms",
            "connection.failed.authentication.delay.ms",
            "sasl.server.max.receive.size",
            "max.connections",
            "max.connections.per.ip",
            "max.connections.per.ip.overrides",
            "group.min.session.timeout.ms",
            "group.max.session.timeout.ms",
            "group.initial.rebalance.delay.ms",
            "group.consumer.session.timeout.ms",
            "group.consumer.min.session.timeout.ms",
            "group.consumer.max.session.timeout.ms",
            "group.consumer.heartbeat.interval.ms",
            "group.consumer.min.heartbeat.interval.ms",
            "group.consumer.max.heartbeat.interval.ms",
            "group.consumer.assignors",
            "group.consumer.migration.policy",
            "group.consumer.max.size",
            "group.coordinator.rebalance.protocols",
            "offset.metadata.max.bytes",
            "offsets.topic.num.partitions",
            "log.retention.check.interval.ms",
            "producer.id.expiration.ms",
            "log.cleaner.enable",
            "log.cleaner.dedupe.buffer.size",
            "log.accept.missing.segments",
            "replica.alter.log.dirs.io.max.bytes.per.second",
            "max.incremental.fetch.session.cache.slots",
            "min.incremental.fetch.session.eviction.ms",
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
            "log.roll.ms",
            "log.roll.hours",
            "quota.window.num",
            "quota.window.size.seconds",
            # Kafka's single-node KRaft settings, read for what a single node needs of them.
            "process.roles",
            "controller.quorum.voters",
            "controller.quorum.bootstrap.servers",
            "controller.listener.names",
            "inter.broker.listener.name",
            "sasl.mechanism.inter.broker.protocol",
            "listener.security.protocol.map",
            "security.inter.broker.protocol",
            # Clusters (docs/cluster.md).
            "zookeeper.connect",
            "zookeeper.session.timeout.ms",
            "zookeeper.connection.timeout.ms",
            "broker.rack",
            "unclean.leader.election.enable",
            "replica.lag.time.max.ms",
            "replica.fetch.max.bytes",
            "replica.fetch.response.max.bytes",
            "replica.fetch.wait.max.ms",
            "replica.fetch.min.bytes",
            "replica.fetch.backoff.ms",
            "replica.socket.timeout.ms",
            "controlled.shutdown.enable",
            "auto.leader.rebalance.enable",
            "leader.imbalance.check.interval.seconds",
            "leader.imbalance.per.broker.percentage",
            "offsets.topic.replication.factor",
            # ACLs (docs/security.md).
            "authorizer.class.name",
            "super.users",
            "allow.everyone.if.no.acl.found",
            # Roles and groups (docs/security.md, "Roles").
            *GROUP_PROPERTIES,
            # The audit log (docs/security.md, "Audit log").
            *AUDIT_PROPERTIES,
        }
    )
    | ZOOKEEPER_PROPERTIES
)  # TLS to ZooKeeper and znode ACLs

#: Kafka properties that tune Kafka's own machinery (threads, buffers, replication of
#: internal topics on a single node, timers of parts edplog does differently) and change
#: nothing a client can observe: accepted without effect.
NO_EFFECT = frozenset(
    {
        "num.network.threads",
        "num.io.threads",
        "num.recovery.threads.per.data.dir",
        "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes",
        "socket.listen.backlog.size",
        "queued.max.requests",
        "background.threads",
        "log.cleaner.threads",
        "log.cleaner.io.buffer.size",
        "log.cleaner.io.buffer.load.factor",
        "log.cleaner.io.max.bytes.per.second",
        "log.cleaner.backoff.ms",
        "log.flush.offset.checkpoint.interval.ms",
        "log.flush.scheduler.interval.ms",
        "log.flush.start.offset.checkpoint.interval.ms",
        "log.segment.delete.delay.ms",
        "offsets.topic.segment.bytes",
        "offsets.load.buffer.size",
        "offsets.commit.timeout.ms",
        "offsets.retention.check.interval.ms",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "transaction.state.log.num.partitions",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "group.coordinator.threads",
        "metadata.log.dir",
        "metadata.log.segment.bytes",
        "metadata.max.retention.bytes",
        "request.timeout.ms",
        # Replication machinery: one fetcher connection per leader carries every partition
        # (num.replica.fetchers); the high watermark is not checkpointed (a new leader
        # starts it from what its followers report, within one fetch).
        "num.replica.fetchers",
        "replica.socket.receive.buffer.bytes",
        "replica.high.watermark.checkpoint.interval.ms",
        "controlled.shutdown.max.retries",
        "controlled.shutdown.retry.backoff.ms",
        "zookeeper.max.in.flight.requests",
    }
)

#: Properties of features edplog does not serve yet: refusing them is the only safe answer
#: (a broker that ignored them would run plaintext, unauthenticated, or alone).
_REFUSED_EXACT = {
    "principal.builder.class": "authentication is not implemented yet",
    "delegation.token.secret.key": "delegation tokens are not implemented",
    "delegation.token.master.key": "delegation tokens are not implemented",
    "client.quota.callback.class": "custom quota callbacks are not implemented (edplog applies "
    "Kafka's built-in user/client-id quotas)",
}
_REFUSED_PREFIXES = {
    "ssl.": "this TLS setting is not implemented (docs/security.md lists the ssl.* settings "
    "that are)",
    "sasl.": "this SASL setting is not implemented (docs/security.md lists the sasl.* "
    "settings that are)",
    "listener.name.": "this per-listener setting is not implemented (only "
    "listener.name.<listener>.ssl.* TLS settings and the SASL settings of docs/security.md "
    "are)",
    "zookeeper.": "this ZooKeeper setting is not implemented (docs/cluster.md lists the "
    "zookeeper.* settings that are; SASL towards ZooKeeper is not, TLS is)",
    "replica.": "this replication setting is not implemented",
    "transactional.id.": "transactions are not implemented yet",
    "remote.log.": "tiered storage is not implemented",
    "confluent.": "Confluent Platform features are not implemented",
    "authorizer.": "this authorizer setting is not implemented (docs/security.md lists the "
    "authorizer.* settings that are)",
}
_SERVED_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: The SASL settings a listener reads (security/sasl.py, security/oauth.py), broker-wide or
#: per listener (``listener.name.<listener>.<setting>``; the mechanism-scoped ones as
#: ``listener.name.<listener>.<mechanism>.<setting>`` as well).
_OAUTH_SETTINGS = frozenset(OAUTH_SETTINGS)
_BROKER_SASL_SETTINGS = frozenset(
    {"sasl.enabled.mechanisms", "connections.max.reauth.ms", *_OAUTH_SETTINGS}
)
_SASL_SETTINGS = frozenset(
    {
        "sasl.enabled.mechanisms",
        "connections.max.reauth.ms",
        "plain.sasl.jaas.config",
        "scram-sha-256.sasl.jaas.config",
        "scram-sha-512.sasl.jaas.config",
        "oauthbearer.sasl.jaas.config",
        "oauthbearer.sasl.server.callback.handler.class",
        *(f"{m.lower()}.connections.max.reauth.ms" for m in SASL_MECHANISMS),
        *_OAUTH_SETTINGS,
        *(f"oauthbearer.{k}" for k in _OAUTH_SETTINGS),
    }
)


def _sasl_setting(name: str) -> bool:
    """A broker-wide SASL setting, or one of the SASL settings per listener
    (``listener.name.<listener>.<setting>``)."""
    if name in _BROKER_SASL_SETTINGS:
        return True
    if name.startswith("listener.name."):
        _, _, rest = name[len("listener.name.") :].partition(".")
        return rest.lower() in _SASL_SETTINGS
    return False


def _tls_setting(name: str) -> bool:
    """``ssl.*`` or ``listener.name.<listener>.ssl.*`` that security/tls.py reads."""
    if name in SSL_PROPERTIES:
        return True
    if name.startswith("listener.name."):
        _, _, rest = name[len("listener.name.") :].partition(".")
        return rest in SSL_PROPERTIES
    return False


def _refusal(name: str) -> str | None:
    if name in HONOURED or _tls_setting(name) or _sasl_setting(name):
        return None  # e.g. replica.alter.log.dirs.io.max.bytes.per.second
    if name in _REFUSED_EXACT:
        return _REFUSED_EXACT[name]
    for prefix, why in _REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            return why
    return None


def listener_items(value: str) -> list[tuple[str, str]]:
    """``NAME://host:port`` items as (listener name, address)."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, address = item.partition("://")
        out.append((name.strip().upper(), address) if sep else ("PLAINTEXT", item))
    return out


def protocol_map(props: Mapping[str, str]) -> dict[str, str]:
    """Listener name -> security protocol (Kafka's four names map to themselves)."""
    mapping = {"PLAINTEXT": "PLAINTEXT", "SSL": "SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT"}
    mapping["SASL_SSL"] = "SASL_SSL"
    for item in props.get("listener.security.protocol.map", "").split(","):
        name, sep, protocol = item.partition(":")
        if sep:
            mapping[name.strip().upper()] = protocol.strip().upper()
    return mapping


def check(props: Mapping[str, str]) -> list[str]:
    """Refuse what cannot be honoured (InvalidConfigError); return the unknown names."""
    unknown = []
    for name in props:
        why = _refusal(name)
        if why is not None:
            raise InvalidConfigError(f"{name}: {why}; remove it to start a broker without it")
        if (
            name in HONOURED
            or name in NO_EFFECT
            or name in BROKER_DEFAULTS
            or _tls_setting(name)
            or _sasl_setting(name)
        ):
            continue
        unknown.append(name)
    _check_listeners(props)
    _check_kraft(props)
    return unknown


def _check_listeners(props: Mapping[str, str]) -> None:
    mapping = protocol_map(props)
    controller = {n.strip().upper() for n in props.get("controller.listener.names", "").split(",")}
    serving: dict[str, str] = {}
    for key in ("listeners", "advertised.listeners"):
        for name, _ in listener_items(props.get(key, "")):
            protocol = mapping.get(name)
            if protocol is None:
                raise InvalidConfigError(
                    f"{key}: listener {name} has no security protocol "
                    "(listener.security.protocol.map)"
                )
            if name in controller:
                continue  # a single node is its own controller: no controller traffic
            if protocol not in _SERVED_PROTOCOLS:
                raise InvalidConfigError(
                    f"listener.security.protocol.map: {name}:{protocol} is not a security "
                    "protocol (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
                )
            if key == "listeners":
                serving[name] = protocol
    inter = props.get("security.inter.broker.protocol", "PLAINTEXT").strip().upper()
    if inter not in _SERVED_PROTOCOLS:
        raise InvalidConfigError(
            f"security.inter.broker.protocol={inter}: expected one of "
            f"{', '.join(_SERVED_PROTOCOLS)}"
        )
    inter_name = props.get("inter.broker.listener.name")
    if inter_name is not None and serving:
        name = inter_name.strip().upper()
        if name not in serving:
            raise InvalidConfigError(
                f"inter.broker.listener.name={inter_name} is not a listener of this broker "
                f"({', '.join(serving)})"
            )


def _check_kraft(props: Mapping[str, str]) -> None:
    roles = {r.strip() for r in props.get("process.roles", "").split(",") if r.strip()}
    if roles and "broker" not in roles:
        raise InvalidConfigError(
            f"process.roles={props['process.roles']}: a controller-only node is not served; "
            "edplog runs a broker (which is its own controller on a single node)"
        )
    for key in ("controller.quorum.voters", "controller.quorum.bootstrap.servers"):
        voters = [v for v in props.get(key, "").split(",") if v.strip()]
        if len(voters) > 1:
            raise InvalidConfigError(
                f"{key}: a KRaft quorum of {len(voters)} nodes is not served; edplog runs one "
                "node (its clusters will use ZooKeeper)"
            )


def warn_unknown(names: list[str]) -> None:
    if names:
        log.warning(
            "unknown properties (ignored; check their spelling): %s", ", ".join(sorted(names))
        )
