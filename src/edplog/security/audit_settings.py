"""The audit log's settings: the ``audit.log.*`` broker properties (edplog's own names, since
Kafka has no audit log), parsed and checked before the broker starts, and the HMAC key file
(docs/security.md, "Audit log"). The writer and the chain are in audit.py.
"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("edplog.broker")

_MIN_KEY_BYTES = 16
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")

#: The broker properties of the audit log (edplog's own names: Kafka has no audit log).
AUDIT_PROPERTIES = frozenset(
    {
        "audit.log.file",
        "audit.log.topic",
        "audit.log.hmac.key.file",
        "audit.log.authentication",
        "audit.log.topics.read",
        "audit.log.topics.write",
        "audit.log.fsync.ms",
        "audit.log.queue.records",
    }
)


class AuditError(ValueError):
    """A bad audit setting, key file or an audit file the writer cannot continue."""


@dataclass(frozen=True)
class TopicSet:
    """Topic names from a comma list: exact names, and prefixes written ``name*`` (``*``
    alone is every topic)."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, key: str, text: str) -> TopicSet:
        names, prefixes = set(), []
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            if "*" in item[:-1]:
                raise AuditError(f"{key}: {item!r}: '*' may only end a prefix (name*)")
            if item.endswith("*"):
                prefixes.append(item[:-1])
            else:
                names.add(item)
        return cls(frozenset(names), tuple(prefixes))

    def __bool__(self) -> bool:
        return bool(self.names or self.prefixes)

    def __contains__(self, topic: object) -> bool:
        return isinstance(topic, str) and (
            topic in self.names or any(topic.startswith(p) for p in self.prefixes)
        )


@dataclass(frozen=True)
class AuditSettings:
    """The ``audit.log.*`` properties (see docs/security.md, "Audit log")."""

    file: str | None = None
    topic: str | None = None
    hmac_key_file: str | None = None
    authentication: bool = True
    topics_read: TopicSet = field(default_factory=TopicSet)
    topics_write: TopicSet = field(default_factory=TopicSet)
    # -1: never fsync (written to the OS per batch); 0: fsync after every batch; N: at most
    # every N ms.
    fsync_ms: int = 1000
    queue_records: int = 10_000

    @property
    def enabled(self) -> bool:
        return self.file is not None or self.topic is not None

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> AuditSettings:
        given = {k: v for k, v in props.items() if k in AUDIT_PROPERTIES}
        file = given.get("audit.log.file", "").strip() or None
        topic = given.get("audit.log.topic", "").strip() or None
        if file is None and topic is None and given:
            raise AuditError(
                f"{', '.join(sorted(given))}: set audit.log.file or audit.log.topic to turn "
                "auditing on"
            )
        if topic is not None and not _TOPIC_NAME.fullmatch(topic):
            raise AuditError(
                f"audit.log.topic={topic!r}: a topic name is 1 to 249 of a-z A-Z 0-9 . _ -"
            )
        return cls(
            file=file,
            topic=topic,
            hmac_key_file=given.get("audit.log.hmac.key.file", "").strip() or None,
            authentication=_boolean(
                "audit.log.authentication", given.get("audit.log.authentication", "true")
            ),
            topics_read=TopicSet.parse(
                "audit.log.topics.read", given.get("audit.log.topics.read", "")
            ),
            topics_write=TopicSet.parse(
                "audit.log.topics.write", given.get("audit.log.topics.write", "")
            ),
            fsync_ms=_integer("audit.log.fsync.ms", given.get("audit.log.fsync.ms", "1000"), -1),
            queue_records=_integer(
                "audit.log.queue.records", given.get("audit.log.queue.records", "10000"), 1
            ),
        )


def _boolean(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise AuditError(f"{key}={value!r}: expected true or false")
    return v == "true"


def _integer(key: str, value: str, minimum: int) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise AuditError(f"{key}={value!r}: expected an integer") from None
    if n < minimum:
        raise AuditError(f"{key}={value!r}: must be at least {minimum}")
    return n


def read_key(path: str | Path) -> bytes:
    """The HMAC key in ``path`` (surrounding whitespace ignored; at least 16 bytes)."""
    try:
        key = Path(path).read_bytes().strip()
        mode = Path(path).stat().st_mode
    except OSError as exc:
        raise AuditError(f"audit HMAC key file {path}: {exc.strerror or exc}") from None
    if len(key) < _MIN_KEY_BYTES:
        raise AuditError(f"audit HMAC key file {path}: the key must be at least 16 bytes")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("audit HMAC key file %s can be read by others than its owner", path)
    return key
