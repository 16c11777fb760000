"""This node's partitions: appends with acks, fetch reads and the long-poll purgatory.

The API handlers decode and encode; the replica manager does the work Kafka's ReplicaManager
does: it finds (and opens on first use) the partition a request names, appends a producer's
records and makes acks=-1 wait for the group-committed flush, reads the file regions a Fetch
sends, and parks Fetches that must wait for data on the partitions' waiters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..errors import (
    DuplicateSequenceError,
    EdplogError,
    ErrorCode,
    FencedLeaderEpochError,
    InvalidTopicError,
    NotLeaderError,
    UnknownLeaderEpochError,
    UnknownTopicError,
)
from ..protocol import FileRegion
from ..storage import INTERNAL_TOPICS, Store
from ..storage.log_dirs import is_dir_failure
from ..storage.log_move import MoveAbandoned
from .group_commit import GroupCommit
from .partition import Partition, Role

READ_COMMITTED = 1
INT32_MAX = 0x7FFFFFFF
# How often a partition whose disk failed tries to become writable again (on produce).
REVIVE_INTERVAL_S = 1.0

log = logging.getLogger("edplog.broker")


@dataclass(slots=True)
class AppendResult:
    """The outcome of one partition's append."""

    error: ErrorCode = ErrorCode.NONE
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    message: str | None = None
    # Replicated partitions: the partition and the offset its records end before.
    partition: Partition | None = None
    end_offset: int = -1
    leader_epoch: int = -1


@dataclass(slots=True)
class FetchRead:
    """What one pass over a Fetch's partitions found. ``unverified`` lists the segment regions
    it would send whose CRCs were never checked (a log loaded after a clean shutdown): they
    are checked off the event loop before the fetch is answered."""

    total_bytes: int
    failed: bool
    partitions: list[Partition]
    unverified: list[tuple[Partition, Any, int]]


