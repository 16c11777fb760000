"""This broker's part in replication: make each hosted partition a leader or a follower as
the cluster's state says, run the replica fetchers, and keep the ISR of what it leads.

Every change the metadata cache reports (from ZooKeeper watches) is applied on the event loop,
one partition at a time and in order: a partition whose state names this broker as leader
becomes the leader at that leader epoch; one that names another broker follows it (the
fetcher for that broker truncates it by leader epoch first); one this broker is no longer a
replica of is closed and its log deleted; a deleted topic's logs are deleted. Opening and
deleting logs is disk work: it runs off the event loop.

While the ZooKeeper session is suspended or lost this broker leads nothing (produces get
NOT_LEADER_OR_FOLLOWER): another broker may already have been elected, and a leader that
cannot see the cluster's state must not acknowledge. Nor does it lead on a state ZooKeeper
wrote before this broker registered (the state's mzxid below the registration's czxid): that
state speaks of an earlier incarnation, which the controller treats as failed and replaces.
Every ``ISR_CHECK_INTERVAL_S`` the leader checks its followers: an ISR change (a laggard out,
a caught-up follower in) is a versioned write of the partition state (``ZkClient.update_isr``)
made off the event loop; it takes effect when the write succeeds, and a failed one means the
state changed under it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..cluster.metadata_cache import Change, TopicPartition
from ..cluster.node import ClusterNode
from ..cluster.replica_fetcher import FetcherSettings, ReplicaFetcher
from ..cluster.zk import PartitionState
from ..errors import EdplogError
from ..storage import Store
from .config import BrokerConfig
from .partition import Partition, Role
from .replica_manager import ReplicaManager

log = logging.getLogger("edplog.broker")

ISR_CHECK_INTERVAL_S = 0.25


class ReplicationManager:
    """See the module docstring."""

    def __init__(
        self, node: ClusterNode, replicas: ReplicaManager, store: Store, config: BrokerConfig
    ) -> None:
        self.node = node
        self.replicas = replicas
        # Cluster answers from the moment the listener opens: until this broker has joined and
        # applied the partition states, it leads nothing (NOT_LEADER_OR_FOLLOWER). A restarted
        # broker waiting for its old session to expire must not serve its local logs as a
        # single node would (it acknowledged produces and served reads later truncated).
        replicas.cluster = True
        self.store = store
        self.config = config
        self.broker_id = config.node_id
        self.settings = FetcherSettings(
            max_wait_ms=config.replica_fetch_wait_max_ms,
            min_bytes=config.replica_fetch_min_bytes,
            max_bytes=config.replica_fetch_max_bytes,
            response_max_bytes=config.replica_fetch_response_max_bytes,
            backoff_ms=config.replica_fetch_backoff_ms,
            socket_timeout_ms=config.replica_socket_timeout_ms,
        )
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._followed_on: dict[TopicPartition, int] = {}
        self._dirty: set[TopicPartition] = set()
        self._worker: asyncio.Task[None] | None = None
        self._isr_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.session_ok = True
        self._stopping = False
        # Told (on the event loop) ``(topic, index, partition)`` when this broker starts
        # leading a partition, and ``(topic, index, None)`` when it stops: the group
        # coordinator loads and unloads its __consumer_offsets partitions.
        self.leadership_listeners: list[Callable[[str, int, Partition | None], None]] = []
        self._leading: set[TopicPartition] = set()

    # ---- start / stop ---------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        snap = self.node.cache.snapshot
        self._dirty |= {(t, p) for t, ta in snap.topics.items() for p in ta.partitions}
        self._worker = self._loop.create_task(self._work())
        self._isr_task = self._loop.create_task(self._isr_loop())
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._worker, self._isr_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        for fetcher in list(self.fetchers.values()):
            await fetcher.stop()
        self.fetchers.clear()

    # ---- notifications (ZooKeeper threads) -----------------------------------------------

    def changed(self, change: Change) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._changed, change)

    def session(self, ok: bool) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._session, ok)

    def _changed(self, change: Change) -> None:
        snap = self.node.cache.snapshot
        dirty = set(change.partitions)
        for topic in change.topics_added:
            ta = snap.topics.get(topic)
            if ta is not None:
                dirty |= {(topic, p) for p in ta.partitions}
        if change.brokers:
            # A leader registered (a follower may have waited for its address), changed
            # address, or went away: every hosted partition looks again.
            dirty |= set(self.replicas.hosted)
        for topic in change.topics_removed:
            dirty |= {tp for tp in self.replicas.hosted if tp[0] == topic}
        for topic in change.configs:
            self._reconfigure(topic)
        self._dirty |= dirty
        self._wake.set()

    def _tell_leadership(self, tp: TopicPartition) -> None:
        partition = self.replicas.hosted.get(tp)
        leading = partition is not None and partition.role is Role.LEADER
        if leading == (tp in self._leading):
            return
        if leading:
            self._leading.add(tp)
        else:
            self._leading.discard(tp)
        for listener in self.leadership_listeners:
            try:
                listener(tp[0], tp[1], partition if leading else None)
            except Exception:
                log.exception("a leadership listener failed for %s-%d", *tp)

    def _session(self, ok: bool) -> None:
        self.session_ok = ok
        if not ok:
            for tp, partition in self.replicas.hosted.items():
                if partition.role is Role.LEADER:
                    partition.make_inactive()
                    self._tell_leadership(tp)
        self._dirty |= set(self.replicas.hosted)
        snap = self.node.cache.snapshot
        self._dirty |= {(t, p) for t, ta in snap.topics.items() for p in ta.partitions}
        self._wake.set()

    # ---- applying the state ----------------------------------------------------------------

    async def _work(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                tp = min(self._dirty)
                self._dirty.discard(tp)
                try:
                    await self._apply(tp)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("could not apply the state of %s-%d", *tp)
                self._tell_leadership(tp)

    async def _apply(self, tp: TopicPartition) -> None:
        topic, index = tp
        snap = self.node.cache.snapshot
        replicas = list(snap.replicas(topic, index))
        partition = self.replicas.hosted.get(tp)
        if self.broker_id not in replicas:
            if partition is not None:
                await self._drop(tp, partition, deleted=topic not in snap.topics)
            return
        if partition is None:
            partition = await self._open(tp)
            if partition is None:
                return
        state = snap.states.get(tp)
        if state is None or not self.session_ok:
            self._unfollow(tp)
            if partition.role is not Role.NONE:
                partition.make_inactive()
            return
        now_ms = int(time.time() * 1000)
        isr = list(state.isr)
        if state.leader == self.broker_id and not self._written_since_registration(state):
            # The state names an earlier incarnation of this broker (a restart, or a session
            # that expired): the controller may be electing another leader right now, so lead
            # nothing until it has written the state again (it does on seeing the new
            # registration). Leading here acknowledged records a moment before the election
            # cut them away.
            self._unfollow(tp)
            if partition.role is not Role.NONE:
                partition.make_inactive()
            partition.zk_state = state
            log.info("%s-%d: the state predates this registration; waiting for the controller", *tp)
            return
        if state.leader == self.broker_id:
            self._unfollow(tp)
            if partition.role is Role.LEADER and partition.leader_epoch == state.leader_epoch:
                partition.replicas = replicas
                if partition.tracker is not None:
                    partition.tracker.set_replicas(replicas, now_ms)
                partition.isr_updated(isr, state.version)
                partition.zk_state = state
                return
            log.info("%s-%d: leader at epoch %d, isr %s", topic, index, state.leader_epoch, isr)
            partition.make_leader(state.leader_epoch, replicas, isr, state.version, now_ms)
            partition.zk_state = state
            return
        partition.zk_state = state
        leader = snap.brokers.get(state.leader)
        endpoint = leader.endpoint(self.config.inter_broker.listener) if leader else None
        address = f"{endpoint[0]}:{endpoint[1]}" if endpoint is not None else None
        fetcher = self.fetchers.get(state.leader)
        if (
            partition.role is Role.FOLLOWER
            and partition.leader_id == state.leader
            and partition.leader_epoch == state.leader_epoch
            and self._followed_on.get(tp) == state.leader
            and fetcher is not None
            and fetcher.leader_address == address
        ):
            partition.isr = isr
            partition.state_version = state.version
            return
        partition.make_follower(state.leader, state.leader_epoch, replicas, isr, state.version)
        partition.zk_state = state
        self._unfollow(tp)
        if address is None:
            return  # the leader is not registered (yet): the next change brings it
        self._fetcher(state.leader, address).add(partition)
        self._followed_on[tp] = state.leader
        log.info("%s-%d: following %d at epoch %d", topic, index, state.leader, state.leader_epoch)

    def _written_since_registration(self, state: PartitionState) -> bool:
        """Whether ZooKeeper wrote ``state`` after this broker registered (its mzxid is at or
        past the registration's czxid, the broker epoch)."""
        epoch = self.node.broker_epoch
        return epoch >= 0 and state.zxid >= epoch

    def _fetcher(self, leader_id: int, address: str) -> ReplicaFetcher:
        fetcher = self.fetchers.get(leader_id)
        moved: list[Any] = []
        if fetcher is not None and fetcher.leader_address != address:
            assert self._loop is not None
            moved = fetcher.followed()  # they follow the leader at its new address
            self._loop.create_task(fetcher.stop())
            fetcher = None
        if fetcher is None:
            fetcher = ReplicaFetcher(
                leader_id,
                address,
                self.broker_id,
                lambda: self.node.broker_epoch,
                self.settings,
                local_host=self.config.host if self.config.host not in ("", "0.0.0.0") else None,
                security=self.config.inter_broker.client_security,
                topic_id_of=self._topic_id,
            )
            self.fetchers[leader_id] = fetcher
            for partition in moved:
                fetcher.add(partition)
        return fetcher

    def _topic_id(self, topic: str) -> uuid.UUID | None:
        try:
            return self.store.topic_id(topic)
        except EdplogError:
            return None

    def _unfollow(self, tp: TopicPartition) -> None:
        leader = self._followed_on.pop(tp, None)
        if leader is not None and leader in self.fetchers:
            self.fetchers[leader].remove(*tp)

    async def _open(self, tp: TopicPartition) -> Partition | None:
        loop = asyncio.get_running_loop()
        try:
            log_ = await loop.run_in_executor(None, self.store.open_partition, *tp)
        except EdplogError as exc:
            log.error("cannot open %s-%d: %s", *tp, exc)
            return None
        log_.check_compressed_records = self.replicas.validate_compressed_records
        partition = Partition(tp[0], tp[1], log_, self.broker_id, log_.leader_epoch)
        partition.replicated = True
        partition.role = Role.NONE
        self.replicas.hosted[tp] = partition
        return partition

    async def _drop(self, tp: TopicPartition, partition: Partition, deleted: bool) -> None:
        self._unfollow(tp)
        partition.make_inactive()
        self.replicas.hosted.pop(tp, None)
        loop = asyncio.get_running_loop()
        why = "topic deleted" if deleted else "no longer a replica here"
        log.info("%s-%d: %s, removing the local replica", tp[0], tp[1], why)
        try:
            await loop.run_in_executor(None, self.store.drop_partition, *tp)
        except Exception:
            log.exception("could not remove the local replica of %s-%d", *tp)
        partition.notify()

    def _reconfigure(self, topic: str) -> None:
        try:
            info = self.store.registry.get(topic)
        except EdplogError:
            return
        for (t, _), partition in self.replicas.hosted.items():
            if t == topic:
                partition.log.reconfigure(info.config)
                partition.refresh_config()

    # ---- the ISR ---------------------------------------------------------------------------

    async def _isr_loop(self) -> None:
        lag_ms = self.config.replica_lag_time_max_ms
        while not self._stopping:
            await asyncio.sleep(ISR_CHECK_INTERVAL_S)
            if not self.session_ok:
                continue
            epochs = self.node.cache.broker_epochs()
            barred = self.node.cache.snapshot.shutting_down
            now_ms = int(time.time() * 1000)
            for tp, partition in list(self.replicas.hosted.items()):
                if partition.isr_change_pending:
                    continue
                wanted = partition.maybe_change_isr(now_ms, lag_ms, epochs, barred)
                if wanted is not None and wanted != partition.isr and wanted:
                    partition.propose_isr(wanted)
                    asyncio.get_running_loop().create_task(self._write_isr(tp, partition, wanted))

    async def _write_isr(self, tp: TopicPartition, partition: Partition, isr: list[int]) -> None:
        loop = asyncio.get_running_loop()
        state = partition.zk_state
        try:
            if state is None:
                return
            proposed = replace(
                state,
                leader=self.broker_id,
                leader_epoch=partition.leader_epoch,
                isr=tuple(isr),
                version=partition.state_version,
            )
            written = await loop.run_in_executor(None, self.node.zk.update_isr, *tp, proposed)
        except Exception as exc:
            log.warning("%s-%d: ISR change to %s failed: %s", *tp, isr, exc)
            return
        finally:
            # No await until isr_updated below: the high watermark never sees neither the
            # proposal nor the written ISR.
            partition.end_isr_proposal()
        if written is None:
            log.info("%s-%d: ISR change to %s lost a race: the state changed", *tp, isr)
            return
        if partition.role is Role.LEADER and partition.leader_epoch == written.leader_epoch:
            log.info("%s-%d: ISR %s -> %s", tp[0], tp[1], partition.isr, list(written.isr))
            partition.isr_updated(list(written.isr), written.version)
            partition.zk_state = written
