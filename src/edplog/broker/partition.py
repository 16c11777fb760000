"""A partition of this broker: a storage ``Log`` plus what replication adds to it.

A ``Partition`` owns the leader epoch stamped into every appended batch, the high watermark
(on one node it equals the log end offset; with followers it becomes the minimum replicated
offset of the ISR), the replica set and the ISR, and the wake-up of Fetch requests parked in a
long poll. The log itself (storage) knows nothing of these. Everything here runs on the
broker's event loop thread.

In a cluster (``replicated``) a partition is the leader, a follower, or neither (its state
is not known yet, or this broker's ZooKeeper session is suspended): only a leader takes
produces and consumer fetches. The leader tracks its followers (:class:`ReplicaTracker`),
keeps the high watermark at the smallest log end offset of the ISR, and completes acks=-1
produces once it passes their records. The ISR it should have is ``maybe_change_isr``'s
answer; the replication manager writes it to ZooKeeper (a versioned write) and
``isr_updated`` applies it once that succeeded.
"""

from __future__ import annotations

import asyncio
import enum

from ..cluster.isr import ReplicaTracker
from ..cluster.zk import PartitionState
from ..errors import ErrorCode
from ..storage import Log


class Role(enum.Enum):
    LEADER = "leader"
    FOLLOWER = "follower"
    NONE = "none"