class ReplicaManager:
    """This node's partitions (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        node_id: int,
        commit: GroupCommit,
        flush_on_acks_all: bool,
        validate_compressed_records: bool = True,
    ):
        self.store = store
        self.validate_compressed_records = validate_compressed_records
        self.node_id = node_id
        self.commit = commit
        self.flush_on_acks_all = flush_on_acks_all
        self.closing = False
        self._partitions: dict[str, list[Partition]] = {}
        self._shutdown: asyncio.Future[None] | None = None
        self._revive_attempts: dict[tuple[str, int], float] = {}
        self._loose: dict[tuple[str, int], Partition] = {}
        # Moves between log dirs in progress: (topic, index) -> (destination, task).
        self._moves: dict[tuple[str, int], tuple[str, asyncio.Task[None]]] = {}
        # Called (on the event loop) when the last online log dir fails: the broker stops.
        self.on_all_dirs_offline: Callable[[], None] | None = None
        # Cluster mode: the partitions this broker hosts (leads or follows) are set by the
        # replication manager from the cluster's metadata; nothing is opened on first use.
        self.cluster = False
        self.hosted: dict[tuple[str, int], Partition] = {}

    # ---- partitions ------------------------------------------------------------------------

    def partitions(self, topic: str) -> list[Partition] | None:
        """The partitions of ``topic`` (opened on first use), or None if it does not exist.
        An offline partition raises PartitionOfflineError when it is asked for by index.
        In a cluster: the partitions of it this broker hosts."""
        if self.cluster:
            if topic not in self.store.topics():
                return None
            return [p for (t, _), p in sorted(self.hosted.items()) if t == topic]
        parts = self._partitions.get(topic)
        if parts is not None:
            return parts
        count = self.store.topics().get(topic)
        if count is None:
            return None
        parts = []
        for i in range(count):
            try:
                parts.append(self._partition(topic, i))
            except EdplogError:
                break  # offline from here: asked for by index, it raises
        if len(parts) == count:
            self._partitions[topic] = parts
        return parts

    def partition(self, topic: str, index: int, current_leader_epoch: int = -1) -> Partition | None:
        """The partition, None when it does not exist; PartitionOfflineError when it exists
        but could not be opened; in a cluster, NotLeaderError unless this broker leads it.

        A request that names the leader epoch it expects (``current_leader_epoch`` >= 0) is
        told about the epoch first, as Kafka tells it (KIP-320): a replica of this broker at
        an older epoch answers UNKNOWN_LEADER_EPOCH (the new state reached the sender first,
        say a follower told of its new leader before the leader itself), one at a newer
        epoch FENCED_LEADER_EPOCH, and only a replica at that very epoch that does not lead
        NOT_LEADER_OR_FOLLOWER. A follower backs off briefly after the first and for
        ``replica.fetch.backoff.ms`` after the last."""
        if self.cluster:
            found = self.hosted.get((topic, index))
            if found is not None and found.role is Role.LEADER:
                return found
            count = self.store.topics().get(topic)
            if count is None or not 0 <= index < count:
                return None
            if found is not None:
                code = found.leader_epoch_error(current_leader_epoch)
                if code == ErrorCode.UNKNOWN_LEADER_EPOCH:
                    raise UnknownLeaderEpochError(
                        f"broker {self.node_id} has {topic}-{index} at epoch "
                        f"{found.leader_epoch}, not yet at {current_leader_epoch}"
                    )
                if code == ErrorCode.FENCED_LEADER_EPOCH:
                    raise FencedLeaderEpochError(
                        f"{topic}-{index} is at epoch {found.leader_epoch} here, past "
                        f"{current_leader_epoch}"
                    )
                raise NotLeaderError(f"broker {self.node_id} does not lead {topic}-{index}")
            raise NotLeaderError(f"broker {self.node_id} has no replica of {topic}-{index}")
        parts = self.partitions(topic)
        if parts is not None and 0 <= index < len(parts):
            return parts[index]
        count = self.store.topics().get(topic)
        if count is None or not 0 <= index < count:
            return None
        # A topic with an offline partition is not cached whole: its online partitions are
        # kept one by one, as long as their log is the one the store has.
        log_ = self.store.log(topic, index)  # raises PartitionOfflineError
        found = self._loose.get((topic, index))
        if found is None or found.log is not log_:
            found = self._partition(topic, index)
            self._loose[(topic, index)] = found
        return found

    def partition_count(self, topic: str) -> int | None:
        return self.store.topics().get(topic)

    def topic_deleted(self, topic: str) -> None:
        """Forget a deleted topic's partitions and wake fetches parked on them."""
        for partition in self._partitions.pop(topic, None) or ():
            partition.notify()
        for key in [k for k in self._loose if k[0] == topic]:
            self._loose.pop(key).notify()

    def partitions_added(self, topic: str) -> None:
        """Open the new partitions, keeping the old ones (and their waiters)."""
        parts = self._partitions.get(topic)
        count = self.store.topics().get(topic, 0)
        if parts is not None:
            for i in range(len(parts), count):
                parts.append(self._partition(topic, i))

    def _partition(self, topic: str, index: int) -> Partition:
        log_ = self.store.log(topic, index)
        log_.check_compressed_records = self.validate_compressed_records
        return Partition(topic, index, log_, self.node_id)

    def config_changed(self, topic: str) -> None:
        for partition in self._partitions.get(topic, ()):
            partition.refresh_config()
        for (name, _), partition in self._loose.items():
            if name == topic:
                partition.refresh_config()

    def all_partitions(self) -> list[Partition]:
        if self.cluster:
            return list(self.hosted.values())
        return [p for parts in self._partitions.values() for p in parts] + list(
            self._loose.values()
        )

    # ---- shutdown ------------------------------------------------------------------------

    def shutdown_waiter(self) -> asyncio.Future[None]:
        """Completes when shutdown starts, so long polls return at once."""
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_future()
        return self._shutdown

    def begin_shutdown(self) -> None:
        self.closing = True
        waiter = self.shutdown_waiter()
        if not waiter.done():
            waiter.set_result(None)
        for partition in self.all_partitions():
            partition.notify()

    # ---- produce ---------------------------------------------------------------------------

    def append(
        self, topic: str, index: int, records: Any, now_ms: int, acks: int = 1
    ) -> tuple[AppendResult, Any]:
        """Append one partition's records; returns the result and the log to flush (for
        acks=-1), or None when nothing was appended. acks=-1 is refused with
        NOT_ENOUGH_REPLICAS before anything is written when the ISR is smaller than the
        topic's min.insync.replicas, as Kafka does."""
        result = AppendResult()
        if topic in INTERNAL_TOPICS:  # as in Kafka: only the broker writes these
            result.error = InvalidTopicError.kafka_code
            result.message = f"{topic} is an internal topic: only the broker writes to it"
            return result, None
        try:
            partition = self.partition(topic, index)
        except EdplogError as exc:
            result.error, result.message = exc.kafka_code, str(exc)
            return result, None
        if partition is None:
            result.error = UnknownTopicError.kafka_code
            return result, None
        if records is None or len(records) == 0:
            result.error = ErrorCode.CORRUPT_MESSAGE
            return result, None
        if len(records) > partition.max_message_bytes:
            result.error = ErrorCode.MESSAGE_TOO_LARGE
            return result, None
        if partition.role is not Role.LEADER:
            result.error = ErrorCode.NOT_LEADER_OR_FOLLOWER
            result.message = f"broker {self.node_id} does not lead {topic}-{index}"
            return result, None
        if acks == -1 and len(partition.isr) < partition.min_insync_replicas:
            result.error = ErrorCode.NOT_ENOUGH_REPLICAS
            result.message = (
                f"{len(partition.isr)} in-sync replica(s), min.insync.replicas is "
                f"{partition.min_insync_replicas}"
            )
            return result, None
        if partition.log.poisoned:
            self.maybe_revive(partition)
        append_time = now_ms if partition.log_append_time else None
        try:
            base, last = partition.append(records, append_time)
        except DuplicateSequenceError as exc:
            # A retry of a batch already stored: answered as Kafka does, success with the
            # original offsets — and for acks=-1 only once the original is as durable (and,
            # in a cluster, as replicated) as a first append would have to be.
            base, last = exc.base_offset, exc.last_offset
            if last < base:
                last = base
        except EdplogError as exc:
            result.error, result.message = exc.kafka_code, str(exc)
            return result, None
        except OSError as exc:
            if not is_dir_failure(exc):
                raise
            self.dir_failed(os.path.dirname(partition.log.path), f"{topic}-{index}: {exc}")
            result.error = ErrorCode.KAFKA_STORAGE_ERROR
            result.message = f"the log dir of {topic}-{index} failed: {exc}"
            return result, None
        result.base_offset = base
        result.log_append_time_ms = append_time if append_time is not None else -1
        result.log_start_offset = partition.log_start_offset
        if partition.replicated:
            result.partition, result.end_offset = partition, last + 1
            result.leader_epoch = partition.leader_epoch
        return result, partition.log

    def must_wait(self, pending: list[tuple[Any, AppendResult]]) -> bool:
        """Whether acks=-1 results wait: for a flush, or for the ISR (in a cluster)."""
        return bool(pending) and (self.flush_on_acks_all or self.cluster)

    async def wait_durable(
        self, pending: list[tuple[Any, AppendResult]], timeout_ms: int = 30_000
    ) -> None:
        """acks=-1: answer once the logs are flushed (when flush.on.acks.all holds) and, in a
        cluster, once every in-sync replica has the records (the high watermark passed them);
        a failed flush fails every result that waited on it with KAFKA_STORAGE_ERROR (its
        records are never served); the ISR not catching up within ``timeout_ms`` gives
        REQUEST_TIMED_OUT."""
        if not pending:
            return
        if self.flush_on_acks_all:
            await self._flush(pending)
        replicated = [(r, r.partition) for _, r in pending if r.partition is not None]
        if not replicated:
            return
        waits = {
            id(r): p.wait_replicated(r.end_offset, r.leader_epoch)
            for r, p in replicated
            if r.error == ErrorCode.NONE
        }
        if not waits:
            return
        await asyncio.wait(list(waits.values()), timeout=max(0, timeout_ms) / 1000.0)
        for r, p in replicated:
            fut = waits.get(id(r))
            if fut is None:
                continue
            if not fut.done():
                fut.cancel()
                r.error = ErrorCode.REQUEST_TIMED_OUT
                r.message = (
                    f"the in-sync replicas of {p.topic}-{p.index} did not reach offset "
                    f"{r.end_offset} within {timeout_ms} ms"
                )
            elif fut.result() != ErrorCode.NONE:
                r.error = fut.result()
                r.message = f"{p.topic}-{p.index}: {r.error.name} (isr {p.isr})"
            if r.error not in (ErrorCode.NONE, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND):
                r.base_offset = -1

    async def _flush(self, pending: list[tuple[Any, AppendResult]]) -> None:
        try:
            await self.commit.flush([log for log, _ in pending])
        except Exception as exc:
            if is_dir_failure(exc):
                for failed in {os.path.dirname(lg.path) for lg, _ in pending if lg.poisoned}:
                    self.dir_failed(failed, f"flush failed: {exc}")
            code = exc.kafka_code if isinstance(exc, EdplogError) else None
            for _, result in pending:
                result.error = (
                    code
                    if code not in (None, ErrorCode.UNKNOWN_SERVER_ERROR)
                    else (ErrorCode.KAFKA_STORAGE_ERROR)
                )
                result.message = str(exc) or type(exc).__name__
                result.base_offset = -1

    # ---- fetch -----------------------------------------------------------------------------

    def read(
        self,
        req: dict[str, Any],
        replica_id: int,
        results: list[list[dict[str, Any]]],
        replica_epoch: int = -1,
    ) -> FetchRead:
        """One pass over a Fetch's partitions, filling ``results`` (per topic, per partition,
        the response dicts) with file regions and offsets. Kafka's KIP-74 rule: the first
        partition with data returns at least one whole batch even above the limits; later
        ones only what fits in the remaining budget."""
        isolation = req.get("isolation_level", 0) or 0
        budget = req.get("max_bytes", INT32_MAX)
        if budget is None or budget <= 0:
            budget = INT32_MAX
        total = 0
        failed = False
        seen: list[Partition] = []
        unverified: list[tuple[Partition, Any, int]] = []
        for topic, topic_results in zip(req["topics"], results, strict=True):
            name = topic.get("topic")
            for preq, result in zip(topic["partitions"], topic_results, strict=True):
                result["records"] = b""
                try:
                    partition = (
                        self.partition(
                            name, preq["partition"], preq.get("current_leader_epoch", -1)
                        )
                        if name
                        else None
                    )
                except EdplogError as exc:
                    result["error_code"] = exc.kafka_code
                    failed = True
                    continue
                if partition is None:
                    result["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    failed = True
                    continue
                seen.append(partition)
                code = partition.leader_epoch_error(preq.get("current_leader_epoch", -1))
                if partition.role is not Role.LEADER:
                    code = code or ErrorCode.NOT_LEADER_OR_FOLLOWER
                elif replica_id >= 0 and not code and partition.replicated:
                    partition.follower_fetched(
                        replica_id, preq["fetch_offset"], replica_epoch, int(time.time() * 1000)
                    )
                hw = partition.high_watermark
                result["error_code"] = code
                result["high_watermark"] = hw
                result["last_stable_offset"] = partition.last_stable_offset
                result["log_start_offset"] = partition.log_start_offset
                if code:
                    failed = True
                    continue
                offset = preq["fetch_offset"]
                limit = partition.fetch_limit(replica_id, isolation)
                if limit <= offset <= max(hw, partition.log_end_offset):
                    # Caught up: nothing to send yet. Between the high watermark and the log
                    # end (a new leader whose high watermark has not caught up yet) too:
                    # those offsets exist, they are only not committed yet.
                    continue
                allowance = min(preq["partition_max_bytes"], budget - total)
                if total > 0 and allowance <= 0:
                    continue
                try:
                    slices = partition.log.fetch_slices(
                        offset,
                        max(allowance, 1),
                        partition.fetch_limit(replica_id, isolation),
                        verify=False,
                    )
                except EdplogError as exc:
                    result["error_code"] = exc.kafka_code
                    failed = True
                    continue
                size = sum(length for _, _, length in slices)
                if not slices or (total > 0 and size > allowance):
                    continue
                for seg, pos, length in slices:
                    if seg.verified_pos < pos + length:
                        unverified.append((partition, seg, pos + length))
                result["records"] = [FileRegion(seg, pos, length) for seg, pos, length in slices]
                total += size
        return FetchRead(total, failed, seen, unverified)

    async def verify(self, regions: list[tuple[Partition, Any, int]]) -> None:
        """Check the CRCs of segment regions a fetch is about to send, off the event loop (it
        reads them from disk, which also brings them into the page cache for the sendfile).
        A damaged batch takes its partition offline, logged with the file and position:
        clients then get KAFKA_STORAGE_ERROR for it, never the damaged bytes."""
        loop = asyncio.get_running_loop()
        for partition, seg, upto in regions:
            try:
                await loop.run_in_executor(None, seg.verify, upto)
            except (EdplogError, OSError) as exc:
                self.take_offline(partition, f"damaged data: {exc}")

    def take_offline(self, partition: Partition, reason: str) -> None:
        if self.store.manager.mark_offline(partition.topic, partition.index, reason):
            log.error("partition %s-%d is offline: %s", partition.topic, partition.index, reason)
        self._partitions.pop(partition.topic, None)
        partition.notify()

    def dir_failed(self, path: str, reason: str) -> None:
        """A log dir's disk failed: take it offline with its partitions (their logs are
        closed off the event loop), wake what waits on them, and when no log dir is left
        online, tell the broker to stop (as Kafka does)."""
        manager = self.store.manager
        detached = manager.fail_dir(path, reason, close=False)
        if detached is None:
            return
        hit = {topic for (topic, _), home in list(manager.placements().items()) if home == path}
        for topic in hit:
            for partition in self._partitions.pop(topic, None) or ():
                partition.notify()
        for key in [k for k in self._loose if k[0] in hit]:
            self._loose.pop(key).notify()
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, manager.close_detached, detached)
        if not manager.online_dirs():
            log.error("every log dir is offline: the broker shuts down")
            if self.on_all_dirs_offline is not None:
                self.on_all_dirs_offline()

    # ---- moves between log dirs ---------------------------------------------------------

    def start_move(self, topic: str, index: int, path: str) -> ErrorCode:
        """AlterReplicaLogDirs: start moving a partition to the log dir ``path`` (it keeps
        serving meanwhile; see Store.move_partition). Kafka's answers: LOG_DIR_NOT_FOUND for a
        path that is not a configured log dir, KAFKA_STORAGE_ERROR for an offline one,
        REASSIGNMENT_IN_PROGRESS while it is moving elsewhere, NONE when it is already
        there or the move started."""
        manager = self.store.manager
        dst = next(
            (d for d in manager.data_dirs if os.path.abspath(d) == os.path.abspath(path)), None
        )
        if dst is None:
            return ErrorCode.LOG_DIR_NOT_FOUND
        if dst in manager.offline_dirs():
            return ErrorCode.KAFKA_STORAGE_ERROR
        try:
            partition = self.partition(topic, index)
        except EdplogError as exc:
            return exc.kafka_code
        if partition is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        key = (topic, index)
        moving = self._moves.get(key)
        if moving is not None:
            return ErrorCode.NONE if moving[0] == dst else ErrorCode.REASSIGNMENT_IN_PROGRESS
        if manager.dir_of(topic, index) == dst:
            return ErrorCode.NONE
        task = asyncio.get_running_loop().create_task(self._move(topic, index, dst))
        self._moves[key] = (dst, task)
        return ErrorCode.NONE

    def moving(self) -> dict[tuple[str, int], str]:
        """Partitions being moved, and the log dir each is going to."""
        return {key: dst for key, (dst, _) in self._moves.items()}

    async def _move(self, topic: str, index: int, dst: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.store.move_partition, topic, index, dst)
        except MoveAbandoned as exc:
            log.info("move of %s-%d to %s abandoned: %s", topic, index, dst, exc)
        except Exception as exc:
            log.error("moving %s-%d to %s failed: %s", topic, index, dst, exc)
            if is_dir_failure(exc):
                self.dir_failed(dst, f"moving {topic}-{index} there: {exc}")
        finally:
            self._moves.pop((topic, index), None)
            # The partition is served from its new log: rebuild it on next use.
            for partition in self._partitions.pop(topic, None) or ():
                partition.notify()
            stale = self._loose.pop((topic, index), None)
            if stale is not None:
                stale.notify()

    def maybe_revive(self, partition: Partition) -> None:
        """A partition whose disk failed: try, at most once a second and off the event loop,
        to make it writable again (space may have been freed). Until then its produces are
        answered KAFKA_STORAGE_ERROR."""
        now = time.monotonic()
        last = self._revive_attempts.get((partition.topic, partition.index), 0.0)
        if now - last < REVIVE_INTERVAL_S:
            return
        self._revive_attempts[(partition.topic, partition.index)] = now
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, _revive, partition)

    def long_poll(
        self,
        seen: list[Partition],
        deadline: float,
        again: Any,
    ) -> Coroutine[Any, Any, Any]:
        """Park on the partitions' waiters now (in the step that read them: an append handled
        before the waiting task first runs must still wake it), then await ``again()`` after
        each wake-up until it says it is done, the deadline passes or shutdown starts."""
        waiters = [p.waiter() for p in seen]
        return self._poll(seen, waiters, deadline, again)

    async def _poll(
        self,
        seen: list[Partition],
        waiters: list[asyncio.Future[None]],
        deadline: float,
        again: Any,
    ) -> Any:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait(
                    [*waiters, self.shutdown_waiter()],
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for partition, fut in zip(seen, waiters, strict=True):
                    partition.discard_waiter(fut)
                    fut.cancel()
            done, body, seen = await again()
            if done or not seen or self.closing or deadline - loop.time() <= 0:
                return body
            waiters = [p.waiter() for p in seen]


def _revive(partition: Partition) -> None:
    try:
        partition.log.revive()
    except Exception:  # never let a failed attempt kill the executor's caller
        log.exception("reviving %s-%d failed", partition.topic, partition.index)
