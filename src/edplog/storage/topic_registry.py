"""The topics of a data directory: names, ids, partition counts and config overrides.

:class:`LocalTopicRegistry` keeps them in ``topics.json`` at the top of the directory, for the
embedded library and the single-node broker; a replicated cluster keeps them elsewhere (in
ZooKeeper) behind the same interface, :class:`TopicRegistry`.

``topics.json`` is replaced atomically on every change, and the version it replaces is kept
beside it as ``topics.json.prev``: a truncated or unparsable file (a disk that lied, an editor)
falls back to the previous version with a logged error, and if both are unusable, opening fails
with a message naming the files and how to recover.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import (
    EdplogError,
    InvalidPartitionsError,
    InvalidTopicError,
    TopicExistsError,
    UnknownTopicError,
)
from .checkpoint import write_atomically

log = logging.getLogger("edplog.storage")

TOPICS_FILE = "topics.json"
#: Topics only the broker writes (Kafka's internal topics); clients may read them.
OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC})
PREVIOUS_SUFFIX = ".prev"
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_LENGTH = 249


class RegistryError(EdplogError):
    """The topic registry cannot be read."""


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


@dataclass
class TopicInfo:
    topic_id: uuid.UUID
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


class TopicRegistry(Protocol):
    """Where a node learns which topics exist (local file, or the cluster's metadata)."""

    def topics(self) -> dict[str, TopicInfo]: ...

    def get(self, name: str) -> TopicInfo: ...

    def create(self, name: str, partitions: int, config: Mapping[str, str]) -> TopicInfo: ...

    def delete(self, name: str) -> TopicInfo: ...

    def add_partitions(self, name: str, total: int) -> TopicInfo: ...

    def set_config(self, name: str, config: Mapping[str, str]) -> TopicInfo: ...

    def adopt(self, name: str, partitions: int) -> TopicInfo: ...

    def hosts(self, name: str, partition: int) -> bool:
        """Whether this node keeps a replica of the partition (a cluster's registry says;
        every partition is local otherwise)."""
        ...


class LocalTopicRegistry:
    """Topics of one data directory, in ``topics.json`` (see the module docstring).

    Thread-safety: the caller serialises changes (Store holds a lock).
    """

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, TOPICS_FILE)
        self._topics: dict[str, TopicInfo] = self._load()

    # ---- persistence --------------------------------------------------------------------

    def _load(self) -> dict[str, TopicInfo]:
        prev = self.path + PREVIOUS_SUFFIX
        if not os.path.exists(self.path) and not os.path.exists(prev):
            return {}
        try:
            return parse_topics_file(self.path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            first = exc
        try:
            topics = parse_topics_file(prev)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RegistryError(
                f"{self.path} is unusable ({first}) and so is the previous version {prev} "
                f"({exc}). To recover, move both aside: the partition directories are then "
                "adopted as topics with default configs (their data is kept), and configs "
                "can be set again with AlterConfigs",
                path=self.path,
            ) from exc
        log.error(
            "%s is unusable (%s); using the previous version %s (changes made after it "
            "are lost: check the topics and their configs)",
            self.path,
            first,
            prev,
        )
        return topics

    def _save(self) -> None:
        data = {
            "version": 1,
            "topics": {
                name: {
                    "id": str(info.topic_id),
                    "partitions": info.partitions,
                    "config": dict(info.config),
                }
                for name, info in self._topics.items()
            },
        }
        text = json.dumps(data, indent=1, sort_keys=True)
        write_atomically(self.path, text.encode(), keep_previous=self.path + PREVIOUS_SUFFIX)

    # ---- the registry -------------------------------------------------------------------

    def topics(self) -> dict[str, TopicInfo]:
        return dict(self._topics)

    def get(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise UnknownTopicError(f"unknown topic {name!r}")
        return info

    def create(self, name: str, partitions: int, config: Mapping[str, str]) -> TopicInfo:
        validate_topic_name(name)
        if partitions < 1:
            raise InvalidPartitionsError(f"a topic needs at least one partition, not {partitions}")
        if name in self._topics:
            raise TopicExistsError(f"topic {name!r} already exists")
        info = TopicInfo(uuid.uuid4(), partitions, dict(config))
        self._topics[name] = info
        self._save()
        return info

    def delete(self, name: str) -> TopicInfo:
        info = self.get(name)
        del self._topics[name]
        self._save()
        return info

    def add_partitions(self, name: str, total: int) -> TopicInfo:
        info = self.get(name)
        if total <= info.partitions:
            raise InvalidPartitionsError(
                f"topic {name!r} has {info.partitions} partitions; "
                f"it can only grow, not become {total}"
            )
        info.partitions = total
        self._save()
        return info

    def set_config(self, name: str, config: Mapping[str, str]) -> TopicInfo:
        info = self.get(name)
        info.config = dict(config)
        self._save()
        return info

    def hosts(self, name: str, partition: int) -> bool:
        return True

    def adopt(self, name: str, partitions: int) -> TopicInfo:
        """Make sure ``name`` has at least ``partitions`` (a partition directory found on
        disk that the file does not list: its data is never ignored silently)."""
        info = self._topics.get(name)
        if info is None:
            info = TopicInfo(uuid.uuid4(), partitions, {})
            self._topics[name] = info
            self._save()
        elif info.partitions < partitions:
            info.partitions = partitions
            self._save()
        return info


def parse_topics_file(path: str) -> dict[str, TopicInfo]:
    """The topics a topics.json holds; raises OSError/ValueError/KeyError/TypeError."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    topics = data["topics"]
    out: dict[str, TopicInfo] = {}
    for name, item in topics.items():
        config = item.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError(f"topic {name!r}: config is not an object")
        out[name] = TopicInfo(
            uuid.UUID(item["id"]),
            int(item["partitions"]),
            {str(k): str(v) for k, v in config.items()},
        )
    return out