class Partition:
    """One partition this broker leads (see the module docstring)."""

    def __init__(self, topic: str, index: int, log: Log, node_id: int, leader_epoch: int = 0):
        self.topic = topic
        self.index = index
        self.log = log
        self.node_id = node_id
        self.leader_id = node_id
        self.replicas: list[int] = [node_id]
        self.isr: list[int] = [node_id]
        self._waiters: list[asyncio.Future[None]] = []
        self.max_message_bytes = 0
        self.log_append_time = False
        self.min_insync_replicas = 1
        log.set_leader_epoch(leader_epoch)
        self.refresh_config()
        # Cluster mode (see the module docstring); a single node is always its own leader.
        self.replicated = False
        self.role = Role.LEADER
        self._epoch = leader_epoch
        self._hw = 0
        self.state_version = -1
        self.tracker: ReplicaTracker | None = None
        self._acks: list[tuple[int, asyncio.Future[ErrorCode]]] = []
        self.isr_change_pending = False
        # The state znode as last applied (what an ISR change is written against).
        self.zk_state: PartitionState | None = None

    def refresh_config(self) -> None:
        """Re-read the topic settings the produce path checks (after AlterConfigs)."""
        config = self.log.config
        self.max_message_bytes = int(config.get("max.message.bytes", 1_048_588))
        self.log_append_time = config.get("message.timestamp.type") == "LogAppendTime"
        self.min_insync_replicas = int(config.get("min.insync.replicas", 1))

    @property
    def leader_epoch(self) -> int:
        """The partition's current leader epoch (on a follower: the leader's)."""
        return self._epoch if self.replicated else self.log.leader_epoch

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def high_watermark(self) -> int:
        """The offset below which records are committed: on one node the log end, or, after
        the disk failed an fsync, the last offset it made durable (nothing the failed fsync
        covered is ever served: its producers were told it failed). In a cluster, the
        smallest log end offset of the ISR as the leader last learnt it (never above what
        this log can serve)."""
        if self.replicated:
            return min(self._hw, self.log.readable_end_offset)
        return self.log.readable_end_offset

    @property
    def offsets_lag_election(self) -> bool:
        """Whether this leader's high watermark is still below the start of its epoch: just
        elected, it knows the committed end only as the previous leader last told it, which
        can be below what that leader had already let consumers read. Until a fetch from every
        ISR follower lifts it past the epoch's start, ListOffsets answers OFFSET_NOT_AVAILABLE
        for the end and for times (Kafka's rule, KIP-207), rather than an end that went back."""
        tracker = self.tracker
        return (
            self.replicated
            and tracker is not None
            and self.role is Role.LEADER
            and self.high_watermark < tracker.epoch_start_offset
        )

    @property
    def last_stable_offset(self) -> int:
        """Equal to the high watermark until transactions can leave records undecided."""
        return self.high_watermark

    def leader_epoch_error(self, current_leader_epoch: int | None) -> ErrorCode:
        """Kafka's KIP-320 fencing: NONE, FENCED_LEADER_EPOCH for a client behind us, or
        UNKNOWN_LEADER_EPOCH for one ahead of us. -1 means the client did not say."""
        if current_leader_epoch is None or current_leader_epoch < 0:
            return ErrorCode.NONE
        if current_leader_epoch < self.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        if current_leader_epoch > self.leader_epoch:
            return ErrorCode.UNKNOWN_LEADER_EPOCH
        return ErrorCode.NONE

    def fetch_limit(self, replica_id: int, isolation_level: int) -> int:
        """The offset a fetcher may read up to: followers read to the log end, consumers to
        the high watermark (read_uncommitted) or the last stable offset (read_committed)."""
        if replica_id >= 0:
            return self.log_end_offset
        return self.last_stable_offset if isolation_level == 1 else self.high_watermark

    def append(self, records: memoryview, log_append_time_ms: int | None) -> tuple[int, int]:
        """Append a producer's batches (one buffer, validated and rewritten in C), stamped
        with this leader's epoch. Idempotent batches have their sequences checked by the
        log (a retry raises DuplicateSequenceError with the original offsets). Wakes every
        Fetch waiting on this partition."""
        base, last = self.log.append_batches(
            records, leader_epoch=self.leader_epoch, log_append_time_ms=log_append_time_ms
        )
        if self.tracker is not None:
            self._advance()
        self.notify()
        return base, last

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch: (epoch, end offset) from the log's leader-epoch cache."""
        return self.log.leader_epochs.end_offset_for(epoch, self.log_end_offset)

    # ---- cluster roles ----------------------------------------------------------------------

    def make_leader(
        self, leader_epoch: int, replicas: list[int], isr: list[int], version: int, now_ms: int
    ) -> None:
        """Lead from ``leader_epoch`` (the controller's state): batches appended from now on
        carry it; followers are tracked from scratch."""
        self.replicated = True
        new_epoch = leader_epoch != self._epoch or self.role is not Role.LEADER
        self._epoch = leader_epoch
        self.log.set_leader_epoch(leader_epoch)
        self.leader_id = self.node_id
        self.replicas = list(replicas)
        self.isr = list(isr)
        self.state_version = version
        self.role = Role.LEADER
        if new_epoch or self.tracker is None:
            start = next(
                (e.start_offset for e in self.log.leader_epochs.entries if e.epoch == leader_epoch),
                self.log_end_offset,
            )
            self.tracker = ReplicaTracker(
                self.node_id, self.replicas, self.isr, self._hw, start, now_ms
            )
        else:
            self.tracker.isr = list(isr)
            self.tracker.set_replicas(self.replicas, now_ms)
        self._advance()
        self.notify()

    def make_follower(
        self, leader_id: int, leader_epoch: int, replicas: list[int], isr: list[int], version: int
    ) -> None:
        """Follow ``leader_id``: stop taking produces; pending acks=-1 produces fail with
        NOT_LEADER_OR_FOLLOWER (their records may or may not survive: the client retries)."""
        self.replicated = True
        self._epoch = leader_epoch
        self.leader_id = leader_id
        self.replicas = list(replicas)
        self.isr = list(isr)
        self.state_version = version
        self.role = Role.FOLLOWER if leader_id >= 0 else Role.NONE
        self.tracker = None
        self._fail_acks(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        self.notify()

    def make_inactive(self) -> None:
        """Neither lead nor follow (session suspended, or no longer a replica)."""
        self.role = Role.NONE
        self.tracker = None
        self._fail_acks(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        self.notify()

    def propose_isr(self, isr: list[int]) -> None:
        """A change to ``isr`` is being written: until it ends, the high watermark waits for
        every member it adds too (the maximal ISR, cluster/isr.py)."""
        self.isr_change_pending = True
        if self.tracker is not None:
            self.tracker.proposed = list(isr)

    def end_isr_proposal(self) -> None:
        """The change in flight ended (written, refused or failed)."""
        self.isr_change_pending = False
        if self.tracker is not None:
            self.tracker.proposed = None

    def isr_updated(self, isr: list[int], version: int) -> None:
        """The ISR change this leader asked for was written (at zk ``version``)."""
        self.isr = list(isr)
        self.state_version = version
        if self.tracker is not None:
            self.tracker.isr = list(isr)
            self._advance()

    def follower_high_watermark(self, leader_hw: int) -> None:
        """A follower learns the leader's high watermark from each fetch response."""
        hw = min(leader_hw, self.log_end_offset)
        if hw > self._hw:
            self._hw = hw

    def follower_fetched(
        self, replica_id: int, fetch_offset: int, broker_epoch: int, now_ms: int
    ) -> None:
        """A follower's fetch arrived (leader only): track it, maybe move the high watermark,
        and ask for its return to the ISR when it has caught up."""
        tracker = self.tracker
        if tracker is None:
            return
        if tracker.fetched(replica_id, fetch_offset, broker_epoch, self.log_end_offset, now_ms):
            self._advance()

    def maybe_change_isr(
        self,
        now_ms: int,
        lag_time_max_ms: int,
        live_epochs: dict[int, int],
        barred: frozenset[int] = frozenset(),
    ) -> list[int] | None:
        """The ISR this leader should have now (laggards out, caught-up followers in), or None
        when it is right as it is. ``barred`` brokers (shutting down) never join."""
        tracker = self.tracker
        if tracker is None or self.role is not Role.LEADER:
            return None
        out = set(tracker.lagging(now_ms, lag_time_max_ms))
        out |= {r for r in self.isr if r != self.node_id and r not in live_epochs}
        joining = [r for r in tracker.joinable(live_epochs) if r not in barred]
        if not out and not joining:
            return None
        return [r for r in self.replicas if (r in self.isr and r not in out) or r in joining]

    def _advance(self) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        if tracker.advance_high_watermark(self.log.readable_end_offset):
            self._hw = tracker.high_watermark
            self.notify()
        self._complete_acks()

    def wait_replicated(
        self, end_offset: int, leader_epoch: int | None = None
    ) -> asyncio.Future[ErrorCode]:
        """acks=-1: a future completed with NONE once the high watermark reaches
        ``end_offset`` with at least min.insync.replicas in the ISR, with
        NOT_ENOUGH_REPLICAS_AFTER_APPEND when it got there with fewer (Kafka's rule), or with
        NOT_LEADER_OR_FOLLOWER when this broker stops leading first — or had already stopped,
        or leads at another epoch than ``leader_epoch`` (the one the records were appended
        at), when the wait begins (after a flush, say)."""
        fut: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        if self.role is not Role.LEADER or (
            leader_epoch is not None and leader_epoch != self.leader_epoch
        ):
            fut.set_result(ErrorCode.NOT_LEADER_OR_FOLLOWER)
            return fut
        self._acks.append((end_offset, fut))
        self._complete_acks()
        return fut

    def _complete_acks(self) -> None:
        if not self._acks:
            return
        hw = self.high_watermark
        code = (
            ErrorCode.NONE
            if len(self.isr) >= self.min_insync_replicas
            else ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        )
        waiting = []
        for end, fut in self._acks:
            if fut.done():
                continue
            if end <= hw:
                fut.set_result(code)
            else:
                waiting.append((end, fut))
        self._acks = waiting

    def _fail_acks(self, code: ErrorCode) -> None:
        acks, self._acks = self._acks, []
        for _, fut in acks:
            if not fut.done():
                fut.set_result(code)

    def waiter(self) -> asyncio.Future[None]:
        """A future completed by the next append (or by ``notify`` on deletion/shutdown)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def discard_waiter(self, fut: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass

    def __repr__(self) -> str:
        return (
            f"Partition({self.topic}-{self.index}, {self.role.value}, "
            f"leader_epoch={self.leader_epoch})"
        )
