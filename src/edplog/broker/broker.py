"""The broker: builds its services, starts them in order and stops them in reverse.

No request logic lives here. Start: the store (opening and recovering every partition, off the
event loop), the group commit, the replica manager, the group coordinator (replaying
``__consumer_offsets``), the client quotas and SCRAM credentials, the services handlers
see, the dispatch, housekeeping, and last the listener. Stop: long polls released, the
listener closed and in-flight requests answered, then housekeeping, the coordinator, the group
commit, and the store flushed and closed — each step on its own, so a full disk or a failing
partition never keeps the broker from exiting cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from ..cluster.node import ClusterNode, NodeSettings
from ..cluster.registry import ClusterTopicRegistry
from ..errors import ErrorCode, InvalidConfigError, error_name
from ..group import OFFSETS_TOPIC, GroupCoordinator
from ..metrics import BrokerMetrics
from ..protocol import SUPPORTED
from ..security import AllowAll
from ..security.audit import Audit, open_audit
from ..security.audit_settings import AuditError
from ..storage import Store
from ..storage.log_dirs import check_meta, read_meta, split_log_dirs, write_meta
from . import properties
from .acl_store import AclStore
from .api.topics import create_topics_for
from .audit_topic import AuditTopic, TopicLink
from .config import BrokerConfig
from .context import Services
from .dispatch import Dispatcher
from .fetch_session import FetchSessionCache
from .group_commit import GroupCommit
from .housekeeping import run_housekeeping
from .producer_ids import ProducerIdManager
from .quotas import ClientQuotas, CredentialStore, QuotaManager
from .replica_manager import ReplicaManager
from .replication import ReplicationManager
from .role_store import RoleStore, ZkRoleStore
from .server import Server
from .zk_stores import ZkAclStore, ZkCredentialStore
from .zookeeper_settings import zookeeper_context

log = logging.getLogger("edplog.broker")
OFFSET_COMMIT = 8


class Broker:
    """One broker (see the module docstring). ``start()`` returns the bound (host, port)."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.metrics = BrokerMetrics(enabled=config.metrics_enabled)
        self.store: Store | None = None
        self.commit: GroupCommit | None = None
        self.replicas: ReplicaManager | None = None
        self.coordinator: GroupCoordinator | None = None
        self.services: Services | None = None
        self.server: Server | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self.roles: RoleStore | None = None  # role bindings and groups (with ACLs on)
        self.audit: Audit | None = None  # the audit log (audit.log.file)
        self._stopped = False
        # Cluster mode (zookeeper.connect): membership and this broker's replication.
        self.node: ClusterNode | None = None
        self.replication: ReplicationManager | None = None
        # Set when every log dir has failed: whoever runs the broker stops it (Kafka does).
        self.fatal = asyncio.Event()

    async def start(self) -> tuple[str, int]:
        config = self.config
        loop = asyncio.get_running_loop()
        properties.warn_unknown(config.unknown_properties)
        # First: a broker that cannot keep its audit log does not start (nothing to undo).
        if config.audit.enabled:
            source = f"edplog://{socket.gethostname()}/broker/{config.node_id}"
            sink = None
            if config.audit.topic is not None:
                topic, link = config.audit.topic, self._audit_topic_link()

                def sink(key: bytes | None) -> AuditTopic:
                    return AuditTopic(
                        topic,
                        source,
                        link,
                        key=key,
                        queue_records=config.audit.queue_records,
                        on_drop=self.metrics.audit_dropped,
                    )

            try:
                self.audit = await loop.run_in_executor(
                    None, open_audit, config.audit, source, self.metrics.audit_dropped, sink
                )
            except (AuditError, OSError) as exc:
                name = "audit.log.file" if config.audit.file else "audit.log.hmac.key.file"
                raise InvalidConfigError(f"{name}: {exc}") from None
            self.audit.start()
        registry = None
        if config.clustered:
            self.node = await loop.run_in_executor(None, self._connect_cluster)
            registry = ClusterTopicRegistry(
                self.node.zk, self.node.cache, config.node_id, config.default_replication_factor
            )
        offline_dirs = await loop.run_in_executor(None, prepare_log_dirs, config)
        store = await loop.run_in_executor(
            None,
            lambda: Store(
                config.all_log_dirs,
                defaults=config.store_defaults(),
                registry=registry,
                accept_gaps=config.accept_missing_segments,
                offline_dirs=offline_dirs,
                move_bytes_per_second=config.replica_alter_log_dirs_io_max_bytes_per_second,
            ),
        )
        self.store = store
        for (topic, partition), reason in store.offline_partitions().items():
            log.error("partition %s-%d is offline: %s", topic, partition, reason)
        self.commit = GroupCommit(observe=self.metrics.flush)
        self.replicas = ReplicaManager(
            store,
            config.node_id,
            self.commit,
            config.flush_on_acks_all,
            validate_compressed_records=config.validate_compressed_records,
        )
        self.replicas.on_all_dirs_offline = self.fatal.set
        node = self.node
        if node is None:
            self.coordinator = await _start_coordinator(config, store, self.commit)
        else:
            # The coordinator serves the groups of the __consumer_offsets partitions this
            # broker leads: replication tells it when it starts and stops leading one.
            self.replication = ReplicationManager(node, self.replicas, store, config)
            self.coordinator = await _start_coordinator(config, store, self.commit, node)
            assert self.coordinator.leadership is not None
            self.replication.leadership_listeners.append(self.coordinator.leadership.changed)
        quotas = ClientQuotas(config.data_dir)
        # A cluster keeps its SCRAM credentials and ACLs in ZooKeeper, shared by every broker.
        credentials = (
            CredentialStore(config.data_dir)
            if node is None
            else ZkCredentialStore(config.data_dir, node.zk, loop)
        )
        await loop.run_in_executor(None, quotas.load)
        await loop.run_in_executor(None, credentials.load)
        acls: AclStore | None = None
        if config.authorizer_enabled:
            acls = AclStore(config) if node is None else ZkAclStore(config, node.zk, loop)
        if acls is not None:
            await loop.run_in_executor(None, acls.load)
        if acls is not None:
            self.roles = (
                RoleStore(config, acls.authorizer)
                if node is None
                else ZkRoleStore(config, acls.authorizer, node.zk, loop)
            )
            await loop.run_in_executor(None, self.roles.load)
            self.roles.start()
        self.services = Services(
            config=config,
            store=store,
            replicas=self.replicas,
            groups=self.coordinator,
            producer_ids=ProducerIdManager(
                config.data_dir, None if node is None else _producer_id_blocks(node)
            ),
            authorizer=AllowAll() if acls is None else acls.authorizer,
            acls=acls,
            metrics=self.metrics,
            quotas=QuotaManager(
                quotas,
                config.quota_window_num,
                config.quota_window_size_seconds,
                metrics=self.metrics,
            ),
            credentials=credentials,
            fetch_sessions=FetchSessionCache(
                config.fetch_session_cache_slots,
                config.fetch_session_eviction_ms,
                store,
                self.metrics,
            ),
            cluster=node,
            audit=self.audit,
        )
        self.metrics.watch_logs(
            lambda: ((t, p, lg) for (t, p), lg in store.logs().items() if not lg.closed),
            lambda: len(store.offline_partitions()),
        )
        self._housekeeping = loop.create_task(run_housekeeping(store, config))
        self.server = Server(config, Dispatcher(self.services), self.metrics)
        bound = await self.server.start()
        if node is not None and self.replication is not None:
            await loop.run_in_executor(None, node.join, config.advertised_endpoints())
            self.replication.start()
        return bound

    def _audit_topic_link(self) -> TopicLink:
        """How the audit topic's writer reaches the topic: through this broker's
        inter-broker listener, with that listener's security, as another broker would."""
        config = self.config
        inter = config.inter_broker

        def bootstrap() -> str | None:
            if self.server is None or not self.server.listeners or self.services is None:
                return None
            host, port = config.advertised_for(inter.listener)
            return f"{host}:{port}"

        async def create(topic: str) -> str | None:
            if self.services is None:
                return "the broker is starting"
            # One partition (audit_topic.py says why), the default replication factor;
            # records are never compacted away (a compacted chain would lose records).
            request = {
                "topics": [
                    {
                        "name": topic,
                        "num_partitions": 1,
                        "replication_factor": -1,
                        "assignments": [],
                        "configs": [{"name": "cleanup.policy", "value": "delete"}],
                    }
                ],
                "timeout_ms": 30_000,
                "validate_only": False,
            }
            answer = (await create_topics_for(self.services, request))["topics"][0]
            code = answer["error_code"]
            if code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
                return None
            return f"cannot create it: {error_name(code)}: {answer.get('error_message')}"

        security = inter.client_security if inter.tls or inter.sasl_mechanism else None
        local = config.host if config.host not in ("", "0.0.0.0", "::") else None
        return TopicLink(bootstrap, create, security=security, local_host=local)

    async def _controlled_shutdown(self) -> None:
        """Ask the controller to move this broker's leaderships away (and out of the ISRs)
        before it stops, so clients see only a leader change; wait until no partition this
        broker leads has another live in-sync replica to move to, or
        controlled.shutdown.timeout.ms."""
        node = self.node
        assert node is not None and self.replication is not None
        if not self.replication.session_ok:
            log.warning("controlled shutdown skipped: no ZooKeeper session")
            return
        loop = asyncio.get_running_loop()
        timeout_s = self.config.controlled_shutdown_timeout_ms / 1000
        deadline = loop.time() + timeout_s
        await asyncio.wait_for(
            loop.run_in_executor(None, node.begin_controlled_shutdown), timeout_s
        )
        me = self.config.node_id
        while loop.time() < deadline and self.replication.session_ok:
            snap = node.cache.snapshot
            movable = [
                tp
                for tp, st in snap.states.items()
                if st.leader == me and any(r != me and r in snap.brokers for r in st.isr)
            ]
            if not movable:
                log.info("controlled shutdown: broker %d leads nothing movable", me)
                return
            await asyncio.sleep(0.05)
        log.warning("controlled shutdown: leaderships left after the timeout: stopping anyway")

    def _connect_cluster(self) -> ClusterNode:
        """Connect to ZooKeeper and read the cluster's metadata (blocking). The cluster id is
        ZooKeeper's (the first broker's); log dirs that record another one refuse to start."""
        config = self.config
        stored = None
        for path in config.all_log_dirs:
            meta = read_meta(path) if os.path.isdir(path) else None
            if meta and meta.get("cluster.id"):
                stored = meta["cluster.id"]
                break
        proposed = stored or config.cluster_id
        if config.cluster_id_configured:
            proposed = config.cluster_id
        node = ClusterNode(
            NodeSettings(
                broker_id=config.node_id,
                host=config.advertised[0],
                port=config.advertised[1],
                rack=config.broker_rack,
                zookeeper_connect=config.zookeeper_connect or "",
                session_timeout_ms=config.zookeeper_session_timeout_ms,
                connection_timeout_ms=config.zookeeper_connection_timeout_ms,
                unclean_leader_election=config.unclean_leader_election_enable,
                auto_leader_rebalance=config.auto_leader_rebalance_enable,
                leader_imbalance_check_interval_s=config.leader_imbalance_check_interval_seconds,
                leader_imbalance_percentage=config.leader_imbalance_per_broker_percentage,
                source_host=config.host if config.host not in ("", "0.0.0.0", "::") else None,
                inter_broker_listener=config.inter_broker.listener,
                zookeeper_tls=zookeeper_context(config.zookeeper_tls),
                zookeeper_set_acl=config.zookeeper_set_acl,
            ),
            on_change=lambda change: (
                self.replication.changed(change) if self.replication is not None else None
            ),
            on_session=lambda ok: (
                self.replication.session(ok) if self.replication is not None else None
            ),
        )
        agreed = node.connect(proposed)
        if stored is not None and agreed != stored:
            node.stop()
            raise InvalidConfigError(
                f"the log dirs belong to cluster {stored}, but ZooKeeper "
                f"({config.zookeeper_connect}) holds cluster {agreed}: is zookeeper.connect "
                "(and its chroot) right?"
            )
        config.cluster_id = agreed
        config.cluster_id_configured = True
        return node

    @property
    def closing(self) -> bool:
        return self._stopped

    async def stop(self) -> None:
        """Graceful shutdown: release long polls, answer what is in flight, flush, close."""
        if self._stopped:
            return
        self._stopped = True
        if self.audit is not None and self.audit.topic is not None:
            await self.audit.topic.close()  # it writes through this broker's own listener
        if self.replication is not None and self.config.controlled_shutdown_enable:
            try:
                await self._controlled_shutdown()
            except Exception:
                log.exception("controlled shutdown failed; stopping anyway")
        if self.replicas is not None:
            self.replicas.begin_shutdown()
        if self.server is not None:
            await self.server.stop()
        if self.replication is not None:
            await self.replication.stop()
        if self.audit is not None:
            await self.audit.close()
        if self.node is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.node.stop)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.roles is not None:
            await self.roles.stop()
        if self.coordinator is not None:
            try:
                await self.coordinator.close()
            except Exception:
                log.exception("group coordinator did not close cleanly")
        if self.commit is not None:
            await self.commit.close()
        store = self.store
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(None, _close_store, store)


