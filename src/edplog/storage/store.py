"""``Store``: topics and partitions in one or more log directories, in Kafka's ``log.dirs``
layout.

The embedded facade over two parts: a :class:`~.log_manager.LogManager` (the partition
directories, recovery, background work) and a topic registry (by default the local
``topics.json``, :class:`~.topic_registry.LocalTopicRegistry`, in the first log directory).
Each partition is a directory ``<dir>/<topic>-<partition>/`` holding its segments (see
:mod:`edplog.storage.log`); with several directories, see :mod:`.log_manager` for where a
partition goes and what happens when a directory's disk fails.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import LogConfig, canonical_name, normalize
from ..errors import EdplogError, LogClosedError, UnknownTopicError
from .log import Log
from .log_dirs import DirSpace, dir_size_bytes, dir_space
from .log_manager import HousekeepingResult, LogManager, TopicPartition
from .log_move import MoveAbandoned
from .topic_registry import LocalTopicRegistry, TopicRegistry, validate_topic_name

__all__ = ["LogDirReport", "Store", "validate_topic_name"]


@dataclass
class LogDirReport:
    """One log dir as :meth:`Store.describe_dirs` found it: ``error`` says why it is offline
    (None: online); ``partitions`` maps each partition in it to its bytes on disk, and
    ``futures`` each partition being moved into it to (bytes copied so far, offset lag: how
    many offsets the copy is behind the log end offset)."""

    path: str
    error: str | None
    space: DirSpace | None = None
    partitions: dict[TopicPartition, int] = field(default_factory=dict)
    futures: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)


class Store:
    """The topics of one data directory. Opens (and recovers) every partition log on start.

    ``defaults`` sets the config of every topic that does not override it (Kafka topic-level
    names). A partition that cannot be opened (damaged flushed data, a missing segment) is
    offline — ``log()`` raises PartitionOfflineError for it — and every other one opens;
    ``accept_gaps=True`` opens logs with a missing segment anyway; ``move_bytes_per_second``
    caps the copy of :meth:`move_partition` (0: none). Thread-safety: topic
    administration is serialised by a lock; each Log has its own locking.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | Sequence[str],
        defaults: Mapping[str, Any] | None = None,
        *,
        registry: TopicRegistry | None = None,
        accept_gaps: bool = False,
        offline_dirs: Mapping[str, str] | None = None,
        move_bytes_per_second: int = 0,
    ) -> None:
        self.defaults = normalize(defaults)
        self._lock = threading.RLock()
        self._closed = False
        self.manager = LogManager(
            data_dir,
            self.defaults,
            accept_gaps=accept_gaps,
            offline_dirs=offline_dirs,
            move_bytes_per_second=move_bytes_per_second,
        )
        self.data_dir = self.manager.data_dir
        self.data_dirs = self.manager.data_dirs
        self.registry: TopicRegistry = registry or LocalTopicRegistry(self.data_dir)
        self._names_by_id: dict[uuid.UUID, str] = {}
        # Partition directories the registry does not list (a crash between mkdir and the
        # save, or a copied-in directory): adopt them so their data is never ignored.
        for topic, partition in self.manager.discover():
            self.registry.adopt(topic, partition + 1)
        for topic, info in self.registry.topics().items():
            for p in range(info.partitions):
                if self.registry.hosts(topic, p):
                    self.manager.open_log(topic, p, info.config, create=False)

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"{self.data_dir}: the store is closed")

    # ---- topics -------------------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, Any] | None = None
    ) -> None:
        """Create a topic with its partition logs; raises TopicExistsError if it exists."""
        validate_topic_name(name)
        overrides = normalize(config)
        LogConfig(overrides, self.defaults)  # validate the combination before touching disk
        with self._lock:
            self._check_open()
            info = self.registry.create(name, partitions, overrides)
            for p in range(info.partitions):
                if self.registry.hosts(name, p):
                    self.manager.open_log(name, p, overrides)

    def validate_topic_config(self, config: Mapping[str, Any] | None) -> dict[str, str]:
        """The overrides, normalised; InvalidConfigError for a bad one or combination."""
        overrides = normalize(config)
        LogConfig(overrides, self.defaults)
        return overrides

    def delete_topic(self, name: str) -> None:
        """Delete a topic and all its data."""
        with self._lock:
            self._check_open()
            info = self.registry.get(name)
            self.registry.delete(name)
            self.manager.delete_logs(name, info.partitions, info.topic_id)

    def add_partitions(self, name: str, total: int) -> None:
        """Grow a topic to total partitions (topics never shrink)."""
        with self._lock:
            self._check_open()
            old = self.registry.get(name).partitions
            info = self.registry.add_partitions(name, total)
            for p in range(old, total):
                if self.registry.hosts(name, p):
                    self.manager.open_log(name, p, info.config)

    def open_partition(self, name: str, partition: int) -> Log:
        """Open (creating it if needed) the log of one partition of a known topic: in a
        cluster, one this node has just become a replica of. PartitionOfflineError if it
        cannot be opened."""
        with self._lock:
            self._check_open()
            info = self.registry.get(name)
            self.manager.open_log(name, partition, info.config)
            return self.manager.get(name, partition)

    def drop_partition(self, name: str, partition: int) -> None:
        """Close and delete one partition's log (in a cluster: this node is no longer one of
        its replicas)."""
        with self._lock:
            self._check_open()
            self.manager.delete_logs(name, partition + 1, uuid.uuid4(), only=partition)

    def forget_topic(self, name: str, partitions: int, topic_id: uuid.UUID) -> None:
        """Close and delete the local logs of a topic that no longer exists (in a cluster:
        deleted through another node; the registry already forgot it)."""
        with self._lock:
            self._check_open()
            self.manager.delete_logs(name, partitions, topic_id)

    def topics(self) -> dict[str, int]:
        """Topic name -> partition count. Takes no lock (a snapshot of the registry), so an
        event loop may call it while administration runs on another thread."""
        return {name: info.partitions for name, info in self.registry.topics().items()}

    def topic_id(self, name: str) -> uuid.UUID:
        return self.registry.get(name).topic_id

    def topic_name(self, topic_id: uuid.UUID) -> str | None:
        """The topic with this id, or None (Metadata v12 and Produce v13 name topics by id).

        A reverse map answers known ids in O(1): an entry is trusted only while the registry
        still gives that name this id, and a miss rebuilds the map once from the registry.
        Takes no lock, like topics().
        """
        for attempt in range(2):
            name = self._names_by_id.get(topic_id)
            if name is not None:
                try:
                    if self.registry.get(name).topic_id == topic_id:
                        return name
                except UnknownTopicError:
                    pass
            if attempt == 0:
                self._names_by_id = {info.topic_id: n for n, info in self.registry.topics().items()}
        return None

    def has_topic(self, name: str) -> bool:
        return name in self.registry.topics()

    def topic_config(self, name: str) -> dict[str, str]:
        """The topic's overrides (what it sets beyond the defaults)."""
        return dict(self.registry.get(name).config)

    def effective_config(self, name: str) -> LogConfig:
        """Every topic property with its value for this topic."""
        return LogConfig(self.registry.get(name).config, self.defaults)

    def alter_topic_config(self, name: str, updates: Mapping[str, Any | None]) -> None:
        """Set (or, with None, remove) overrides; applies to the open logs at once."""
        with self._lock:
            self._check_open()
            info = self.registry.get(name)
            config = dict(info.config)
            for key, value in updates.items():
                if value is None:
                    config.pop(canonical_name(key), None)
                else:
                    config.update(normalize({key: value}))
            LogConfig(config, self.defaults)
            self.registry.set_config(name, config)
            self.manager.reconfigure(name, info.partitions, config)

    # ---- logs ---------------------------------------------------------------------------

    def log(self, topic: str, partition: int) -> Log:
        """The log of one partition; UnknownTopicError if there is none, and
        PartitionOfflineError if it could not be opened."""
        try:
            return self.manager.get(topic, partition)
        except UnknownTopicError:
            self._check_open()
            raise

    def logs(self) -> dict[TopicPartition, Log]:
        return self.manager.logs()

    def offline_partitions(self) -> dict[TopicPartition, str]:
        """Partitions that could not be opened, with the reason."""
        return self.manager.offline()

    def offline_dirs(self) -> dict[str, str]:
        """Log directories that are offline (their disk failed), with the reason."""
        return self.manager.offline_dirs()

    def describe_dirs(
        self, wanted: Mapping[str, Sequence[int]] | None = None
    ) -> list[LogDirReport]:
        """Every log dir: its space and the size of each partition in it (only the
        partitions ``wanted`` names, topic -> indexes; None: all), and of each partition
        being moved into it (its future replica, as Kafka calls it). Reads the disk."""
        reports = []
        offline = self.manager.offline_dirs()
        moves = self.manager.moves()
        placed = self.manager.placements()
        # Measured first, each where it is: a move that switches a partition to its new dir
        # between the placements above and the measuring is found there (never in neither).
        sizes: dict[str, dict[tuple[str, int], int]] = {}
        for (topic, partition), home in sorted(placed.items()):
            if wanted is not None and partition not in wanted.get(topic, ()):
                continue
            found = self._measured(topic, partition, home)
            if found is not None:
                sizes.setdefault(found[0], {})[(topic, partition)] = found[1]
        for path in self.manager.data_dirs:
            report = LogDirReport(path, offline.get(path))
            reports.append(report)
            if report.error is not None:
                continue
            try:
                report.space = dir_space(path)
            except OSError as exc:
                report.error = str(exc)
                continue
            report.partitions.update(sizes.get(path, {}))
            for move in moves:
                topic, partition = move.tp
                if move.dst_dir != path or (
                    wanted is not None and partition not in wanted.get(topic, ())
                ):
                    continue
                try:
                    size = dir_size_bytes(move.future)
                except OSError:
                    continue  # the swap renamed it meanwhile, or the move was abandoned
                report.futures[move.tp] = (size, move.offset_lag)
        return reports

    def _measured(self, topic: str, partition: int, home: str) -> tuple[str, int] | None:
        """(dir, size) of a partition's log, looked for in ``home`` and then where it is
        placed now (a move switched it meanwhile); None when it is in neither (not created
        yet, or deleted)."""
        try:
            return home, dir_size_bytes(os.path.join(home, f"{topic}-{partition}"))
        except OSError:
            pass
        now = self.manager.placements().get((topic, partition))
        if now is None or now == home:
            return None
        try:
            return now, dir_size_bytes(os.path.join(now, f"{topic}-{partition}"))
        except OSError:
            return None

    def move_partition(self, topic: str, partition: int, dst_dir: str) -> Log:
        """Move a partition to another log dir while it keeps serving (see
        :meth:`LogManager.begin_move`); returns its new log. Reads and writes the disk.

        The store lock is held only to start the move and for the final swap, so topic
        administration goes on during the copy. Deleting the topic (or closing the store)
        meanwhile abandons the move: its copy is removed and MoveAbandoned raised."""
        with self._lock:
            self._check_open()
            self.registry.get(topic)
            job = self.manager.begin_move(topic, partition, dst_dir)
        try:
            self.manager.copy_move(job)
            with self._lock:
                if self._closed or not self.has_topic(topic):
                    job.abandoned = True
                info = self.registry.get(topic) if not job.abandoned else None
                if info is None:
                    raise MoveAbandoned(f"{topic}-{partition}: deleted during its move")
                return self.manager.finish_move(job, info.config)
        finally:
            self.manager.end_move(job)

    def dir_of(self, topic: str, partition: int) -> str | None:
        """The log directory holding a partition."""
        return self.manager.dir_of(topic, partition)

    def housekeeping(self, now_ms: int | None = None) -> HousekeepingResult:
        """Retention and compaction over every log, each partition on its own."""
        return self.manager.housekeeping(now_ms)

    def enforce_retention(self) -> int:
        """Apply retention (and compaction) to every log; returns segments deleted."""
        return self.manager.housekeeping().segments_deleted

    def flush(self) -> None:
        """Flush every log; the first failure is raised once every log was tried."""
        first: BaseException | None = None
        for opened in self.manager.logs().values():
            if opened.closed:
                continue
            try:
                opened.flush()
            except (EdplogError, OSError) as exc:
                first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        """Close every log cleanly (flushed, with a clean-shutdown marker)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.manager.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.data_dir!r}, topics={len(self.registry.topics())})"
