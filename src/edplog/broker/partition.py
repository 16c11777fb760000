"""A partition of this broker: a storage ``Log`` plus what replication adds to it.

A ``Partition`` owns the leader epoch stamped into every appended batch, the high watermark
(on one node it equals the log end offset; with followers it becomes the minimum replicated
offset of the ISR), the replica set and the ISR, and the wake-up of Fetch requests parked in a
long poll. The log itself (storage) knows nothing of these. Everything here runs on the
broker's event loop thread.
"""

from __future__ import annotations

import asyncio

from ..errors import ErrorCode
from ..storage import Log


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

    def refresh_config(self) -> None:
        """Re-read the topic settings the produce path checks (after AlterConfigs)."""
        config = self.log.config
        self.max_message_bytes = int(config.get("max.message.bytes", 1_048_588))
        self.log_append_time = config.get("message.timestamp.type") == "LogAppendTime"
        self.min_insync_replicas = int(config.get("min.insync.replicas", 1))

    @property
    def leader_epoch(self) -> int:
        return self.log.leader_epoch

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
        covered is ever served: its producers were told it failed)."""
        return self.log.readable_end_offset

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
        self.notify()
        return base, last

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch: (epoch, end offset) from the log's leader-epoch cache."""
        return self.log.leader_epochs.end_offset_for(epoch, self.log_end_offset)

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
        return f"Partition({self.topic}-{self.index}, leader_epoch={self.leader_epoch})"