def prepare_log_dirs(config: BrokerConfig) -> dict[str, str]:
    """Create the log dirs and check their ``meta.properties`` against each other and this
    broker (refusing to start when they disagree), adopting the cluster id they record unless
    cluster.id is set; write the file where it is missing. Returns the dirs that cannot be
    used (with the reason): started without them, unless there is only one."""
    dirs = split_log_dirs(config.all_log_dirs)
    offline: dict[str, str] = {}
    found: dict[str, dict[str, str]] = {}
    for path in dirs:
        try:
            os.makedirs(path, exist_ok=True)
            meta = read_meta(path)
        except OSError as exc:
            offline[path] = str(exc)
            continue
        if meta is not None:
            found[path] = meta
    stored = check_meta(
        found, config.cluster_id if config.cluster_id_configured else None, config.node_id
    )
    if stored is not None:
        config.cluster_id = stored
    props = {"version": "0", "cluster.id": config.cluster_id, "broker.id": str(config.node_id)}
    for path in dirs:
        if path in offline or found.get(path) == props:
            continue
        try:
            write_meta(path, props)
        except OSError as exc:
            offline[path] = str(exc)
    if len(offline) == len(dirs):
        if len(dirs) == 1:
            raise InvalidConfigError(f"log dir {dirs[0]} is unusable: {offline[dirs[0]]}")
        raise InvalidConfigError(f"no log dir is usable: {offline}")
    for path, reason in offline.items():
        log.error("log dir %s is unusable at start, starting without it: %s", path, reason)
    return offline


