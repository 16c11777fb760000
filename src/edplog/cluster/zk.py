"""ZooKeeper access for the cluster: znode paths, their JSON encodings, versioned writes.

Everything here is a blocking kazoo call: callers on an asyncio loop use run_in_executor.
The layout is Kafka's ZooKeeper-era one (docs/cluster-internals.md). Two kinds of write exist:

- the controller's, collected in a :class:`FencedOps` and committed as one multi-op that
  starts with ``check(/controller_epoch, version)``, so a controller that lost its session
  (a zombie) cannot change anything once another controller incremented the epoch;
- a partition leader's ISR change (:meth:`ZkClient.update_isr`), a compare-and-set on the
  state znode's version: a leader that lost its leadership holds a stale version.

Watch callbacks run on kazoo's callback thread; state listener callbacks on a thread of this
client (they may call ZooKeeper). Watches are kazoo's DataWatch / ChildrenWatch recipes, which
re-register themselves after a session expiry, so a watcher sees the latest data again.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import KazooState

from ..errors import EdplogError, TopicExistsError, UnknownTopicError

__all__ = [
    "BadVersionError",
    "BrokerIdInUseError",
    "BrokerRegistration",
    "ControllerMovedError",
    "FencedOps",
    "NoNodeError",
    "NodeExistsError",
    "NotEmptyError",
    "PartitionState",
    "TopicAssignment",
    "WatchHandle",
    "ZkClient",
    "decode_topic_id",
    "encode_topic_id",
]

log = logging.getLogger("edplog.cluster")

BROKER_IDS = "/brokers/ids"
BROKER_TOPICS = "/brokers/topics"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
CONFIG_TOPICS = "/config/topics"
DELETE_TOPICS = "/admin/delete_topics"
PREFERRED_ELECTION = "/admin/preferred_replica_election"
REASSIGN_PARTITIONS = "/admin/reassign_partitions"
CONTROLLED_SHUTDOWN = "/admin/controlled_shutdown"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"
CLUSTER_ID = "/cluster/id"

#: Created by start() when missing. /controller_epoch starts at 0: the first controller is 1.
BASE_PATHS = (BROKER_IDS, BROKER_TOPICS, CONFIG_TOPICS, DELETE_TOPICS, CONTROLLED_SHUTDOWN)

#: Bounded retries of read-modify-write loops that lose a race (version changed under us).
CAS_ATTEMPTS = 100

_KNOWN_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})


class ControllerMovedError(EdplogError):
    """A fenced write's controller-epoch check failed: another controller took over."""


class BrokerIdInUseError(EdplogError):
    """Another live session holds /brokers/ids/<id>."""


# ---- data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerRegistration:
    broker_id: int
    host: str
    port: int
    rack: str | None = None
    endpoints: tuple[str, ...] = ()
    epoch: int = 0  # the znode's czxid (KIP-380's broker epoch); 0 when not read from zk


@dataclass(frozen=True)
class PartitionState:
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    version: int = -1  # zk data version of the state znode


@dataclass(frozen=True)
class TopicAssignment:
    topic: str
    topic_id: uuid.UUID
    partitions: dict[int, tuple[int, ...]]
    adding: dict[int, tuple[int, ...]]
    removing: dict[int, tuple[int, ...]]
    version: int = -1


def encode_topic_id(topic_id: uuid.UUID) -> str:
    """Kafka prints a Uuid as 22 characters of url-safe base64 without padding."""
    return base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")


