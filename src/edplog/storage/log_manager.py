"""The logs of the log directories: opening and recovering them, creating and deleting their
directories, and the background work over all of them.

Partition directories are ``<dir>/<topic>-<partition>/`` (Kafka's ``log.dirs`` layout): each
partition lives in exactly one of the directories, and a new one goes to the online directory
holding the fewest partitions (Kafka's rule). A directory whose disk fails (EIO, EROFS; see
:mod:`.log_dirs`) is taken offline with every partition in it; the others keep serving. A
directory that cannot be used at start is offline from the start, unless it is the only one.
A half-made copy of a move (``<topic>-<partition>-future``) is removed on start. A deleted
partition's directory is first renamed to ``<topic>-<partition>.<id>-delete`` (so a crash in
the middle never leaves half a topic behind under its name) and then removed; leftovers are
removed on the next start.

Faults stay where they happen: a partition that cannot be opened (damage that would lose
flushed data, a missing segment) is recorded as *offline* with the reason and every other
partition opens; one partition's failing retention or compaction is logged and the others go
on; shutdown closes every log it can.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EdplogError, PartitionOfflineError, StorageError, UnknownTopicError
from .cleaner import DEDUPE_BUFFER_BYTES
from .log import Log
from .log_dirs import FUTURE_SUFFIX, is_dir_failure, split_log_dirs
from .log_move import (
    MoveAbandoned,
    MoveJob,
    MoveProgress,
    copy_changed,
    fsync_dir,
    fsync_tree,
)

log = logging.getLogger("edplog.storage")

TopicPartition = tuple[str, int]


@dataclass
class HousekeepingResult:
    segments_deleted: int = 0
    records_compacted: int = 0
    producers_expired: int = 0
    failures: int = 0


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_partition_dir(name: str) -> TopicPartition | None:
    """(topic, partition) for a partition directory name, else None."""
    topic, sep, part = name.rpartition("-")
    if not sep or not topic or not part.isdigit():
        return None
    return topic, int(part)


class LogManager:
    """Every partition log of the log directories (see the module docstring).

    ``data_dirs`` is one directory, a ``log.dirs`` string (comma-separated) or a list; the
    first is where the per-node files live (``data_dir``). ``offline_dirs`` names directories
    the caller already found unusable (with the reason). ``defaults`` sets the config of every
    log that does not override it (Kafka topic-level names). ``accept_gaps`` opens logs with
    missing segments (``log.accept.missing.segments``). ``move_bytes_per_second`` caps how
    fast a move between log dirs copies while the partition serves (0: no cap; Kafka's
    ``replica.alter.log.dirs.io.max.bytes.per.second``).
    """

    def __init__(
        self,
        data_dirs: str | os.PathLike[str] | Sequence[str],
        defaults: Mapping[str, Any] | None = None,
        *,
        accept_gaps: bool = False,
        offline_dirs: Mapping[str, str] | None = None,
        move_bytes_per_second: int = 0,
    ) -> None:
        self.data_dirs = split_log_dirs(data_dirs)
        self.data_dir = self.data_dirs[0]
        self.defaults = dict(defaults or {})
        self.accept_gaps = accept_gaps
        self._lock = threading.RLock()
        self._logs: dict[TopicPartition, Log] = {}
        self._offline: dict[TopicPartition, str] = {}
        self._dir_of: dict[TopicPartition, str] = {}
        self._offline_dirs: dict[str, str] = {}
        self._moves: dict[TopicPartition, MoveJob] = {}
        self.move_bytes_per_second = move_bytes_per_second
        for path in self.data_dirs:
            reason = (offline_dirs or {}).get(path)
            if reason is None:
                try:
                    os.makedirs(path, exist_ok=True)
                    self._remove_leftovers(path)
                except OSError as exc:
                    if len(self.data_dirs) == 1:
                        raise
                    reason = str(exc)
            if reason is not None:
                self._offline_dirs[path] = reason
                log.error("log dir %s is offline: %s", path, reason)
        if len(self._offline_dirs) == len(self.data_dirs):
            raise StorageError(f"no log dir is usable: {self._offline_dirs}")
        self.discover()

    def _remove_leftovers(self, path: str) -> None:
        """Deleted partitions, and the copies of moves a crash interrupted."""
        for name in os.listdir(path):
            if name.endswith("-delete") or name.endswith(FUTURE_SUFFIX):
                shutil.rmtree(os.path.join(path, name), ignore_errors=True)

    def online_dirs(self) -> list[str]:
        return [d for d in self.data_dirs if d not in self._offline_dirs]

    def offline_dirs(self) -> dict[str, str]:
        """Log directories taken offline, with the reason."""
        return dict(self._offline_dirs)

    def discover(self) -> list[TopicPartition]:
        """The partition directories present in the online log dirs, in name order. A
        partition found in two directories (a move interrupted after its copy was complete:
        both are whole) is kept in the first and the other copy is removed."""
        found: list[TopicPartition] = []
        for path in self.online_dirs():
            try:
                names = sorted(os.listdir(path))
            except OSError as exc:
                self.fail_dir(path, f"cannot list it: {exc}")
                continue
            for name in names:
                tp = parse_partition_dir(name)
                if tp is None or not os.path.isdir(os.path.join(path, name)):
                    continue
                first = self._dir_of.setdefault(tp, path)
                if first != path:
                    log.warning(
                        "partition %s-%d is in %s and %s (a move was interrupted): keeping %s",
                        tp[0],
                        tp[1],
                        first,
                        path,
                        first,
                    )
                    self._remove(os.path.join(path, name), uuid.uuid4())
                    continue
                found.append(tp)
        return sorted(found)

    def dir_of(self, topic: str, partition: int) -> str | None:
        """The log directory a partition lives in (None: not placed yet)."""
        return self._dir_of.get((topic, partition))

    def placements(self) -> dict[TopicPartition, str]:
        """Every known partition and the log directory it lives in."""
        return dict(self._dir_of)

    def _place(self, tp: TopicPartition) -> str:
        """The directory of a new partition: the online one with the fewest partitions."""
        online = self.online_dirs()
        if not online:
            raise StorageError("every log dir is offline")
        counts = dict.fromkeys(online, 0)
        for path in self._dir_of.values():
            if path in counts:
                counts[path] += 1
        chosen = min(online, key=lambda d: counts[d])
        self._dir_of[tp] = chosen
        return chosen

    def path_of(self, topic: str, partition: int) -> str:
        """The partition's directory (placing a new partition in a log dir)."""
        with self._lock:
            path = self._dir_of.get((topic, partition)) or self._place((topic, partition))
        return os.path.join(path, partition_dir_name(topic, partition))

    # ---- opening and closing ------------------------------------------------------------

    def open_log(
        self, topic: str, partition: int, overrides: Mapping[str, Any], *, create: bool = True
    ) -> Log | None:
        """Open (creating if needed) one partition's log; None when it is offline. Without
        ``create``, a partition found in no online directory while some directory is offline
        is offline too (it may be on the failed disk: creating it empty would fork it)."""
        tp = (topic, partition)
        if tp in self._logs:
            return self._logs[tp]
        home = self._dir_of.get(tp)
        if home in self._offline_dirs:
            self._offline[tp] = f"log dir {home} is offline: {self._offline_dirs[home]}"
            return None
        if home is None and not create and self._offline_dirs:
            dirs = ", ".join(self._offline_dirs)
            self._offline[tp] = f"not in any online log dir (offline: {dirs})"
            log.error("partition %s-%d is offline: %s", topic, partition, self._offline[tp])
            return None
        try:
            opened = Log(
                self.path_of(topic, partition),
                overrides,
                defaults=self.defaults,
                accept_gaps=self.accept_gaps,
            )
        except (EdplogError, OSError) as exc:
            reason = str(exc)
            self._offline[tp] = reason
            log.error("partition %s-%d is offline: %s", topic, partition, reason)
            if is_dir_failure(exc):
                self.fail_dir(self._dir_of[tp], reason)
            return None
        self._offline.pop(tp, None)
        self._logs[tp] = opened
        return opened

    def get(self, topic: str, partition: int) -> Log:
        """The log of a partition; PartitionOfflineError for one that failed to open,
        UnknownTopicError for one that is not here."""
        found = self._logs.get((topic, partition))
        if found is not None:
            return found
        reason = self._offline.get((topic, partition))
        if reason is not None:
            raise PartitionOfflineError(f"partition {topic}-{partition} is offline: {reason}")
        raise UnknownTopicError(f"unknown topic or partition {topic}-{partition}")

    def mark_offline(self, topic: str, partition: int, reason: str) -> bool:
        """Take an open partition offline (damage found while serving it); returns whether it
        was online. Its log is closed; it stays offline until the next start."""
        tp = (topic, partition)
        opened = self._logs.pop(tp, None)
        self._offline[tp] = reason
        if opened is not None:
            try:
                opened.close()
            except (EdplogError, OSError) as exc:
                log.error("close of %s-%d failed: %s", topic, partition, exc)
        return opened is not None

    def fail_dir(self, path: str, reason: str, *, close: bool = True) -> list[Log] | None:
        """Take a log directory offline with every partition in it (its disk failed); logged
        once. Returns the logs it detached (None when the directory was offline already):
        closed here, or with ``close=False`` left for the caller to close off the event loop
        with :meth:`close_detached` (closing touches the failed disk)."""
        with self._lock:
            if path in self._offline_dirs or path not in self.data_dirs:
                return None
            self._offline_dirs[path] = reason
            doomed = [tp for tp, home in self._dir_of.items() if home == path]
            detached = []
            for tp in doomed:
                self._offline[tp] = f"log dir {path} is offline: {reason}"
                opened = self._logs.pop(tp, None)
                if opened is not None:
                    detached.append(opened)
        log.error(
            "log dir %s is offline (%s): %d partition(s) in it are offline, the other log "
            "dirs keep serving",
            path,
            reason,
            len(doomed),
        )
        if close:
            self.close_detached(detached)
        return detached

    @staticmethod
    def close_detached(logs: list[Log]) -> None:
        for opened in logs:
            try:
                opened.close()
            except (EdplogError, OSError) as exc:
                log.error("close of %s failed: %s", opened.path, exc)

    def logs(self) -> dict[TopicPartition, Log]:
        return dict(self._logs)

    def offline(self) -> dict[TopicPartition, str]:
        """Partitions that could not be opened, with the reason."""
        return dict(self._offline)

    def delete_logs(
        self, topic: str, partitions: int, topic_id: uuid.UUID, only: int | None = None
    ) -> None:
        """Close and remove the directories of a topic's partitions, or of partition ``only``
        (those on an offline log dir are left there: removed on a start that finds them with
        no topic)."""
        doomed = []
        for p in range(partitions) if only is None else (only,):
            moving = self._moves.get((topic, p))
            if moving is not None:
                moving.abandoned = True  # its copier stops and removes the -future dir
            opened = self._logs.pop((topic, p), None)
            self._offline.pop((topic, p), None)
            home = self._dir_of.pop((topic, p), None)
            if opened is not None:
                opened.close()
            if home is None or home in self._offline_dirs:
                continue
            src = os.path.join(home, partition_dir_name(topic, p))
            if os.path.exists(src):
                dst = f"{src}.{topic_id.hex}-delete"
                os.rename(src, dst)
                doomed.append(dst)
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def _remove(path: str, tag: uuid.UUID) -> None:
        dst = f"{path}.{tag.hex}-delete"
        os.rename(path, dst)
        shutil.rmtree(dst, ignore_errors=True)

    # ---- moving a partition between log dirs -------------------------------------------

    def begin_move(self, topic: str, partition: int, dst_dir: str) -> MoveJob:
        """Register a move of a partition's log to another log dir and make its empty
        ``<dst>/<topic>-<partition>-future``; the caller then runs :meth:`copy_move` (no lock
        needed), :meth:`finish_move` (under its own administration lock) and, always,
        :meth:`end_move`. A move works in three steps, the partition serving all along:

        1. Copy every file into the ``-future`` dir (``copy_move``), then once more what
           changed meanwhile: sealed segments are never rewritten in place, so what is
           copied stays valid. :meth:`moves` reports its progress (DescribeLogDirs).
        2. Close the old log (it flushes and marks a clean shutdown; appends from here on are
           refused with KAFKA_STORAGE_ERROR and retried by clients), copy what changed since
           (the tail of each segment, and the small index and checkpoint files whole), fsync.
        3. Rename the copy to ``<dst>/<topic>-<partition>``, remove the old directory, open
           the new log.

        Deleting the partition during step 1 abandons the move (see :meth:`delete_logs`).
        A crash before step 3 leaves the old log whole and a ``-future`` that the next start
        removes; one inside step 3 leaves two whole, equal copies, of which the next start
        keeps one (see :meth:`discover`).
        """
        tp = (topic, partition)
        dst_dir = os.path.normpath(dst_dir)
        with self._lock:
            src_dir = self._dir_of.get(tp)
            if self._logs.get(tp) is None or src_dir is None:
                raise PartitionOfflineError(f"partition {topic}-{partition} is not online")
            if dst_dir not in self.online_dirs():
                raise StorageError(f"log dir {dst_dir} is not an online log dir")
            if tp in self._moves:
                raise StorageError(f"partition {topic}-{partition} is being moved already")
            name = partition_dir_name(topic, partition)
            job = MoveJob(
                tp,
                os.path.join(src_dir, name),
                dst_dir,
                os.path.join(dst_dir, name + FUTURE_SUFFIX),
                self.move_bytes_per_second,
            )
            shutil.rmtree(job.future, ignore_errors=True)
            os.makedirs(job.future)
            self._moves[tp] = job
        return job

    def copy_move(self, job: MoveJob) -> None:
        """Step 1 of a move (see :meth:`begin_move`): takes no lock, reads and writes the
        disk. Raises MoveAbandoned when the partition was deleted meanwhile."""
        try:
            job.copied = copy_changed(job.src, job.future, {}, job)
            job.copied = copy_changed(job.src, job.future, job.copied, job)
        except OSError as exc:
            if job.abandoned:
                raise MoveAbandoned(f"{job.tp[0]}-{job.tp[1]} was deleted during its move") from exc
            raise
        if job.abandoned:
            raise MoveAbandoned(f"{job.tp[0]}-{job.tp[1]} was deleted during its move")

    def finish_move(self, job: MoveJob, overrides: Mapping[str, Any]) -> Log:
        """Steps 2 and 3 of a move; returns the log the partition is served from afterwards.
        Raises StorageError when the move cannot be done (the old log is then reopened where
        it was). The caller holds off deletion of the partition meanwhile."""
        tp, (topic, partition) = job.tp, job.tp
        if job.abandoned:
            raise MoveAbandoned(f"{topic}-{partition} was deleted during its move")
        old = self._logs.get(tp)
        src_dir = os.path.dirname(job.src)
        if old is None or self._dir_of.get(tp) != src_dir:
            raise PartitionOfflineError(f"partition {topic}-{partition} is not online")
        final = os.path.join(job.dst_dir, partition_dir_name(topic, partition))
        try:
            old.close()
            job.rate = 0  # the partition is not served meanwhile: no throttle
            copy_changed(job.src, job.future, job.copied, job)
            fsync_tree(job.future)
            os.rename(job.future, final)
            job.renamed = True
            fsync_dir(job.dst_dir)
        except BaseException:
            if old.closed:  # serve it from where it was
                self._logs.pop(tp, None)
                self.open_log(topic, partition, overrides)
            raise
        with self._lock:
            self._dir_of[tp] = job.dst_dir
            self._logs.pop(tp, None)
            self._moves.pop(tp, None)
        self._remove(job.src, uuid.uuid4())
        fsync_dir(src_dir)
        opened = self.open_log(topic, partition, overrides)
        if opened is None:
            raise PartitionOfflineError(f"partition {topic}-{partition}: {self._offline[tp]}")
        log.info("partition %s-%d moved from %s to %s", topic, partition, src_dir, job.dst_dir)
        return opened

    def end_move(self, job: MoveJob) -> None:
        """Forget a move, finished or not; removes its ``-future`` copy unless it became
        the partition's log."""
        with self._lock:
            if self._moves.get(job.tp) is job:
                del self._moves[job.tp]
        if not job.renamed:
            shutil.rmtree(job.future, ignore_errors=True)

    def moves(self) -> list[MoveProgress]:
        """The moves whose copy is being made: where to, and how far each has got."""
        with self._lock:
            jobs = list(self._moves.values())
        out = []
        for job in jobs:
            opened = self._logs.get(job.tp)
            if opened is None or job.abandoned:
                continue
            # A closed log is in the swap: no appends, and the copy is catching up in full.
            lag = 0 if opened.closed else max(0, opened.log_end_offset - job.end_offset)
            out.append(MoveProgress(job.tp, job.dst_dir, job.future, lag))
        return out

    def reconfigure(self, topic: str, partitions: int, overrides: Mapping[str, Any]) -> None:
        for p in range(partitions):
            opened = self._logs.get((topic, p))
            if opened is not None:
                opened.reconfigure(overrides)

    def _each(self) -> Iterator[tuple[TopicPartition, Log]]:
        for tp, opened in list(self._logs.items()):
            if not opened.closed:
                yield tp, opened

    def flush(self) -> list[TopicPartition]:
        """Flush every log; returns the partitions whose flush failed (logged)."""
        failed = []
        for tp, opened in self._each():
            try:
                opened.flush()
            except (EdplogError, OSError) as exc:
                log.error("flush of %s-%d failed: %s", tp[0], tp[1], exc)
                failed.append(tp)
                self.io_failed(tp[0], tp[1], exc)
        return failed

    def io_failed(
        self, topic: str, partition: int, exc: BaseException, *, close: bool = True
    ) -> list[Log] | None:
        """Take the partition's log dir offline when ``exc`` is a disk failure (see
        :mod:`.log_dirs`); the logs detached (see :meth:`fail_dir`), None when it was not
        one or the directory was offline already."""
        if not is_dir_failure(exc):
            return None
        home = self._dir_of.get((topic, partition))
        if home is None:
            return None
        return self.fail_dir(home, f"{topic}-{partition}: {exc}", close=close)

    def close(self) -> None:
        """Close every log; one that fails to close is logged and the others still close."""
        with self._lock:
            for job in self._moves.values():
                job.abandoned = True  # its copier stops at its next chunk
        for tp, opened in list(self._logs.items()):
            try:
                opened.close()
            except (EdplogError, OSError) as exc:
                log.error("close of %s-%d failed: %s", tp[0], tp[1], exc)

    # ---- background work ----------------------------------------------------------------

    def housekeeping(
        self,
        now_ms: int | None = None,
        producer_expiration_ms: int = -1,
        *,
        compact: bool = True,
        dedupe_buffer_bytes: int = DEDUPE_BUFFER_BYTES,
    ) -> HousekeepingResult:
        """One pass of retention, compaction and producer-id expiry over every log, each
        partition on its own: a failure is logged with the partition and the pass goes on."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        result = HousekeepingResult()
        for (topic, partition), opened in self._each():
            try:
                result.segments_deleted += opened.enforce_retention(now_ms)
            except Exception as exc:
                result.failures += 1
                if is_dir_failure(exc):
                    self.io_failed(topic, partition, exc)
                    continue
                log.exception("retention of %s-%d failed", topic, partition)
            if compact and opened.config.compact:
                try:
                    result.records_compacted += opened.compact(now_ms, dedupe_buffer_bytes)
                except Exception as exc:
                    result.failures += 1
                    if is_dir_failure(exc):
                        self.io_failed(topic, partition, exc)
                        continue
                    log.exception("compaction of %s-%d failed", topic, partition)
            if producer_expiration_ms >= 0:
                try:
                    result.producers_expired += opened.expire_producers(
                        now_ms, producer_expiration_ms
                    )
                except Exception:
                    result.failures += 1
                    log.exception("producer expiry of %s-%d failed", topic, partition)
        return result
