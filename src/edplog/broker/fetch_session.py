"""KIP-227 incremental fetch sessions: the broker's cache of what each fetcher asked for.

A consumer of many partitions sends, without sessions, every partition in every Fetch and gets
every partition back. With a session the broker remembers the partitions (and their fetch
offsets) after a full fetch (epoch 0); the next fetches (epoch 1, 2, ...) carry only the
partitions whose position changed plus the ones to forget, and the response carries only the
partitions with something new: records, a changed high watermark or log start offset, or an
error. Request and response shrink from O(partitions) to O(partitions that moved).

The rules, as Kafka's broker applies them:

- ``session_id`` 0, epoch -1: a sessionless full fetch (the answer says session 0);
- epoch 0: a full fetch that asks for a new session (an old ``session_id`` given is closed
  first); the answer carries the new id, or 0 when the cache has no slot for it;
- epoch -1 with a ``session_id``: close that session, then answer as a sessionless full fetch;
- epoch n > 0: FETCH_SESSION_ID_NOT_FOUND for an unknown id, INVALID_FETCH_SESSION_EPOCH unless
  n is the session's next epoch, FETCH_SESSION_TOPIC_ID_ERROR when a session made with topic
  ids (v13+) is continued without them or the other way round.

The cache holds ``max.incremental.fetch.session.cache.slots`` sessions. A new session takes a
free slot, else it may evict (Kafka's preference): the least recently used session if it was
idle longer than ``min.incremental.fetch.session.eviction.ms``; otherwise the least valuable
evictable session, valued by (follower?, partition count), if the new one is worth strictly
more. A consumer's session becomes evictable only once it is older than the eviction time
(so a fresh one is not thrown out at once); a follower's new session may evict any consumer's.

Bookkeeping is per partition (one small object each), never per record: the records are still
sent as file regions by the replica manager.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import ErrorCode
from ..storage import Store

Body = dict[str, Any]
FINAL_EPOCH = -1
NO_SESSION = 0


class TopicIds:
    """Topic id -> name, from the store's registry. ``resolver()`` takes one snapshot of the
    registry per Fetch; the id map is rebuilt (at most once per Fetch) only when an id is not
    found or its name now belongs to another id (a topic deleted and created again)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._names: dict[uuid.UUID, str] = {}

    def resolver(self) -> Callable[[uuid.UUID], str | None]:
        topics = self.store.registry.topics()
        rebuilt = False

        def name_of(topic_id: uuid.UUID) -> str | None:
            nonlocal rebuilt
            name = self._names.get(topic_id)
            info = topics.get(name) if name is not None else None
            if info is not None and info.topic_id == topic_id:
                return name
            if not rebuilt:
                self._names = {i.topic_id: n for n, i in topics.items()}
                rebuilt = True
                return self._names.get(topic_id)
            return None

        return name_of


class CachedPartition:
    """One partition of a session: what the fetcher last asked (``req``, the request's
    partition fields) and what it was last told (high watermark, log start offset)."""

    __slots__ = ("topic_id", "topic", "req", "high_watermark", "log_start_offset")

    def __init__(self, topic_id: uuid.UUID | None, topic: str | None, req: Body) -> None:
        self.topic_id = topic_id
        self.topic = topic
        self.req = req
        self.high_watermark = -1
        self.log_start_offset = -1

    def must_respond(self, result: Body) -> bool:
        """Kafka's rule for an incremental response: records, a changed high watermark or
        log start offset, an error, or a preferred read replica. Remembers what is sent."""
        respond = bool(result["records"]) or result["error_code"] != ErrorCode.NONE
        if result["high_watermark"] != self.high_watermark:
            self.high_watermark = result["high_watermark"]
            respond = True
        if result["log_start_offset"] != self.log_start_offset:
            self.log_start_offset = result["log_start_offset"]
            respond = True
        return respond or result.get("preferred_read_replica", -1) != -1


Key = tuple[Any, int]  # (topic id, or the name before v13; partition)


class FetchSession:
    """A cached session (see the module docstring)."""

    __slots__ = (
        "id",
        "privileged",
        "uses_topic_ids",
        "created_ms",
        "last_used_ms",
        "epoch",
        "partitions",
    )

    def __init__(self, sid: int, privileged: bool, uses_topic_ids: bool, now_ms: int) -> None:
        self.id = sid
        self.privileged = privileged
        self.uses_topic_ids = uses_topic_ids
        self.created_ms = now_ms
        self.last_used_ms = now_ms
        self.epoch = 1  # the epoch the next incremental fetch must carry
        self.partitions: dict[Key, CachedPartition] = {}

    def value(self) -> tuple[bool, int]:
        """How much the session is worth keeping: followers first, then by size."""
        return (self.privileged, len(self.partitions))


class FetchContext:
    """One Fetch's view of the cache: the partitions to read, in order, and how to shape the
    response. ``error`` is a top-level error (then nothing is read)."""

    def __init__(
        self,
        error: ErrorCode = ErrorCode.NONE,
        session: FetchSession | None = None,
        partitions: list[CachedPartition] | None = None,
        create: bool = False,
    ) -> None:
        self.error = error
        self.session = session
        self.partitions = partitions or []
        self.create = create  # a full fetch that asked for a session (epoch 0)

    @property
    def incremental(self) -> bool:
        return self.session is not None and not self.create