def decode_topic_id(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _load(data: bytes) -> Any:
    return json.loads(data.decode())


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def encode_registration(reg: BrokerRegistration) -> bytes:
    endpoints = list(reg.endpoints) or [f"PLAINTEXT://{reg.host}:{reg.port}"]
    protocols = {}
    for endpoint in endpoints:
        name = endpoint.split("://", 1)[0]
        # A listener named for a protocol uses it; other names are plain text unless the
        # broker's listener.security.protocol.map says otherwise (it registers that name).
        protocols[name] = name if name in _KNOWN_PROTOCOLS else "PLAINTEXT"
    return _json(
        {
            "version": 5,
            "host": reg.host,
            "port": reg.port,
            "endpoints": endpoints,
            "listener_security_protocol_map": protocols,
            "rack": reg.rack,
            "jmx_port": -1,
            "timestamp": _now_ms(),
        }
    )


def decode_registration(broker_id: int, data: bytes, czxid: int) -> BrokerRegistration:
    obj = _load(data)
    return BrokerRegistration(
        broker_id=broker_id,
        host=obj.get("host") or "",
        port=int(obj.get("port") or -1),
        rack=obj.get("rack"),
        endpoints=tuple(obj.get("endpoints") or ()),
        epoch=czxid,
    )


def encode_state(st: PartitionState) -> bytes:
    return _json(
        {
            "controller_epoch": st.controller_epoch,
            "leader": st.leader,
            "version": 1,
            "leader_epoch": st.leader_epoch,
            "isr": list(st.isr),
        }
    )


def decode_state(data: bytes, version: int) -> PartitionState:
    obj = _load(data)
    return PartitionState(
        leader=int(obj["leader"]),
        leader_epoch=int(obj["leader_epoch"]),
        isr=tuple(int(b) for b in obj["isr"]),
        controller_epoch=int(obj["controller_epoch"]),
        version=version,
    )


def _replica_map(obj: Mapping[str, Iterable[int]] | None) -> dict[int, tuple[int, ...]]:
    return {int(p): tuple(int(b) for b in rs) for p, rs in (obj or {}).items()}


def encode_assignment(ta: TopicAssignment) -> bytes:
    def spell(m: Mapping[int, tuple[int, ...]]) -> dict[str, list[int]]:
        return {str(p): list(m[p]) for p in sorted(m)}

    return _json(
        {
            "version": 3,
            "topic_id": encode_topic_id(ta.topic_id),
            "partitions": spell(ta.partitions),
            "adding_replicas": spell(ta.adding),
            "removing_replicas": spell(ta.removing),
        }
    )


def decode_assignment(topic: str, data: bytes, version: int) -> TopicAssignment:
    obj = _load(data)
    raw_id = obj.get("topic_id")
    return TopicAssignment(
        topic=topic,
        # Assignments written before topic ids (version < 3) have none: Kafka's zero Uuid.
        topic_id=decode_topic_id(raw_id) if raw_id else uuid.UUID(int=0),
        partitions=_replica_map(obj.get("partitions")),
        adding=_replica_map(obj.get("adding_replicas")),
        removing=_replica_map(obj.get("removing_replicas")),
        version=version,
    )


def topic_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}"


def state_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}/state"


def config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def _split_chroot(connect: str) -> tuple[str, str]:
    hosts, sep, chroot = connect.partition("/")
    return hosts, ("/" + chroot.rstrip("/")) if sep and chroot.strip("/") else ""


# ---- watches -------------------------------------------------------------------------------