def _producer_id_blocks(node: ClusterNode) -> Any:
    """Producer id blocks reserved in ZooKeeper: (first, end) with end exclusive."""

    def reserve() -> tuple[int, int]:
        first, last = node.zk.allocate_producer_ids(node.broker_id)
        return first, last + 1

    return reserve


def _close_store(store: Store) -> None:
    """Flush and close every log; a partition whose disk failed is logged, the rest close."""
    store.manager.flush()
    store.close()


async def _start_coordinator(
    config: BrokerConfig, store: Store, commit: GroupCommit, node: ClusterNode | None = None
) -> GroupCoordinator:
    """The group coordinator; committed offsets are flushed through the group commit. In a
    cluster (``node``) __consumer_offsets has offsets.topic.num.partitions (Kafka's default,
    50, unless set) and is created at the first FindCoordinator."""
    settings = config.group_settings
    kwargs: dict[str, Any] = {}
    for prop, name in (
        ("group.min.session.timeout.ms", "min_session_timeout_ms"),
        ("group.max.session.timeout.ms", "max_session_timeout_ms"),
        ("group.initial.rebalance.delay.ms", "initial_rebalance_delay_ms"),
    ):
        if prop in settings:
            kwargs[name] = int(settings[prop])
    kwargs.update(_consumer_protocol_settings(settings))
    for prop, name in (
        ("offset.metadata.max.bytes", "offset_metadata_max_bytes"),
        ("offsets.topic.num.partitions", "offsets_topic_partitions"),
    ):
        if prop in config.extra:
            kwargs[name] = int(config.extra[prop])
    # Kafka's rule (consumer-protocol members commit with OffsetCommit v9+) applies once v9
    # is served; until then their member epoch comes in the v8 generation field.
    kwargs["consumer_commit_min_version"] = 9 if SUPPORTED[OFFSET_COMMIT][1] >= 9 else 0
    if node is not None:
        kwargs.setdefault("offsets_topic_partitions", CLUSTER_OFFSETS_PARTITIONS)
        kwargs["create_offsets_topic"] = _offsets_topic_creator(config, store, node)
    coord = GroupCoordinator(store, flush=commit.flush, **kwargs)
    await coord.start()
    return coord


