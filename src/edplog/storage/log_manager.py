"""The logs of a data directory: opening and recovering them, creating and deleting their
directories, and the background work over all of them.

Partition directories are ``<topic>-<partition>/`` (Kafka's ``log.dirs`` layout). A deleted
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
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EdplogError, PartitionOfflineError, UnknownTopicError
from .cleaner import DEDUPE_BUFFER_BYTES
from .log import Log

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
    """Every partition log of one data directory (see the module docstring).

    ``defaults`` sets the config of every log that does not override it (Kafka topic-level
    names). ``accept_gaps`` opens logs with missing segments (``log.accept.missing.segments``).
    """

    def __init__(
        self,
        data_dir: str,
        defaults: Mapping[str, Any] | None = None,
        *,
        accept_gaps: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.defaults = dict(defaults or {})
        self.accept_gaps = accept_gaps
        self._logs: dict[TopicPartition, Log] = {}
        self._offline: dict[TopicPartition, str] = {}
        os.makedirs(self.data_dir, exist_ok=True)
        self._remove_deleted()

    def _remove_deleted(self) -> None:
        for name in os.listdir(self.data_dir):
            if name.endswith("-delete"):
                shutil.rmtree(os.path.join(self.data_dir, name), ignore_errors=True)

    def discover(self) -> list[TopicPartition]:
        """The partition directories present, in name order."""
        found = []
        for name in sorted(os.listdir(self.data_dir)):
            tp = parse_partition_dir(name)
            if tp is not None and os.path.isdir(os.path.join(self.data_dir, name)):
                found.append(tp)
        return found

    def path_of(self, topic: str, partition: int) -> str:
        return os.path.join(self.data_dir, partition_dir_name(topic, partition))

    # ---- opening and closing ------------------------------------------------------------

    def open_log(self, topic: str, partition: int, overrides: Mapping[str, Any]) -> Log | None:
        """Open (creating if needed) one partition's log; None when it is offline."""
        tp = (topic, partition)
        if tp in self._logs:
            return self._logs[tp]
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

    def logs(self) -> dict[TopicPartition, Log]:
        return dict(self._logs)

    def offline(self) -> dict[TopicPartition, str]:
        """Partitions that could not be opened, with the reason."""
        return dict(self._offline)

    def delete_logs(self, topic: str, partitions: int, topic_id: uuid.UUID) -> None:
        """Close and remove the directories of a topic's partitions."""
        doomed = []
        for p in range(partitions):
            opened = self._logs.pop((topic, p), None)
            self._offline.pop((topic, p), None)
            if opened is not None:
                opened.close()
            src = self.path_of(topic, p)
            if os.path.exists(src):
                dst = f"{src}.{topic_id.hex}-delete"
                os.rename(src, dst)
                doomed.append(dst)
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)

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
        return failed

    def close(self) -> None:
        """Close every log; one that fails to close is logged and the others still close."""
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
            except Exception:
                result.failures += 1
                log.exception("retention of %s-%d failed", topic, partition)
            if compact and opened.config.compact:
                try:
                    result.records_compacted += opened.compact(now_ms, dedupe_buffer_bytes)
                except Exception:
                    result.failures += 1
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
