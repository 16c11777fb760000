"""``Store``: a data directory of topics and partitions, in Kafka's ``log.dirs`` layout.

Each partition is a directory ``<topic>-<partition>/`` holding its segments (see
:mod:`edplog.log`). The topics, their partition counts, ids and config overrides are kept in
``topics.json`` at the top of the directory, replaced atomically on every change. A deleted
topic's directories are first renamed to ``<topic>-<partition>.<id>-delete`` (so a crash in the
middle never leaves half a topic behind under its name) and then removed; leftovers are
removed on the next start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from . import checkpoint
from .config import LogConfig, canonical_name, normalize
from .errors import (
    InvalidPartitionsError,
    InvalidTopicError,
    LogClosedError,
    TopicExistsError,
    UnknownTopicError,
)
from .log import Log

TOPICS_FILE = "topics.json"
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_LENGTH = 249


def validate_topic_name(name: str) -> None:
    """Raise InvalidTopicError for a name Kafka would refuse."""
    if not name or name in (".", ".."):
        raise InvalidTopicError(f"invalid topic name {name!r}")
    if len(name) > MAX_TOPIC_LENGTH:
        raise InvalidTopicError(f"topic name longer than {MAX_TOPIC_LENGTH} characters")
    if not _LEGAL_TOPIC.match(name):
        raise InvalidTopicError(
            f"invalid topic name {name!r}: use only ASCII letters, digits, '.', '_' and '-'"
        )


class Store:
    """The topics of one data directory. Opens (and recovers) every partition log on start.

    ``defaults`` sets the config of every topic that does not override it (Kafka topic-level
    names). Thread-safety: topic administration is serialised by a lock; each Log has its
    own locking.
    """

    def __init__(self, data_dir: str | os.PathLike[str], defaults: Mapping[str, Any] | None = None):
        self.data_dir = os.fspath(data_dir)
        self.defaults = normalize(defaults)
        self._lock = threading.RLock()
        self._topics: dict[str, dict[str, Any]] = {}
        self._logs: dict[tuple[str, int], Log] = {}
        self._closed = False
        os.makedirs(self.data_dir, exist_ok=True)
        self._load()

    # ---- persistence --------------------------------------------------------------------

    def _load(self) -> None:
        path = os.path.join(self.data_dir, TOPICS_FILE)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self._topics = json.load(f)["topics"]
        for name in os.listdir(self.data_dir):
            if name.endswith("-delete"):
                shutil.rmtree(os.path.join(self.data_dir, name), ignore_errors=True)
        # Partition directories not in topics.json (a crash between mkdir and the save, or a
        # copied-in directory): adopt them so their data is never ignored silently.
        for name in sorted(os.listdir(self.data_dir)):
            topic, sep, part = name.rpartition("-")
            full = os.path.join(self.data_dir, name)
            if not sep or not part.isdigit() or not os.path.isdir(full):
                continue
            info = self._topics.setdefault(
                topic, {"partitions": 0, "config": {}, "id": str(uuid.uuid4())}
            )
            info["partitions"] = max(info["partitions"], int(part) + 1)
        for topic, info in self._topics.items():
            for p in range(info["partitions"]):
                self._open_log(topic, p)
        self._save()

    def _save(self) -> None:
        data = json.dumps({"version": 1, "topics": self._topics}, indent=1, sort_keys=True)
        checkpoint.write_atomically(os.path.join(self.data_dir, TOPICS_FILE), data.encode())

    def _open_log(self, topic: str, partition: int) -> Log:
        log = Log(
            os.path.join(self.data_dir, f"{topic}-{partition}"),
            self._topics[topic]["config"],
            defaults=self.defaults,
        )
        self._logs[(topic, partition)] = log
        return log

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"{self.data_dir}: the store is closed")

    # ---- topics -------------------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, Any] | None = None
    ) -> None:
        """Create a topic with its partition logs; raises TopicExistsError if it exists."""
        validate_topic_name(name)
        if partitions < 1:
            raise InvalidPartitionsError(f"a topic needs at least one partition, not {partitions}")
        overrides = normalize(config)
        LogConfig(overrides, self.defaults)  # validate the combination before touching disk
        with self._lock:
            self._check_open()
            if name in self._topics:
                raise TopicExistsError(f"topic {name!r} already exists")
            self._topics[name] = {
                "partitions": partitions,
                "config": overrides,
                "id": str(uuid.uuid4()),
            }
            self._save()
            for p in range(partitions):
                self._open_log(name, p)

    def delete_topic(self, name: str) -> None:
        """Delete a topic and all its data."""
        with self._lock:
            self._check_open()
            info = self._topics.get(name)
            if info is None:
                raise UnknownTopicError(f"unknown topic {name!r}")
            suffix = uuid.UUID(info["id"]).hex
            doomed = []
            for p in range(info["partitions"]):
                log = self._logs.pop((name, p), None)
                if log is not None:
                    log.close()
                src = os.path.join(self.data_dir, f"{name}-{p}")
                if os.path.exists(src):
                    dst = f"{src}.{suffix}-delete"
                    os.rename(src, dst)
                    doomed.append(dst)
            del self._topics[name]
            self._save()
            for path in doomed:
                shutil.rmtree(path, ignore_errors=True)

    def add_partitions(self, name: str, total: int) -> None:
        """Grow a topic to total partitions (topics never shrink)."""
        with self._lock:
            self._check_open()
            info = self._topic(name)
            if total <= info["partitions"]:
                raise InvalidPartitionsError(
                    f"topic {name!r} has {info['partitions']} partitions; "
                    f"it can only grow, not become {total}"
                )
            old = info["partitions"]
            info["partitions"] = total
            self._save()
            for p in range(old, total):
                self._open_log(name, p)

    def _topic(self, name: str) -> dict[str, Any]:
        info = self._topics.get(name)
        if info is None:
            raise UnknownTopicError(f"unknown topic {name!r}")
        return info

    def topics(self) -> dict[str, int]:
        """Topic name -> partition count."""
        with self._lock:
            return {name: info["partitions"] for name, info in self._topics.items()}

    def topic_id(self, name: str) -> uuid.UUID:
        return uuid.UUID(self._topic(name)["id"])

    def has_topic(self, name: str) -> bool:
        return name in self._topics

    def topic_config(self, name: str) -> dict[str, str]:
        """The topic's overrides (what it sets beyond the defaults)."""
        return dict(self._topic(name)["config"])

    def effective_config(self, name: str) -> LogConfig:
        """Every topic property with its value for this topic."""
        return LogConfig(self._topic(name)["config"], self.defaults)

    def alter_topic_config(self, name: str, updates: Mapping[str, Any | None]) -> None:
        """Set (or, with None, remove) overrides; applies to the open logs at once."""
        with self._lock:
            self._check_open()
            info = self._topic(name)
            config = dict(info["config"])
            for key, value in updates.items():
                if value is None:
                    config.pop(canonical_name(key), None)
                else:
                    config.update(normalize({key: value}))
            LogConfig(config, self.defaults)
            info["config"] = config
            self._save()
            for p in range(info["partitions"]):
                log = self._logs.get((name, p))
                if log is not None:
                    log.reconfigure(config)

    # ---- logs ---------------------------------------------------------------------------

    def log(self, topic: str, partition: int) -> Log:
        """The log of one partition; raises UnknownTopicError if there is none."""
        log = self._logs.get((topic, partition))
        if log is None:
            self._check_open()
            raise UnknownTopicError(f"unknown topic or partition {topic}-{partition}")
        return log

    def logs(self) -> dict[tuple[str, int], Log]:
        return dict(self._logs)

    def enforce_retention(self) -> int:
        """Apply retention (and compaction) to every log; returns segments deleted."""
        deleted = 0
        for log in list(self._logs.values()):
            if log.closed:
                continue
            deleted += log.enforce_retention()
            if log.config.compact:
                log.compact()
        return deleted

    def flush(self) -> None:
        for log in list(self._logs.values()):
            if not log.closed:
                log.flush()

    def close(self) -> None:
        """Close every log cleanly (flushed, with a clean-shutdown marker)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for log in self._logs.values():
                log.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.data_dir!r}, topics={len(self._topics)})"