#: offsets.topic.num.partitions in a cluster when not set (Kafka's default).
CLUSTER_OFFSETS_PARTITIONS = 50


def _offsets_topic_creator(
    config: BrokerConfig, store: Store, node: ClusterNode
) -> Callable[[int], None]:
    """Creates __consumer_offsets in ZooKeeper (blocking): compacted, with replication factor
    offsets.topic.replication.factor or the number of live brokers if fewer, placed as any
    topic is (rack-aware, leaders spread). TopicExistsError when another broker was first."""

    def create(partitions: int) -> None:
        registry = store.registry
        assert isinstance(registry, ClusterTopicRegistry)
        live = len(node.cache.snapshot.brokers)
        replication = max(1, min(config.offsets_topic_replication_factor, live))
        topic_config = store.validate_topic_config({"cleanup.policy": "compact"})
        registry.create_assigned(
            OFFSETS_TOPIC, registry.place(partitions, replication), topic_config
        )

    return create


#: Kafka's consumer-protocol timers: property and default, then its min and max bounds.
_CONSUMER_TIMERS = {
    "session": (
        ("group.consumer.session.timeout.ms", 45_000),
        ("group.consumer.min.session.timeout.ms", 45_000),
        ("group.consumer.max.session.timeout.ms", 60_000),
    ),
    "heartbeat": (
        ("group.consumer.heartbeat.interval.ms", 5_000),
        ("group.consumer.min.heartbeat.interval.ms", 5_000),
        ("group.consumer.max.heartbeat.interval.ms", 15_000),
    ),
}