class WatchHandle:
    """A registered watch; cancel() stops it at its next notification (kazoo's recipes stop
    when their function returns False). ``cancelled`` is also set when a watch ended by
    itself (its znode was deleted)."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _safe(cb: Callable[..., None], *args: Any) -> None:
    # An exception in a watcher must not stop kazoo's callback thread or the recipe.
    try:
        cb(*args)
    except Exception:
        log.exception("zookeeper watch callback failed")


# ---- fenced multi-ops ----------------------------------------------------------------------


class FencedOps:
    """Controller writes collected for one multi-op that first checks /controller_epoch."""

    def __init__(self, zk: ZkClient, epoch_zk_version: int) -> None:
        self._zk = zk
        self._txn = zk.kazoo.transaction()
        self._txn.check(CONTROLLER_EPOCH, epoch_zk_version)
        self._count = 0
        self._created: set[str] = set()

    def __len__(self) -> int:
        return self._count

    def create_state(self, topic: str, partition: int, st: PartitionState) -> FencedOps:
        # The parents are created in the same multi-op (not before it): a zombie must not be
        # able to leave empty znodes under a deleted topic. A missing topic znode fails it.
        partitions = f"{topic_path(topic)}/partitions"
        for path in (partitions, f"{partitions}/{partition}"):
            if path not in self._created and self._zk.kazoo.exists(path) is None:
                self._txn.create(path, b"")
                self._created.add(path)
        self._txn.create(state_path(topic, partition), encode_state(st))
        self._count += 1
        return self

    def set_state(self, topic: str, partition: int, st: PartitionState, version: int) -> FencedOps:
        self._txn.set_data(state_path(topic, partition), encode_state(st), version)
        self._count += 1
        return self

    def set_assignment(self, ta: TopicAssignment, version: int) -> FencedOps:
        self._txn.set_data(topic_path(ta.topic), encode_assignment(ta), version)
        self._count += 1
        return self

    def set_json(self, path: str, obj: object, version: int) -> FencedOps:
        """Any znode's JSON (the controller's edits of /admin requests)."""
        self._txn.set_data(path, _json(obj), version)
        self._count += 1
        return self

    def delete(self, path: str, version: int = -1) -> FencedOps:
        self._txn.delete(path, version)
        self._count += 1
        return self

    def delete_topic(self, topic: str) -> FencedOps:
        """The topic's state znodes, partitions, assignment, config and deletion marker. The
        tree is listed now; a znode created under it before commit() fails the multi-op."""
        for path in reversed(self._zk.subtree(topic_path(topic))):
            self._txn.delete(path)
        for path in (config_path(topic), f"{DELETE_TOPICS}/{topic}"):
            if self._zk.kazoo.exists(path) is not None:
                self._txn.delete(path)
        self._count += 1
        return self

    def commit(self) -> None:
        """Run the multi-op. ControllerMovedError when the epoch check failed (nothing was
        written); BadVersionError / NoNodeError / NodeExistsError / NotEmptyError when another
        operation failed (nothing was written either: re-read and retry)."""
        results = self._txn.commit()
        first = results[0] if results else True
        if isinstance(first, (BadVersionError, NoNodeError)):
            raise ControllerMovedError("the controller epoch changed: another controller is active")
        for result in results[1:]:
            if isinstance(result, Exception) and not isinstance(
                result, (RolledBackError, RuntimeInconsistency)
            ):
                raise result


# ---- the client ----------------------------------------------------------------------------


class ZkClient:
    """One ZooKeeper session (kazoo), with edplog's paths and encodings. Thread-safe."""

    def __init__(
        self, connect: str, session_timeout_ms: int = 18000, connect_timeout_s: float = 10
    ) -> None:
        self.connect = connect
        self.hosts, self.chroot = _split_chroot(connect)
        self.session_timeout_ms = session_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self.kazoo = KazooClient(hosts=connect, timeout=session_timeout_ms / 1000)
        self._listeners: list[Callable[[str], None]] = []
        self._states: queue.Queue[str | None] = queue.Queue()
        self._dispatcher: threading.Thread | None = None
        self._lost = False
        self._on_new_session: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # ---- lifecycle ----

    def start(self) -> None:
        """Connect; create the chroot (with a client without chroot) and the base paths."""
        if self.chroot:
            bootstrap = KazooClient(hosts=self.hosts, timeout=self.session_timeout_ms / 1000)
            bootstrap.start(timeout=self.connect_timeout_s)
            try:
                bootstrap.ensure_path(self.chroot)
            finally:
                bootstrap.stop()
                bootstrap.close()
        self._dispatcher = threading.Thread(
            target=self._dispatch_states, name="zk-state", daemon=True
        )
        self._dispatcher.start()
        self.kazoo.add_listener(self._kazoo_state)
        self.kazoo.start(timeout=self.connect_timeout_s)
        for path in BASE_PATHS:
            self.kazoo.ensure_path(path)
        try:
            self.kazoo.create(CONTROLLER_EPOCH, b"0")
        except NodeExistsError:
            pass

    def stop(self) -> None:
        self.kazoo.stop()
        self.kazoo.close()
        self._states.put(None)
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(10)

    def add_state_listener(self, cb: Callable[[str], None]) -> None:
        """cb("CONNECTED" | "SUSPENDED" | "LOST") on each change, in order, on a thread of this
        client (it may call ZooKeeper; kazoo's own listeners may not)."""
        self._listeners.append(cb)

    def _kazoo_state(self, state: str) -> None:
        # Runs on kazoo's connection thread: hand over, never block here.
        self._states.put(str(state))

    def _dispatch_states(self) -> None:
        while True:
            state = self._states.get()
            if state is None:
                return
            if state == KazooState.LOST:
                self._lost = True
            elif state == KazooState.CONNECTED and self._lost:
                self._lost = False
                for refresh in list(self._on_new_session):
                    _safe(refresh)
            for cb in list(self._listeners):
                _safe(cb, state)

    @property
    def session_id(self) -> int:
        client_id = self.kazoo.client_id
        return int(client_id[0]) if client_id else 0

    @property
    def connected(self) -> bool:
        return bool(self.kazoo.connected)

    def subtree(self, path: str) -> list[str]:
        """path and every znode under it, parents before children."""
        out = [path]
        try:
            children = self.kazoo.get_children(path)
        except NoNodeError:
            return []
        for child in sorted(children):
            out.extend(self.subtree(f"{path}/{child}"))
        return out

    def _owned(self, path: str) -> bool:
        stat = self.kazoo.exists(path)
        return stat is not None and stat.ephemeralOwner == self.session_id

    # ---- brokers ----

    def register_broker(self, reg: BrokerRegistration) -> int:
        """Create the ephemeral /brokers/ids/<id>; returns the broker epoch (its czxid).
        BrokerIdInUseError while another session holds it (a previous incarnation whose
        session has not expired yet). Not re-created by itself after a session expiry."""
        path = f"{BROKER_IDS}/{reg.broker_id}"
        try:
            _, stat = self.kazoo.create(
                path, encode_registration(reg), ephemeral=True, include_data=True
            )
        except NodeExistsError:
            stat = self.kazoo.exists(path)
            if stat is None or stat.ephemeralOwner != self.session_id:
                raise BrokerIdInUseError(
                    f"broker id {reg.broker_id} is registered by another session"
                ) from None
        return int(stat.czxid)

    def live_brokers(self) -> dict[int, BrokerRegistration]:
        out = {}
        for child in self.kazoo.get_children(BROKER_IDS):
            try:
                data, stat = self.kazoo.get(f"{BROKER_IDS}/{child}")
            except NoNodeError:
                continue
            out[int(child)] = decode_registration(int(child), data, stat.czxid)
        return dict(sorted(out.items()))

    def watch_brokers(self, cb: Callable[[dict[int, BrokerRegistration]], None]) -> WatchHandle:
        """cb(live brokers) now and after each change. Also after a new session: a broker that
        re-registered meanwhile has the same id but a new epoch."""
        handle = WatchHandle()
        lock = threading.Lock()

        def deliver() -> None:
            # Read inside the lock: deliveries from two threads are never out of order.
            with lock:
                if not handle.cancelled:
                    _safe(cb, self.live_brokers())

        def on_children(_children: list[str]) -> bool | None:
            if handle.cancelled:
                return False
            deliver()
            return None

        self._on_new_session.append(deliver)
        self.kazoo.ChildrenWatch(BROKER_IDS, on_children)
        return handle

    # ---- controller ----

    def controller_id(self) -> int | None:
        try:
            data, _ = self.kazoo.get(CONTROLLER)
        except NoNodeError:
            return None
        return int(_load(data)["brokerid"])

    def watch_controller(self, cb: Callable[[int | None], None]) -> WatchHandle:
        return self.watch_path(
            CONTROLLER, lambda data: cb(None if data is None else int(_load(data)["brokerid"]))
        )

    def controller_epoch(self) -> tuple[int, int]:
        """(controller epoch, zk version of /controller_epoch)."""
        data, stat = self.kazoo.get(CONTROLLER_EPOCH)
        return int(data.decode()), int(stat.version)

    def try_become_controller(self, broker_id: int) -> tuple[int, int] | None:
        """Create /controller and increment /controller_epoch in one multi-op; returns
        (controller epoch, zk version of /controller_epoch after the increment), or None
        when another broker is the controller."""
        body = _json({"version": 1, "brokerid": broker_id, "timestamp": _now_ms()})
        for _ in range(CAS_ATTEMPTS):
            epoch, version = self.controller_epoch()
            txn = self.kazoo.transaction()
            txn.create(CONTROLLER, body, ephemeral=True)
            txn.set_data(CONTROLLER_EPOCH, str(epoch + 1).encode(), version)
            results = txn.commit()
            if isinstance(results[0], NodeExistsError):
                return None
            if isinstance(results[1], BadVersionError):
                continue  # a controller came and went between our read and our write
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return epoch + 1, int(results[1].version)
        raise ControllerMovedError("the controller epoch kept changing")

    def resign_controller(self) -> bool:
        """Delete /controller when this session holds it; True if it did."""
        stat = self.kazoo.exists(CONTROLLER)
        if stat is None or stat.ephemeralOwner != self.session_id:
            return False
        try:
            self.kazoo.delete(CONTROLLER, version=stat.version)
        except (NoNodeError, BadVersionError):
            return False
        return True

    def fenced(self, epoch_zk_version: int) -> FencedOps:
        return FencedOps(self, epoch_zk_version)

    # ---- topics ----

    def create_topic(
        self,
        name: str,
        partitions: dict[int, tuple[int, ...]],
        config: dict[str, str],
        topic_id: uuid.UUID | None = None,
    ) -> TopicAssignment:
        """The config and the assignment in one multi-op (the controller then creates the
        partition states). TopicExistsError when the topic exists."""
        ta = TopicAssignment(name, topic_id or uuid.uuid4(), dict(partitions), {}, {}, 0)
        txn = self.kazoo.transaction()
        body = _json({"version": 1, "config": dict(config)})
        if self.kazoo.exists(config_path(name)) is not None:
            txn.set_data(config_path(name), body)  # left by an interrupted deletion
        else:
            txn.create(config_path(name), body)
        txn.create(topic_path(name), encode_assignment(ta))
        results = txn.commit()
        if isinstance(results[1], NodeExistsError):
            raise TopicExistsError(f"topic {name!r} already exists")
        for result in results:
            if isinstance(result, Exception) and not isinstance(
                result, (RolledBackError, RuntimeInconsistency)
            ):
                raise result
        return ta

    def topic_names(self) -> list[str]:
        return sorted(self.kazoo.get_children(BROKER_TOPICS))

    def watch_topics(self, cb: Callable[[list[str]], None]) -> WatchHandle:
        return self.watch_children(BROKER_TOPICS, cb)

    def assignment(self, topic: str) -> TopicAssignment | None:
        try:
            data, stat = self.kazoo.get(topic_path(topic))
        except NoNodeError:
            return None
        return decode_assignment(topic, data, stat.version)

    def _watch_data(
        self, path: str, decode: Callable[[bytes, Any], Any], cb: Callable[[Any], None]
    ) -> WatchHandle:
        """cb(decoded | None) now and on each change; stops after the znode is deleted (cb(None)
        last). A znode that does not exist yet is waited for."""
        handle = WatchHandle()
        seen = [False]

        def on_data(data: bytes | None, stat: Any) -> bool | None:
            if handle.cancelled:
                return False
            if data is None or stat is None:
                _safe(cb, None)
                if seen[0]:
                    handle.cancel()  # ended by itself: the znode is gone
                    return False
                return None
            seen[0] = True
            _safe(cb, decode(data, stat))
            return None

        self.kazoo.DataWatch(path, on_data)
        return handle

    def watch_assignment(
        self, topic: str, cb: Callable[[TopicAssignment | None], None]
    ) -> WatchHandle:
        """Stops by itself once the topic is deleted (cb(None) last)."""
        return self._watch_data(
            topic_path(topic), lambda d, s: decode_assignment(topic, d, s.version), cb
        )

    def set_assignment(self, ta: TopicAssignment) -> TopicAssignment:
        """CAS on ta.version (CreatePartitions); BadVersionError when it changed meanwhile."""
        stat = self.kazoo.set(topic_path(ta.topic), encode_assignment(ta), version=ta.version)
        return TopicAssignment(
            ta.topic, ta.topic_id, ta.partitions, ta.adding, ta.removing, stat.version
        )

    def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        try:
            data, stat = self.kazoo.get(state_path(topic, partition))
        except NoNodeError:
            return None
        return decode_state(data, stat.version)

    def partition_states(
        self, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], PartitionState | None]:
        """Many states, read with pipelined requests (one round trip, not one per partition)."""
        pending = [(tp, self.kazoo.get_async(state_path(*tp))) for tp in dict.fromkeys(partitions)]
        out: dict[tuple[str, int], PartitionState | None] = {}
        for tp, result in pending:
            try:
                data, stat = result.get()
            except NoNodeError:
                out[tp] = None
                continue
            out[tp] = decode_state(data, stat.version)
        return out

    def watch_partition_state(
        self, topic: str, partition: int, cb: Callable[[PartitionState | None], None]
    ) -> WatchHandle:
        """A watch stops by itself once the znode is deleted (cb(None) last)."""
        return self._watch_data(
            state_path(topic, partition), lambda d, s: decode_state(d, s.version), cb
        )

    def update_isr(
        self, topic: str, partition: int, state: PartitionState
    ) -> PartitionState | None:
        """The leader's CAS with state.version expected; the new state (new version), or None
        on BadVersion / NoNode (re-read: this broker may no longer lead)."""
        try:
            stat = self.kazoo.set(
                state_path(topic, partition), encode_state(state), version=state.version
            )
        except (BadVersionError, NoNodeError):
            return None
        return PartitionState(
            state.leader, state.leader_epoch, state.isr, state.controller_epoch, stat.version
        )

    def topic_config(self, topic: str) -> dict[str, str]:
        try:
            data, _ = self.kazoo.get(config_path(topic))
        except NoNodeError:
            return {}
        return {str(k): str(v) for k, v in (_load(data).get("config") or {}).items()}

    def set_topic_config(self, topic: str, config: dict[str, str]) -> None:
        body = _json({"version": 1, "config": dict(config)})
        try:
            self.kazoo.set(config_path(topic), body)
        except NoNodeError:
            self.kazoo.create(config_path(topic), body, makepath=True)

    def watch_topic_config(self, topic: str, cb: Callable[[dict[str, str]], None]) -> WatchHandle:
        """cb(overrides) now and on each change ({} while there are none); runs until cancelled
        (a topic's config znode may be created after the topic)."""

        def on_data(data: bytes | None) -> None:
            config = (_load(data).get("config") or {}) if data else {}
            cb({str(k): str(v) for k, v in config.items()})

        return self.watch_path(config_path(topic), on_data)

    # ---- admin requests ----

    def request_topic_deletion(self, topic: str) -> None:
        """Mark the topic for deletion (the controller deletes it); UnknownTopicError when
        there is no such topic."""
        if self.kazoo.exists(topic_path(topic)) is None:
            raise UnknownTopicError(f"no topic {topic!r}")
        try:
            self.kazoo.create(f"{DELETE_TOPICS}/{topic}", b"", makepath=True)
        except NodeExistsError:
            pass

    def _merge_request(self, path: str, merge: Callable[[list[Any]], list[Any]]) -> None:
        for _ in range(CAS_ATTEMPTS):
            try:
                data, stat = self.kazoo.get(path)
            except NoNodeError:
                try:
                    self.kazoo.create(
                        path, _json({"version": 1, "partitions": merge([])}), makepath=True
                    )
                    return
                except NodeExistsError:
                    continue
            current = list(_load(data).get("partitions") or [])
            try:
                body = _json({"version": 1, "partitions": merge(current)})
                self.kazoo.set(path, body, version=stat.version)
                return
            except (BadVersionError, NoNodeError):
                continue
        raise EdplogError(f"{path} kept changing under concurrent requests")

    def request_preferred_election(self, partitions: list[tuple[str, int]]) -> None:
        """Add partitions to /admin/preferred_replica_election (merged with pending ones)."""

        def merge(current: list[Any]) -> list[Any]:
            have = {(e["topic"], int(e["partition"])) for e in current}
            extra = [{"topic": t, "partition": p} for t, p in partitions if (t, p) not in have]
            return current + extra

        self._merge_request(PREFERRED_ELECTION, merge)

    def preferred_election_requests(self) -> tuple[list[tuple[str, int]], int]:
        """The pending preferred elections and the znode's version (-1: none pending)."""
        try:
            data, stat = self.kazoo.get(PREFERRED_ELECTION)
        except NoNodeError:
            return [], -1
        entries = _load(data).get("partitions") or []
        return [(e["topic"], int(e["partition"])) for e in entries], int(stat.version)

    def request_reassignment(self, moves: dict[tuple[str, int], tuple[int, ...] | None]) -> None:
        """Add moves to /admin/reassign_partitions, replacing pending ones for the same
        partitions. None cancels a pending reassignment of that partition."""

        def merge(current: list[Any]) -> list[Any]:
            kept = [e for e in current if (e["topic"], int(e["partition"])) not in moves]
            return kept + [
                {"topic": t, "partition": p, "replicas": None if rs is None else list(rs)}
                for (t, p), rs in moves.items()
            ]

        self._merge_request(REASSIGN_PARTITIONS, merge)

    def reassignment_requests(
        self,
    ) -> tuple[dict[tuple[str, int], tuple[int, ...] | None], int]:
        """The pending reassignment requests and the znode's version (-1: none pending)."""
        try:
            data, stat = self.kazoo.get(REASSIGN_PARTITIONS)
        except NoNodeError:
            return {}, -1
        out: dict[tuple[str, int], tuple[int, ...] | None] = {}
        for e in _load(data).get("partitions") or []:
            rs = e.get("replicas")
            out[(e["topic"], int(e["partition"]))] = None if rs is None else tuple(rs)
        return out, int(stat.version)

    def watch_path(self, path: str, cb: Callable[[bytes | None], None]) -> WatchHandle:
        """cb(data | None) now and on each change of any znode, until cancelled."""
        handle = WatchHandle()

        def on_data(data: bytes | None, _stat: Any) -> bool | None:
            if handle.cancelled:
                return False
            _safe(cb, data)
            return None

        self.kazoo.DataWatch(path, on_data)
        return handle

    def watch_children(self, path: str, cb: Callable[[list[str]], None]) -> WatchHandle:
        """cb(sorted children) now and on each change of an existing znode, until cancelled."""
        handle = WatchHandle()

        def on_children(children: list[str]) -> bool | None:
            if handle.cancelled:
                return False
            _safe(cb, sorted(children))
            return None

        self.kazoo.ChildrenWatch(path, on_children)
        return handle

    def begin_controlled_shutdown(self, broker_id: int) -> None:
        """The ephemeral marker /admin/controlled_shutdown/<id>: the controller moves
        leadership away from this broker (gone with the session)."""
        try:
            self.kazoo.create(f"{CONTROLLED_SHUTDOWN}/{broker_id}", b"", ephemeral=True)
        except NodeExistsError:
            if not self._owned(f"{CONTROLLED_SHUTDOWN}/{broker_id}"):
                raise BrokerIdInUseError(
                    f"broker {broker_id}'s shutdown marker is held by another session"
                ) from None

    def shutting_down_brokers(self) -> set[int]:
        return {int(c) for c in self.kazoo.get_children(CONTROLLED_SHUTDOWN)}

    def allocate_producer_ids(self, broker_id: int, block_size: int = 1000) -> tuple[int, int]:
        """The next block of producer ids, first and last (inclusive), by CAS on
        /latest_producer_id_block: unique across brokers allocating at once."""
        for _ in range(CAS_ATTEMPTS):
            try:
                data, stat = self.kazoo.get(PRODUCER_ID_BLOCK)
            except NoNodeError:
                start = 0
                body = self._block(broker_id, start, block_size)
                try:
                    self.kazoo.create(PRODUCER_ID_BLOCK, body)
                    return start, start + block_size - 1
                except NodeExistsError:
                    continue
            start = int(_load(data)["block_end"]) + 1 if data else 0
            try:
                self.kazoo.set(
                    PRODUCER_ID_BLOCK, self._block(broker_id, start, block_size), stat.version
                )
            except BadVersionError:
                continue
            return start, start + block_size - 1
        raise EdplogError("could not allocate a producer id block: too much contention")

    @staticmethod
    def _block(broker_id: int, start: int, size: int) -> bytes:
        return _json(
            {
                "version": 1,
                "broker": broker_id,
                "block_start": str(start),
                "block_end": str(start + size - 1),
            }
        )

    def cluster_id(self, proposed: str) -> str:
        """The cluster id: the one stored, else ``proposed`` (stored now)."""
        try:
            self.kazoo.create(CLUSTER_ID, _json({"version": "1", "id": proposed}), makepath=True)
            return proposed
        except NodeExistsError:
            data, _ = self.kazoo.get(CLUSTER_ID)
            return str(_load(data)["id"])
