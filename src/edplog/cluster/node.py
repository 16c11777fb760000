"""This broker as a member of a cluster: its ZooKeeper session, registration, metadata
cache and controller candidacy.

Started off the event loop (every call here blocks on ZooKeeper). The broker's ephemeral
registration carries its endpoint and rack; its czxid is the broker epoch that followers
send in their fetches (KIP-903). A restarted broker may find its previous incarnation's
registration still there until that session expires: it waits for it, as Kafka does. After
a session expiry the registration is made again (a new broker epoch) before the broker leads
or follows anything again; while the session is suspended or lost, ``on_session`` tells the
broker to stop acting as a leader.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from .controller import Controller
from .metadata_cache import Change, MetadataCache
from .waiting import wait_until
from .zk import BROKER_IDS, BrokerIdInUseError, BrokerRegistration, ZkClient

log = logging.getLogger("edplog.cluster")


@dataclass(frozen=True)
class NodeSettings:
    broker_id: int
    host: str
    port: int
    rack: str | None
    zookeeper_connect: str
    session_timeout_ms: int = 6_000
    connection_timeout_ms: int = 10_000
    unclean_leader_election: bool = False
    auto_leader_rebalance: bool = True
    leader_imbalance_check_interval_s: int = 300
    leader_imbalance_percentage: int = 10
    # The local address ZooKeeper connections are made from (the listener's), or None.
    source_host: str | None = None
    # Every listener as clients are told to reach it: (name, security protocol, host, port);
    # empty: one PLAINTEXT listener at host:port. The registration's host and port are the
    # inter-broker listener's.
    endpoints: tuple[tuple[str, str, str, int], ...] = ()
    inter_broker_listener: str = "PLAINTEXT"
    # TLS to ZooKeeper (zookeeper.ssl.*) and ACLs on the znodes this broker creates.
    zookeeper_tls: ssl.SSLContext | None = None
    zookeeper_set_acl: bool = False


class ClusterNode:
    """See the module docstring. ``on_change`` and ``on_session`` are called on ZooKeeper
    threads: the broker marshals them to its event loop."""

    def __init__(
        self,
        settings: NodeSettings,
        on_change: Callable[[Change], None],
        on_session: Callable[[bool], None],
    ) -> None:
        self.settings = settings
        self.zk = ZkClient(
            settings.zookeeper_connect,
            session_timeout_ms=settings.session_timeout_ms,
            connect_timeout_s=settings.connection_timeout_ms / 1000,
            source_host=settings.source_host,
            tls=settings.zookeeper_tls,
            set_acl=settings.zookeeper_set_acl,
        )
        self.cache = MetadataCache(self.zk, on_change)
        self.controller = Controller(
            self.zk,
            settings.broker_id,
            unclean_leader_election=settings.unclean_leader_election,
            auto_leader_rebalance=settings.auto_leader_rebalance,
            leader_imbalance_check_interval_s=settings.leader_imbalance_check_interval_s,
            leader_imbalance_percentage=settings.leader_imbalance_percentage,
        )
        self.on_session = on_session
        self.broker_epoch = -1
        self._registered = threading.Event()
        self._stopping = False

    @property
    def broker_id(self) -> int:
        return self.settings.broker_id

    def registration(self) -> BrokerRegistration:
        s = self.settings
        listeners = s.endpoints or (("PLAINTEXT", "PLAINTEXT", s.host, s.port),)
        host, port = s.host, s.port
        for name, _, ep_host, ep_port in listeners:
            if name == s.inter_broker_listener:
                host, port = ep_host, ep_port
        return BrokerRegistration(
            s.broker_id,
            host,
            port,
            s.rack,
            tuple(f"{name}://{h}:{p}" for name, _, h, p in listeners),
            0,
            tuple((name, protocol) for name, protocol, _, _ in listeners),
        )

    def connect(self, cluster_id: str) -> str:
        """Connect, agree on the cluster id (the first broker's wins) and read the metadata.
        Returns the cluster id."""
        self.zk.start()
        agreed = self.zk.cluster_id(cluster_id)
        self.zk.add_state_listener(self._session_changed)
        self.cache.start()
        return agreed

    def join(self, endpoints: tuple[tuple[str, str, str, int], ...]) -> None:
        """Register with the addresses clients are told, (name, protocol, host, port) per
        listener (once this broker listens), and stand for controller."""
        host, port = endpoints[0][2], endpoints[0][3]
        self.settings = replace(self.settings, host=host, port=port, endpoints=endpoints)
        self._register()
        self.controller.start()

    def _register(self) -> None:
        """Register, waiting (up to two session timeouts) for a previous incarnation's
        registration to expire."""
        refused: list[BrokerIdInUseError] = []

        def registered() -> bool:
            try:
                self.broker_epoch = self.zk.register_broker(self.registration())
            except BrokerIdInUseError as exc:
                refused[:] = [exc]
                return False
            return True

        def waiting() -> None:
            log.info(
                "broker id %d is still registered by a previous session; waiting for it to expire",
                self.broker_id,
            )

        timeout_s = 2 * self.settings.session_timeout_ms / 1000 + 5
        if not wait_until(registered, timeout_s, 0.5, on_wait=waiting):
            raise refused[0]
        self._registered.set()
        log.info("broker %d registered (broker epoch %d)", self.broker_id, self.broker_epoch)

    def _session_changed(self, state: str) -> None:
        if self._stopping:
            return
        if state == "CONNECTED":
            if not self._registered.is_set():
                return
            if not self.zk.owns(f"{BROKER_IDS}/{self.broker_id}"):
                log.warning(
                    "broker %d: ZooKeeper session was lost; registering again", self.broker_id
                )
                try:
                    self._register()
                except Exception:
                    log.exception("broker %d could not register again", self.broker_id)
                    return
            self.on_session(True)
        else:
            log.warning("broker %d: ZooKeeper session %s", self.broker_id, state.lower())
            self.on_session(False)

    def begin_controlled_shutdown(self) -> None:
        self.zk.begin_controlled_shutdown(self.broker_id)

    def stop(self) -> None:
        self._stopping = True
        try:
            self.controller.stop()
        finally:
            self.zk.stop()
