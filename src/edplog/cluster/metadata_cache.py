"""A broker's view of the cluster, kept current by ZooKeeper watches.

Live brokers (``/brokers/ids``), the controller, every topic's assignment and config, and
every partition's state (leader, leader epoch, ISR). Watches fire on kazoo's threads; each
change replaces an immutable snapshot (readers on the event loop take no lock) and is then
reported to ``on_change`` with what changed, which the broker marshals to its event loop.
A watch that fires after a session loss re-reads the latest data, so a missed notification
can delay a change but never reorder two.

A partition's replicas (the topic's assignment znode) and its leader and ISR (its state
znode) change together in one multi-op when a reassignment moves them, but reach a broker
through two watches. So that no snapshot pairs a new assignment with an old leader, an
assignment change re-reads the states of the topic's partitions and installs both at once,
and a state naming a broker that is not yet among the partition's replicas re-reads the
assignment with it; a notification older (by znode version) than what a re-read installed
is then dropped.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .zk import (
    CONTROLLED_SHUTDOWN,
    BrokerRegistration,
    PartitionState,
    TopicAssignment,
    ZkClient,
)

log = logging.getLogger("edplog.cluster")

TopicPartition = tuple[str, int]
#: Reads of a topic's assignment and states until no write came between them.
_CONSISTENT_READ_TRIES = 5


@dataclass(frozen=True)
class Change:
    """What one notification changed: partitions whose state or assignment changed, topics
    created or deleted, topics whose config changed, and whether the broker set or the
    controller changed."""

    partitions: frozenset[TopicPartition] = frozenset()
    topics_added: frozenset[str] = frozenset()
    topics_removed: frozenset[str] = frozenset()
    configs: frozenset[str] = frozenset()
    brokers: bool = False
    controller: bool = False


@dataclass(frozen=True)
class Snapshot:
    """The cluster as last seen (immutable; replaced whole at every change)."""

    brokers: dict[int, BrokerRegistration] = field(default_factory=dict)
    controller_id: int | None = None
    topics: dict[str, TopicAssignment] = field(default_factory=dict)
    configs: dict[str, dict[str, str]] = field(default_factory=dict)
    states: dict[TopicPartition, PartitionState] = field(default_factory=dict)
    # Brokers in a controlled shutdown: they may not join an ISR (KIP-841).
    shutting_down: frozenset[int] = frozenset()

    def replicas(self, topic: str, partition: int) -> tuple[int, ...]:
        """Every replica of the partition, those being added by a reassignment included."""
        ta = self.topics.get(topic)
        if ta is None:
            return ()
        base = ta.partitions.get(partition, ())
        adding = tuple(r for r in ta.adding.get(partition, ()) if r not in base)
        return base + adding


def _older(new: PartitionState | TopicAssignment, old: object) -> bool:
    """``new`` was read before ``old`` (same znode, lower data version). A topic deleted and
    created again is another znode: its assignment carries another topic id."""
    if isinstance(new, TopicAssignment):
        return (
            isinstance(old, TopicAssignment)
            and old.topic_id == new.topic_id
            and new.version < old.version
        )
    return isinstance(old, PartitionState) and new.version < old.version


class MetadataCache:
    """See the module docstring. ``start()`` blocks until the first full read is done."""

    def __init__(self, zk: ZkClient, on_change: Callable[[Change], None] | None = None) -> None:
        self.zk = zk
        self.on_change = on_change
        self._lock = threading.Lock()
        self.snapshot = Snapshot()
        self._watched_topics: set[str] = set()
        self._watched_states: set[TopicPartition] = set()
        self._started = threading.Event()

    def start(self) -> None:
        self.zk.watch_brokers(self._brokers_changed)
        self.zk.watch_controller(self._controller_changed)
        self.zk.watch_topics(self._topics_changed)
        self.zk.watch_children(CONTROLLED_SHUTDOWN, self._shutdowns_changed)
        self._started.set()

    # ---- watch callbacks (kazoo threads) ----------------------------------------------------

    def _publish(self, change: Change) -> None:
        if self.on_change is not None and self._started.is_set():
            try:
                self.on_change(change)
            except Exception:
                log.exception("a metadata change could not be applied")

    def _brokers_changed(self, brokers: dict[int, BrokerRegistration]) -> None:
        with self._lock:
            if brokers == self.snapshot.brokers:
                return
            self.snapshot = replace(self.snapshot, brokers=dict(brokers))
        self._publish(Change(brokers=True))

    def _shutdowns_changed(self, children: list[str]) -> None:
        ids = frozenset(int(c) for c in children if c.isdigit())
        with self._lock:
            if ids == self.snapshot.shutting_down:
                return
            self.snapshot = replace(self.snapshot, shutting_down=ids)
        self._publish(Change(brokers=True))

    def _controller_changed(self, controller_id: int | None) -> None:
        with self._lock:
            if controller_id == self.snapshot.controller_id:
                return
            self.snapshot = replace(self.snapshot, controller_id=controller_id)
        self._publish(Change(controller=True))

    def _topics_changed(self, names: list[str]) -> None:
        with self._lock:
            new = [n for n in names if n not in self._watched_topics]
            gone = self._watched_topics - set(names)
            self._watched_topics |= set(new)
        for name in new:
            self.zk.watch_topic_config(name, functools.partial(self._config_changed, name))
            self.zk.watch_assignment(name, functools.partial(self._assignment_changed, name))
        for name in gone:
            self._topic_gone(name)

    def _topic_gone(self, name: str) -> None:
        with self._lock:
            self._watched_topics.discard(name)
            snap = self.snapshot
            if name not in snap.topics and name not in snap.configs:
                return
            topics = dict(snap.topics)
            topics.pop(name, None)
            configs = dict(snap.configs)
            configs.pop(name, None)
            states = {tp: st for tp, st in snap.states.items() if tp[0] != name}
            parts = frozenset(tp for tp in snap.states if tp[0] == name)
            self.snapshot = replace(snap, topics=topics, configs=configs, states=states)
        self._publish(Change(partitions=parts, topics_removed=frozenset({name})))

    def _assignment_changed(self, name: str, ta: TopicAssignment | None) -> None:
        if ta is None:
            self._topic_gone(name)
            return
        read = self._read_together(name, ta)
        if read is None:
            return  # deleted meanwhile: the watch reports it next
        ta, fresh_states = read
        with self._lock:
            snap = self.snapshot
            old = snap.topics.get(name)
            if old == ta or _older(ta, old):
                return
            topics = dict(snap.topics)
            topics[name] = ta
            states = dict(snap.states)
            for tp, state in fresh_states.items():
                if state is not None and not _older(state, states.get(tp)):
                    states[tp] = state
            self.snapshot = replace(snap, topics=topics, states=states)
            fresh = [(name, p) for p in ta.partitions if (name, p) not in self._watched_states]
            self._watched_states |= set(fresh)
        for topic, p in fresh:
            self.zk.watch_partition_state(
                topic, p, functools.partial(self._state_changed, (topic, p))
            )
        changed = frozenset((name, p) for p in ta.partitions)
        added = frozenset({name}) if old is None else frozenset()
        self._publish(Change(partitions=changed, topics_added=added))

    def _read_together(
        self,
        topic: str,
        ta: TopicAssignment | None,
        partitions: list[TopicPartition] | None = None,
    ) -> tuple[TopicAssignment, dict[TopicPartition, PartitionState | None]] | None:
        """The topic's assignment and its partitions' states as of one moment: states read
        between two reads of the assignment that found the same version (no multi-op
        changed the assignment meanwhile). None when the topic is gone, or when every try
        met another change: that change's own notification comes next and reads again."""
        if ta is None:
            ta = self.zk.assignment(topic)
        for _ in range(_CONSISTENT_READ_TRIES):
            if ta is None:
                return None
            wanted = partitions or [(topic, p) for p in ta.partitions]
            states = self.zk.partition_states(wanted)
            again = self.zk.assignment(topic)
            if again is not None and again.version == ta.version:
                return ta, states
            ta = again
        return None

    def _config_changed(self, name: str, config: dict[str, str]) -> None:
        with self._lock:
            snap = self.snapshot
            if snap.configs.get(name) == config:
                return
            configs = dict(snap.configs)
            configs[name] = dict(config)
            self.snapshot = replace(snap, configs=configs)
        self._publish(Change(configs=frozenset({name})))

    def _state_changed(self, tp: TopicPartition, state: PartitionState | None) -> None:
        ta: TopicAssignment | None = None
        if state is not None:
            known = set(self.snapshot.replicas(*tp))
            if not {state.leader, *state.isr} <= known | {-1}:
                # Named by a reassignment whose assignment this cache has not seen yet.
                read = self._read_together(tp[0], None, [tp])
                if read is None or read[1].get(tp) is None:
                    return  # changing or gone: the next notification reads again
                ta, again = read
                state = again[tp]
        with self._lock:
            snap = self.snapshot
            current = snap.states.get(tp)
            if current == state or (state is not None and _older(state, current)):
                return  # (None for a state not created yet: its watch waits for it)
            states = dict(snap.states)
            if state is None:
                states.pop(tp, None)
                self._watched_states.discard(tp)  # a deleted znode's watch has ended
            else:
                states[tp] = state
            topics = snap.topics
            if ta is not None and tp[0] in topics and not _older(ta, topics[tp[0]]):
                topics = {**topics, tp[0]: ta}
            self.snapshot = replace(snap, states=states, topics=topics)
        changed = {tp}
        if ta is not None:
            changed |= {(tp[0], p) for p in ta.partitions}
        self._publish(Change(partitions=frozenset(changed)))

    # ---- reads ----------------------------------------------------------------------------

    def broker_epochs(self) -> dict[int, int]:
        return {b: reg.epoch for b, reg in self.snapshot.brokers.items()}
