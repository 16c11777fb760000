"""The controller's writes: how one partition's new state is decided and written.

Each event handler of the controller (controller.py) picks the partitions it acts on and a
rule of partition_state.py; :meth:`ControllerWrites._elect` reads their states with one
pipelined request, and :meth:`ControllerWrites._update` applies the rule and writes the result
through ``zk.fenced(epoch_zk_version)``, stamped with this controller's epoch. A write that
fails with BadVersion (a leader changed the ISR meanwhile) is re-read and decided again, a
bounded number of times.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable

from kazoo.exceptions import BadVersionError, NoNodeError

from . import partition_state as rules
from .zk import PartitionState, TopicAssignment, ZkClient

log = logging.getLogger("edplog.cluster.controller")

#: How often a state write is re-decided after losing a race with a leader's ISR change.
WRITE_ATTEMPTS = 5

TP = tuple[str, int]
Transform = Callable[[PartitionState], PartitionState | None]


def isr_str(isr: Iterable[int]) -> str:
    """Broker ids as the log lines show them: [1,2,3]."""
    return "[" + ",".join(str(b) for b in isr) + "]"


class ControllerWrites:
    """The state the controller's rules read (set by :class:`.controller.Controller`) and
    the partition-state writes they share."""

    zk: ZkClient
    broker_id: int
    unclean: bool
    _epoch: int
    _epoch_zk_version: int
    _live: dict[int, int]  # broker id -> broker epoch
    _shutting: set[int]
    _assignments: dict[str, TopicAssignment]

    def _update(self, tp: TP, transform: Transform, state: PartitionState | None = None) -> None:
        """Decide and write one partition's state; re-read and decide again on BadVersion."""
        topic, partition = tp
        for _ in range(WRITE_ATTEMPTS):
            if state is None:
                state = self.zk.partition_state(topic, partition)
                if state is None:
                    return
            new = transform(state)
            if new is None:
                return
            new = self._stamped(new)
            try:
                self.zk.fenced(self._epoch_zk_version).set_state(
                    topic, partition, new, state.version
                ).commit()
            except (BadVersionError, NoNodeError):
                state = None
                continue
            self._log_change(tp, state, new)
            return
        log.warning("partition %s-%d: state kept changing; left for the next event", *tp)

    def _stamped(self, st: PartitionState) -> PartitionState:
        """``st`` as this controller writes it: with its controller epoch (the zk version
        comes from the write)."""
        return PartitionState(st.leader, st.leader_epoch, st.isr, self._epoch)

    def _elect(
        self, partitions: list[TP], rule: Callable[[TP, tuple[int, ...]], Transform]
    ) -> None:
        """Apply ``rule(tp, replicas)``'s transform to each partition that has a state, read
        for all of them in one pipelined request, and write what it decides (:meth:`_update`)."""
        states = self.zk.partition_states(partitions)
        for tp in partitions:
            state = states[tp]
            if state is not None:
                self._update(tp, rule(tp, self._replicas(tp)), state)

    def _placed(
        self, rule: Callable[..., PartitionState | None], live: set[int], shutting: set[int]
    ) -> Callable[[TP, tuple[int, ...]], Transform]:
        """For :meth:`_elect`: a rule of partition_state.py that takes the assignment, the live
        and the shutting-down brokers, bound to them and to this controller's epoch."""
        return lambda _tp, replicas: functools.partial(
            rule,
            assignment=replicas,
            live=live,
            controller_epoch=self._epoch,
            shutting_down=shutting,
        )

    def _log_change(self, tp: TP, old: PartitionState, new: PartitionState) -> None:
        log.info(
            "partition %s-%d: leader %d -> %d, epoch %d -> %d, isr %s -> %s",
            tp[0],
            tp[1],
            old.leader,
            new.leader,
            old.leader_epoch,
            new.leader_epoch,
            isr_str(old.isr),
            isr_str(new.isr),
        )

    def _replicas(self, tp: TP) -> tuple[int, ...]:
        ta = self._assignments.get(tp[0])
        return ta.partitions.get(tp[1], ()) if ta is not None else ()

    def _unclean_for(self, topic: str) -> bool:
        """unclean.leader.election.enable for ``topic``: its override in ZooKeeper, else the
        broker's setting (read at each election: elections are rare, configs may change)."""
        value = self.zk.topic_config(topic).get("unclean.leader.election.enable")
        if value is None:
            return self.unclean
        return value.strip().lower() == "true"

    def _partitions(self, brokers: set[int] | None = None) -> list[TP]:
        """Every known partition, or those with a replica (or one being added) in brokers."""
        out = []
        for topic, ta in self._assignments.items():
            for p, replicas in ta.partitions.items():
                if brokers is None or brokers & set(replicas):
                    out.append((topic, p))
        return out

    def _reconcile(self, partitions: list[TP]) -> None:
        """Bring ``partitions`` to what the rules want for the live brokers. A leader whose
        live registration is newer than the state (the state's zxid below the registration's
        czxid) restarted since the state was written: as for a bounce, leadership moves off it
        first (it leads nothing on a state older than its registration), and it may be elected
        again in the same write."""
        live, shutting = set(self._live), self._shutting

        def rule(tp: TP, replicas: tuple[int, ...]) -> Transform:
            unclean = self._unclean_for(tp[0])

            return lambda st: self._reconciled(st, replicas, live, shutting, unclean)

        self._elect(partitions, rule)

    def _reconciled(
        self,
        st: PartitionState,
        replicas: tuple[int, ...],
        live: set[int],
        shutting: set[int],
        unclean: bool,
        bounced: frozenset[int] = frozenset(),
    ) -> PartitionState | None:
        """:func:`rules.reconcile` for ``live``, after treating the ``bounced`` brokers and
        a leader registered since the state was written as failed (:meth:`_reconcile`)."""
        away = set(bounced)
        registered = self._live.get(st.leader)
        if registered is not None and 0 <= st.zxid < registered:
            away.add(st.leader)
        if not away:
            return rules.reconcile(st, replicas, live, self._epoch, shutting, unclean)
        first = rules.reconcile(st, replicas, live - away, self._epoch, shutting, unclean)
        base = first or st
        return rules.reconcile(base, replicas, live, self._epoch, shutting, unclean) or first