def _consumer_protocol_settings(settings: dict[str, str]) -> dict[str, Any]:
    """The coordinator's consumer-protocol keywords from the group.consumer.* properties,
    checked as Kafka checks them (each within its min/max; heartbeat below session)."""
    values = {}
    for kind, ((prop, default), (lo_prop, lo), (hi_prop, hi)) in _CONSUMER_TIMERS.items():
        lo = int(settings.get(lo_prop, lo))
        hi = int(settings.get(hi_prop, hi))
        value = int(settings.get(prop, default))
        if lo > hi:
            raise InvalidConfigError(f"{lo_prop}={lo} is above {hi_prop}={hi}")
        if not lo <= value <= hi:
            raise InvalidConfigError(
                f"{prop}={value}: must be within [{lo}, {hi}] ({lo_prop}, {hi_prop})"
            )
        values[kind] = value
    if values["heartbeat"] >= values["session"]:
        raise InvalidConfigError(
            "group.consumer.heartbeat.interval.ms must be below group.consumer.session.timeout.ms"
        )
    assignors = settings.get("group.consumer.assignors", "uniform,range").split(",")
    max_size = int(settings.get("group.consumer.max.size", 2**31 - 1))
    if max_size < 1:
        raise InvalidConfigError(f"group.consumer.max.size={max_size}: must be 1 or more")
    return {
        "consumer_max_size": max_size,
        "consumer_session_timeout_ms": values["session"],
        "consumer_heartbeat_interval_ms": values["heartbeat"],
        "consumer_assignors": tuple(assignors),
    }
