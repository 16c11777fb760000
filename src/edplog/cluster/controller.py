"""The controller: one broker at a time elects partition leaders and keeps the ISR rules.

Every broker runs a Controller; the one that creates /controller (and increments
/controller_epoch in the same multi-op) is active. Its work runs on one event thread that
takes events in order, as Kafka's controller event queue does: watches and session changes
only enqueue. Each handler re-reads what it acts on from ZooKeeper (a watch says *that*
something changed; the data it carried may be older than the next event's), decides with
the pure rules of partition_state.py, and writes through ``zk.fenced(epoch_zk_version)``:
once another controller has incremented the epoch, nothing this one writes is applied.

Brokers learn every decision from their watches on the state znodes; there is no
LeaderAndIsr request. This module holds the campaign, the event thread and the event
handlers; how a partition's new state is decided and written is in controller_writes.py,
the steps of a reassignment in controller_reassignment.py.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import BadVersionError, KazooException, NoNodeError

from . import partition_state as rules
from .controller_reassignment import Reassignments
from .controller_writes import TP, WRITE_ATTEMPTS, Transform, isr_str
from .zk import (
    CONTROLLED_SHUTDOWN,
    DELETE_TOPICS,
    PREFERRED_ELECTION,
    REASSIGN_PARTITIONS,
    TopicAssignment,
    ZkClient,
)
from .zk_fenced import ControllerMovedError
from .zk_session import WatchHandle

log = logging.getLogger("edplog.cluster.controller")

#: While a reassignment waits for its target replicas to join the ISR.
REASSIGNMENT_POLL_S = 0.5


class Controller(Reassignments):
    """Campaigns for the controller role on ``zk`` as ``broker_id`` and, while active,
    applies the cluster's rules. start() / stop(); ``active`` and ``epoch`` say where it is."""

    def __init__(
        self,
        zk: ZkClient,
        broker_id: int,
        *,
        unclean_leader_election: bool = False,
        auto_leader_rebalance: bool = True,
        leader_imbalance_check_interval_s: float = 300,
        leader_imbalance_percentage: float = 10,
    ) -> None:
        self.zk = zk
        self.broker_id = broker_id
        self.unclean = unclean_leader_election
        self.auto_leader_rebalance = auto_leader_rebalance
        self.imbalance_interval_s = leader_imbalance_check_interval_s
        self.imbalance_percentage = leader_imbalance_percentage
        self._events: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._campaign: WatchHandle | None = None
        self._stopped = False
        self._active = False
        self._epoch = 0
        self._epoch_zk_version = -1
        # Bumped at each activation and resignation: events of an older one are dropped.
        self._generation = 0
        self._watches: list[WatchHandle] = []
        self._topic_watches: dict[str, WatchHandle] = {}
        self._live: dict[int, int] = {}  # broker id -> broker epoch
        self._shutting: set[int] = set()
        self._assignments: dict[str, TopicAssignment] = {}
        self._reassigning = False
        self._resync = False
        self._next_rebalance = 0.0

    # ---- public ----

    @property
    def active(self) -> bool:
        return self._active

    @property
    def epoch(self) -> int:
        """The controller epoch this controller won (0 before it was ever active)."""
        return self._epoch

    @property
    def epoch_zk_version(self) -> int:
        """The zk version of /controller_epoch its fenced writes check."""
        return self._epoch_zk_version

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"controller-{self.broker_id}", daemon=True
        )
        self._thread.start()
        self.zk.add_state_listener(lambda state: self._put("ZkState", state, generation=-1))
        self._campaign = self.zk.watch_controller(
            lambda cid: self._put("ControllerChange", cid, generation=-1)
        )

    def stop(self, timeout_s: float = 10) -> None:
        """Resign (delete /controller when it is ours) and end the event thread."""
        if self._campaign is not None:
            self._campaign.cancel()
        self._put("Stop", None, generation=-1)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def elect_preferred_leaders(self, partitions: list[TP]) -> None:
        """Queue a preferred election for these partitions (what the admin request does)."""
        self.zk.request_preferred_election(partitions)

    # ---- the event thread ----

    def _put(self, kind: str, arg: Any, generation: int | None = None) -> None:
        if not self._stopped:
            self._events.put((kind, self._generation if generation is None else generation, arg))

    def _timeout(self) -> float | None:
        if not self._active:
            return None
        waits = []
        if self._reassigning:
            waits.append(REASSIGNMENT_POLL_S)
        if self.auto_leader_rebalance:
            waits.append(max(0.0, self._next_rebalance - time.monotonic()))
        return min(waits) if waits else None

    def _run(self) -> None:
        while True:
            try:
                kind, generation, arg = self._events.get(timeout=self._timeout())
            except queue.Empty:
                kind, generation, arg = "Tick", self._generation, None
            if kind == "Stop":
                self._stopped = True
                self._resign("stopping", delete=True)
                return
            if generation not in (-1, self._generation):
                continue  # queued by watches of an earlier activation
            try:
                self._handle(kind, arg)
            except ControllerMovedError:
                self._resign("another controller took over", delete=True)
            except KazooException as exc:
                # Connection loss or session expiry: redo everything once connected again.
                log.warning("controller %d: %s failed (%r); resyncing", self.broker_id, kind, exc)
                self._resync = self._active
            except Exception:
                log.exception("controller %d: %s failed; resyncing", self.broker_id, kind)
                self._resync = self._active

    def _handle(self, kind: str, arg: Any) -> None:
        if kind == "ZkState":
            if arg == "LOST":
                self._resign("the ZooKeeper session expired", delete=False)
            elif arg == "CONNECTED":
                if self._active and self._resync:
                    self._resync = False
                    self._full_sync()
                elif not self._active:
                    self._handle("ControllerChange", None)
            return
        if kind == "ControllerChange":
            # The watch's value may be older than what is there now: read it again.
            arg = self.zk.controller_id()
            if arg == self.broker_id and not self._active:
                # Ours, but the reply to our election was lost: give it up and run again
                # (deleting it brings the watch back here with None).
                self.zk.resign_controller()
                return
            if arg is None or (self._active and arg != self.broker_id):
                if self._active:
                    self._resign("/controller changed", delete=False)
                if arg is None:
                    self._try_activate()
            return
        if not self._active:
            return
        handler = getattr(self, f"_on_{kind}")
        handler(arg)

    # ---- election of the controller ----

    def _try_activate(self) -> None:
        won = self.zk.try_become_controller(self.broker_id)
        if won is None:
            return
        self._epoch, self._epoch_zk_version = won
        self._active = True
        self._generation += 1
        log.info("broker %d is the controller, epoch %d", self.broker_id, self._epoch)
        put = self._put
        self._watches = [
            self.zk.watch_brokers(lambda _: put("BrokerChange", None)),
            self.zk.watch_topics(lambda _: put("TopicChange", None)),
            self.zk.watch_children(DELETE_TOPICS, lambda _: put("TopicDeletion", None)),
            self.zk.watch_path(PREFERRED_ELECTION, lambda _: put("PreferredElection", None)),
            self.zk.watch_path(REASSIGN_PARTITIONS, lambda _: put("Reassignment", None)),
            self.zk.watch_children(CONTROLLED_SHUTDOWN, lambda _: put("ControlledShutdown", None)),
        ]
        self._next_rebalance = time.monotonic() + self.imbalance_interval_s
        self._full_sync()

    def _resign(self, why: str, *, delete: bool) -> None:
        was_active = self._active
        self._active = False
        self._generation += 1
        for handle in [*self._watches, *self._topic_watches.values()]:
            handle.cancel()
        self._watches, self._topic_watches = [], {}
        self._assignments, self._live, self._shutting = {}, {}, set()
        self._reassigning = self._resync = False
        if delete:
            try:
                self.zk.resign_controller()
            except KazooException as exc:
                log.warning("controller %d: could not delete /controller: %r", self.broker_id, exc)
        if was_active:
            log.info(
                "broker %d resigns as controller (epoch %d): %s", self.broker_id, self._epoch, why
            )

    def _full_sync(self) -> None:
        """Read everything and bring every partition to what the rules want: used on
        activation and after an error that may have lost events."""
        self._live = {b: r.epoch for b, r in self.zk.live_brokers().items()}
        self._shutting = self.zk.shutting_down_brokers() & set(self._live)
        self._on_TopicChange(None, reconcile_all=True)
        self._on_TopicDeletion(None)
        self._on_ControlledShutdown(None, every=True)
        self._on_PreferredElection(None)
        self._on_Reassignment(None)

    # ---- events ----

    def _on_Tick(self, _: None) -> None:
        if self._reassigning:
            self._on_Reassignment(None)
        if self.auto_leader_rebalance and time.monotonic() >= self._next_rebalance:
            self._next_rebalance = time.monotonic() + self.imbalance_interval_s
            self._rebalance()

    def _on_BrokerChange(self, _: None) -> None:
        now = {b: r.epoch for b, r in self.zk.live_brokers().items()}
        old = self._live
        dead = set(old) - set(now)
        started = set(now) - set(old)
        # Same id, new registration: the broker restarted between two looks. Kafka treats it
        # as a failure followed by a startup, so that leadership it held moves first.
        bounced = {b for b in set(now) & set(old) if now[b] != old[b]}
        if not (dead or started or bounced):
            return
        log.info(
            "controller %d: brokers live %s (dead %s, new %s, restarted %s)",
            self.broker_id,
            sorted(now),
            sorted(dead),
            sorted(started),
            sorted(bounced),
        )
        self._live = now
        self._shutting -= dead
        live, shutting = set(now), self._shutting
        unclean_of: dict[str, bool] = {}

        def rule(tp: TP, replicas: tuple[int, ...]) -> Transform:
            if tp[0] not in unclean_of:
                unclean_of[tp[0]] = self._unclean_for(tp[0])
            unclean = unclean_of[tp[0]]

            return lambda st: self._reconciled(
                st, replicas, live, shutting, unclean, frozenset(bounced)
            )

        self._elect(self._partitions(dead | started | bounced), rule)

    def _on_TopicChange(self, _: None, reconcile_all: bool = False) -> None:
        names = set(self.zk.topic_names())
        for gone in set(self._assignments) - names:
            self._assignments.pop(gone, None)
            handle = self._topic_watches.pop(gone, None)
            if handle is not None:
                handle.cancel()
        # A topic deleted and created again between two looks has a watch that ended.
        watched = {t for t, h in self._topic_watches.items() if not h.cancelled}
        for topic in sorted(names - watched):
            self._topic_watches[topic] = self.zk.watch_assignment(
                topic, self._assignment_watcher(topic)
            )
        for topic in sorted(names):
            if reconcile_all or topic not in self._assignments:
                self._on_AssignmentChange(topic, reconcile=reconcile_all)

    def _assignment_watcher(self, topic: str) -> Callable[[Any], None]:
        generation = self._generation
        return lambda _: self._put("AssignmentChange", topic, generation)

    def _on_AssignmentChange(self, topic: str, reconcile: bool = False) -> None:
        ta = self.zk.assignment(topic)
        if ta is None:
            self._assignments.pop(topic, None)
            return
        self._assignments[topic] = ta
        partitions = [(topic, p) for p in sorted(ta.partitions)]
        states = self.zk.partition_states(partitions)
        missing = [tp for tp in partitions if states[tp] is None]
        if missing:
            self._create_states(ta, missing)
        if reconcile:
            self._reconcile([tp for tp in partitions if states[tp] is not None])

    def _create_states(self, ta: TopicAssignment, partitions: list[TP]) -> None:
        live = set(self._live)
        ops = self.zk.fenced(self._epoch_zk_version)
        created = []
        for tp in partitions:
            st = rules.initial_state(ta.partitions[tp[1]], live, self._epoch, self._shutting)
            ops.create_state(tp[0], tp[1], st)
            created.append((tp, st))
        try:
            ops.commit()
        except KazooException as exc:
            # Created meanwhile (by our previous term) or the topic went away: decide again.
            log.info("topic %s: creating states failed (%r); re-reading", ta.topic, exc)
            for tp in partitions:
                single = self.zk.fenced(self._epoch_zk_version)
                if self.zk.partition_state(*tp) is None and self.zk.assignment(tp[0]) is not None:
                    st = rules.initial_state(
                        ta.partitions[tp[1]], live, self._epoch, self._shutting
                    )
                    single.create_state(tp[0], tp[1], st).commit()
            return
        for tp, st in created:
            log.info(
                "partition %s-%d: created, leader %d, epoch %d, isr %s",
                tp[0],
                tp[1],
                st.leader,
                st.leader_epoch,
                isr_str(st.isr),
            )

    def _on_TopicDeletion(self, _: None) -> None:
        for topic in sorted(self.zk.kazoo.get_children(DELETE_TOPICS)):
            ops = self.zk.fenced(self._epoch_zk_version)
            if self.zk.assignment(topic) is not None:
                ops.delete_topic(topic)
            else:
                ops.delete(f"{DELETE_TOPICS}/{topic}")
            try:
                ops.commit()
            except KazooException as exc:
                log.info("topic %s: deletion raced (%r); retried on the next event", topic, exc)
                continue
            log.info("topic %s: deleted", topic)
            self._assignments.pop(topic, None)

    def _on_ControlledShutdown(self, _: None, every: bool = False) -> None:
        shutting = self.zk.shutting_down_brokers() & set(self._live)
        new = shutting if every else shutting - self._shutting
        self._shutting = shutting
        if not new:
            return
        log.info("controller %d: brokers %s shutting down", self.broker_id, sorted(new))
        live = set(self._live)
        self._elect(self._partitions(new), self._placed(rules.controlled_shutdown, live, shutting))

    def _on_PreferredElection(self, _: None) -> None:
        for _attempt in range(WRITE_ATTEMPTS):
            requested, version = self.zk.preferred_election_requests()
            if version < 0:
                return
            self._elect_preferred([tp for tp in requested if tp[0] in self._assignments])
            try:
                self.zk.fenced(self._epoch_zk_version).delete(PREFERRED_ELECTION, version).commit()
                return
            except (BadVersionError, NoNodeError):
                continue  # more partitions were requested meanwhile

    def _elect_preferred(self, partitions: list[TP]) -> None:
        live, shutting = set(self._live), self._shutting
        self._elect(partitions, self._placed(rules.preferred_election, live, shutting))

    def _rebalance(self) -> None:
        partitions = self._partitions()
        states = self.zk.partition_states(partitions)
        leaders = {tp: st.leader for tp, st in states.items() if st is not None}
        assignments = {tp: self._replicas(tp) for tp in partitions}
        imbalance = rules.leader_imbalance(leaders, assignments)
        over = {b for b, pct in imbalance.items() if pct > self.imbalance_percentage}
        if not over:
            return
        log.info(
            "controller %d: leader imbalance %s; preferred elections", self.broker_id, imbalance
        )
        self._elect_preferred(
            [
                tp
                for tp in partitions
                if assignments[tp]
                and assignments[tp][0] in over
                and leaders.get(tp) != assignments[tp][0]
            ]
        )
