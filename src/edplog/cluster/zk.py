"""ZooKeeper access for the cluster: znode paths, their JSON encodings, versioned writes.

Everything here is a blocking kazoo call: callers on an asyncio loop use run_in_executor.
The layout is Kafka's ZooKeeper-era one (docs/cluster-internals.md). Two kinds of write exist:

- the controller's, collected in a :class:`.zk_fenced.FencedOps` and committed as one multi-op that
  starts with ``check(/controller_epoch, version)``, so a controller that lost its session
  (a zombie) cannot change anything once another controller incremented the epoch;
- a partition leader's ISR change (:meth:`ZkClient.update_isr`), a compare-and-set on the
  state znode's version: a leader that lost its leadership holds a stale version.

The session and the watch recipes are in zk_session.py (:class:`ZkSession`, which this
client extends), the controller's multi-ops in zk_fenced.py, the paths and encodings in
zk_codec.py; the names other modules use are re-exported here.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)

from ..errors import EdplogError, TopicExistsError, UnknownTopicError
from .zk_codec import (
    BROKER_IDS,
    BROKER_TOPICS,
    CAS_ATTEMPTS,
    CLUSTER_ID,
    CONTROLLED_SHUTDOWN,
    CONTROLLER,
    CONTROLLER_EPOCH,
    DELETE_TOPICS,
    PREFERRED_ELECTION,
    PRODUCER_ID_BLOCK,
    REASSIGN_PARTITIONS,
    BrokerRegistration,
    PartitionState,
    TopicAssignment,
    _json,
    _load,
    _now_ms,
    config_path,
    decode_assignment,
    decode_registration,
    decode_state,
    decode_topic_id,
    encode_assignment,
    encode_registration,
    encode_state,
    encode_topic_id,
    state_path,
    topic_path,
)
from .zk_fenced import ControllerMovedError, FencedOps
from .zk_session import WatchHandle, ZkSession, run_watcher

__all__ = [
    "BROKER_IDS",
    "BROKER_TOPICS",
    "CONTROLLED_SHUTDOWN",
    "CONTROLLER",
    "CONTROLLER_EPOCH",
    "DELETE_TOPICS",
    "PREFERRED_ELECTION",
    "REASSIGN_PARTITIONS",
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
    "ZkSession",
    "config_path",
    "decode_topic_id",
    "encode_topic_id",
    "state_path",
    "topic_path",
]


class BrokerIdInUseError(EdplogError):
    """Another live session holds /brokers/ids/<id>."""


class ZkClient(ZkSession):
    """One ZooKeeper session (kazoo), with edplog's paths and encodings. Thread-safe."""

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
                    run_watcher(cb, self.live_brokers())

        def on_children(_children: list[str]) -> bool | None:
            if handle.cancelled:
                return False
            deliver()
            return None

        self._on_new_session.append((handle, deliver))
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
        return decode_state(data, stat.version, stat.mzxid)

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
            out[tp] = decode_state(data, stat.version, stat.mzxid)
        return out

    def watch_partition_state(
        self, topic: str, partition: int, cb: Callable[[PartitionState | None], None]
    ) -> WatchHandle:
        """A watch stops by itself once the znode is deleted (cb(None) last)."""
        return self._watch_data(
            state_path(topic, partition), lambda d, s: decode_state(d, s.version, s.mzxid), cb
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
            state.leader,
            state.leader_epoch,
            state.isr,
            state.controller_epoch,
            stat.version,
            stat.mzxid,
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