class FetchSessionCache:
    """The bounded cache of fetch sessions (see the module docstring)."""

    def __init__(self, max_slots: int, eviction_ms: int, store: Store, metrics: Any = None) -> None:
        self.topic_ids = TopicIds(store)
        self.max_slots = max_slots
        self.eviction_ms = eviction_ms
        self.metrics = metrics
        self.sessions: dict[int, FetchSession] = {}
        self.evictions = 0
        self.partitions_cached = 0
        self._rng = random.Random()

    def __len__(self) -> int:
        return len(self.sessions)

    # ---- request side --------------------------------------------------------------------

    def context(
        self,
        session_id: int,
        epoch: int,
        uses_topic_ids: bool,
        wanted: list[CachedPartition],
        forgotten: list[Key],
        now_ms: int,
    ) -> FetchContext:
        """The context of one Fetch. For an incremental one, ``wanted`` are the request's
        partitions (resolved) and ``forgotten`` the keys of its ``forgotten_topics_data``;
        a full fetch reads the request as it is."""
        if epoch in (0, FINAL_EPOCH):
            if session_id != NO_SESSION:
                self.remove(session_id)
            return FetchContext(create=epoch == 0 and self.max_slots > 0)
        session = self.sessions.get(session_id)
        if session is None:
            return FetchContext(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            return FetchContext(ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        if session.uses_topic_ids != uses_topic_ids:
            return FetchContext(ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR)
        parts = session.partitions
        before = len(parts)
        for part in wanted:
            key = _key(part)
            cached = parts.get(key)
            if cached is None:
                parts[key] = part
            else:
                cached.req = part.req
                cached.topic = part.topic
        for key in forgotten:
            parts.pop(key, None)
        session.epoch = _next_epoch(epoch)
        session.last_used_ms = now_ms
        if len(parts) != before:
            self.partitions_cached += len(parts) - before
            self._changed()
        return FetchContext(session=session, partitions=list(parts.values()))

    # ---- response side -------------------------------------------------------------------

    def open(
        self,
        parts: list[CachedPartition],
        results: list[Body],
        privileged: bool,
        uses_topic_ids: bool,
        now_ms: int,
    ) -> int:
        """After a full fetch that asked for a session: the new session's id (it holds the
        partitions and what was sent for them), or 0 when the cache has no slot for it."""
        session = self._create(parts, privileged, uses_topic_ids, now_ms)
        if session is None:
            return NO_SESSION
        for part, result in zip(parts, results, strict=True):
            part.high_watermark = result["high_watermark"]
            part.log_start_offset = result["log_start_offset"]
        return session.id

    def select(self, ctx: FetchContext, results: list[Body]) -> list[int]:
        """After an incremental fetch: the indexes of ``results`` to send (``must_respond``),
        moving the partitions that returned records to the end of the session so the others
        get the byte budget first next time."""
        session = ctx.session
        assert session is not None
        chosen = []
        for i, (part, result) in enumerate(zip(ctx.partitions, results, strict=True)):
            if part.must_respond(result):
                chosen.append(i)
                if result["records"]:
                    key = _key(part)
                    if session.partitions.get(key) is part:
                        del session.partitions[key]
                        session.partitions[key] = part
        return chosen

    # ---- the cache -----------------------------------------------------------------------

    def _create(
        self, parts: list[CachedPartition], privileged: bool, uses_topic_ids: bool, now_ms: int
    ) -> FetchSession | None:
        if len(self.sessions) >= self.max_slots and not self._evict_for(
            privileged, len(parts), now_ms
        ):
            return None
        sid = self._new_id()
        session = FetchSession(sid, privileged, uses_topic_ids, now_ms)
        for part in parts:
            session.partitions[_key(part)] = part
        self.sessions[sid] = session
        self.partitions_cached += len(session.partitions)
        self._changed()
        return session

    def _evict_for(self, privileged: bool, size: int, now_ms: int) -> bool:
        """Kafka's eviction preference (see the module docstring): True if a slot was freed."""
        if not self.sessions:
            return False
        oldest = min(self.sessions.values(), key=lambda s: s.last_used_ms)
        if now_ms - oldest.last_used_ms > self.eviction_ms:
            return self._evict(oldest)
        candidates = [s for s in self.sessions.values() if self._evictable(s, privileged, now_ms)]
        if not candidates:
            return False
        victim = min(candidates, key=lambda s: (*s.value(), s.id))
        if (privileged, size) <= victim.value():
            return False
        return self._evict(victim)

    def _evictable(self, session: FetchSession, privileged: bool, now_ms: int) -> bool:
        settled = now_ms - session.created_ms > self.eviction_ms
        return settled or (privileged and not session.privileged)

    def _evict(self, session: FetchSession) -> bool:
        self._drop(session.id)
        self.evictions += 1
        if self.metrics is not None:
            self.metrics.fetch_session_evicted()
        return True

    def remove(self, session_id: int) -> None:
        if self._drop(session_id):
            self._changed()

    def _drop(self, session_id: int) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        self.partitions_cached -= len(session.partitions)
        return True

    def _changed(self) -> None:
        if self.metrics is not None:
            self.metrics.fetch_session_cache(len(self.sessions), self.partitions_cached)

    def _new_id(self) -> int:
        while True:
            sid = self._rng.randint(1, 0x7FFFFFFF)
            if sid not in self.sessions:
                return sid


def _key(part: CachedPartition) -> Key:
    return (part.topic_id if part.topic_id is not None else part.topic, part.req["partition"])


def _next_epoch(epoch: int) -> int:
    """Epochs run 1..INT32_MAX then wrap to 1 (0 and -1 are the full-fetch markers)."""
    return 1 if epoch >= 0x7FFFFFFF else epoch + 1
