"""Partition reassignment (KIP-455), step by step, as the active controller runs it.

A request in /admin/reassign_partitions names a partition's target replicas (None cancels a
reassignment in progress). The controller first widens the assignment to the original
replicas plus the ones being added (recorded as ``adding`` / ``removing`` in the topic's
assignment znode); once every target replica is in the ISR, the assignment becomes the target
and the ISR shrinks into it in one fenced write. The request is polled (REASSIGNMENT_POLL_S in
controller.py) until each of its partitions is done.
"""

from __future__ import annotations

import logging

from kazoo.exceptions import BadVersionError, NoNodeError

from . import partition_state as rules
from .controller_writes import TP, ControllerWrites, isr_str
from .zk import REASSIGN_PARTITIONS, PartitionState, TopicAssignment

log = logging.getLogger("edplog.cluster.controller")


class Reassignments(ControllerWrites):
    """The controller's handling of /admin/reassign_partitions."""

    _reassigning: bool

    def _on_Reassignment(self, _: None) -> None:
        requests, version = self.zk.reassignment_requests()
        if version < 0:
            self._reassigning = False
            return
        remaining = dict(requests)
        for tp, target in sorted(requests.items(), key=lambda kv: kv[0]):
            if self._reassign(tp, target):
                remaining.pop(tp)
        self._reassigning = bool(remaining)
        if remaining == requests:
            return
        ops = self.zk.fenced(self._epoch_zk_version)
        if remaining:
            entries = [
                {"topic": t, "partition": p, "replicas": None if rs is None else list(rs)}
                for (t, p), rs in remaining.items()
            ]
            ops.set_json(REASSIGN_PARTITIONS, {"version": 1, "partitions": entries}, version)
        else:
            ops.delete(REASSIGN_PARTITIONS, version)
        try:
            ops.commit()
        except (BadVersionError, NoNodeError):
            self._reassigning = True  # changed meanwhile: the next poll reads it again

    def _reassign(self, tp: TP, target: tuple[int, ...] | None) -> bool:
        """One step of one partition's reassignment; True when its request is done."""
        topic, partition = tp
        ta = self.zk.assignment(topic)
        if ta is None or partition not in ta.partitions:
            log.info("reassignment of %s-%d dropped: no such partition", topic, partition)
            return True
        replicas = ta.partitions[partition]
        adding, removing = ta.adding.get(partition, ()), ta.removing.get(partition, ())
        in_progress = bool(adding or removing)
        live, shutting = set(self._live), self._shutting
        if target is None:
            if in_progress:
                original = rules.original_replicas(replicas, adding)
                self._finish(ta, tp, original, live, shutting, "cancelled")
            return True
        if not target or len(set(target)) != len(target) or not set(target) <= live:
            log.warning(
                "reassignment of %s-%d to %s refused: needs distinct live brokers",
                topic,
                partition,
                list(target),
            )
            return True
        full, add, remove = rules.start_reassignment(replicas, adding, target)
        if (full, add, remove) != (replicas, adding, removing):
            new_ta = _with_partition(ta, partition, full, add, remove)
            self.zk.fenced(self._epoch_zk_version).set_assignment(new_ta, ta.version).commit()
            log.info(
                "partition %s-%d: reassigning %s -> %s (adding %s, removing %s)",
                topic,
                partition,
                isr_str(rules.original_replicas(replicas, adding)),
                isr_str(target),
                isr_str(add),
                isr_str(remove),
            )
            self._assignments[topic] = ta = _with_partition(
                ta, partition, full, add, remove, version=ta.version + 1
            )
        state = self.zk.partition_state(topic, partition)
        if state is None or not rules.reassignment_complete(target, state.isr):
            return False
        return self._finish(ta, tp, tuple(target), live, shutting, "completed", state)

    def _finish(
        self,
        ta: TopicAssignment,
        tp: TP,
        replicas: tuple[int, ...],
        live: set[int],
        shutting: set[int],
        what: str,
        state: PartitionState | None = None,
    ) -> bool:
        """The assignment becomes ``replicas`` and the state shrinks into it, in one write."""
        topic, partition = tp
        state = state or self.zk.partition_state(topic, partition)
        if state is None:
            return True
        new = rules.finish_reassignment(state, replicas, live, self._epoch, shutting)
        ops = self.zk.fenced(self._epoch_zk_version)
        ops.set_assignment(_with_partition(ta, partition, replicas, (), ()), ta.version)
        if new is not None:
            new = self._stamped(new)
            ops.set_state(topic, partition, new, state.version)
        try:
            ops.commit()
        except (BadVersionError, NoNodeError):
            return False  # the state or assignment moved: the next poll decides again
        log.info(
            "partition %s-%d: reassignment %s, replicas %s",
            topic,
            partition,
            what,
            isr_str(replicas),
        )
        if new is not None:
            self._log_change(tp, state, new)
        self._assignments[topic] = _with_partition(
            ta, partition, replicas, (), (), version=ta.version + 1
        )
        return True


def _with_partition(
    ta: TopicAssignment,
    partition: int,
    replicas: tuple[int, ...],
    adding: tuple[int, ...],
    removing: tuple[int, ...],
    version: int | None = None,
) -> TopicAssignment:
    def put(m: dict[int, tuple[int, ...]], value: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
        out = {p: rs for p, rs in m.items() if p != partition}
        if value:
            out[partition] = value
        return out

    return TopicAssignment(
        ta.topic,
        ta.topic_id,
        put(ta.partitions, replicas),
        put(ta.adding, adding),
        put(ta.removing, removing),
        ta.version if version is None else version,
    )
