"""The group coordinator the broker calls: one object per node, transport-free.

The broker decodes a request into a dict (every field of the newest version, defaults for the
fields the client's version lacks), awaits the matching method with the api version, and
encodes the returned dict with that version. Membership (join, sync, heartbeat, leave) lives in
:mod:`.membership`; committed offsets in :mod:`.offsets`. This module builds the coordinator,
runs the reaper task that expires sessions and routes the membership and consumer-protocol
APIs; the offset APIs are in :mod:`.offset_apis`, the group-admin APIs in :mod:`.admin_apis`,
the serving checks they share in :mod:`.coordinator_base`.

Groups of the consumer protocol (KIP-848, :mod:`.consumer_group`) live beside the classic ones
under the same ids: a group id is one type at a time. An empty group of one type becomes the
other type when a member of the other protocol arrives (Kafka does this whatever
``group.consumer.migration.policy`` says); a non-empty group refuses members of the other
protocol: JoinGroup answers INCONSISTENT_GROUP_PROTOCOL, ConsumerGroupHeartbeat
GROUP_ID_NOT_FOUND, as Kafka with the policy ``disabled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import EdplogError, ErrorCode
from ..storage import INTERNAL_TOPICS
from .admin_apis import AdminApis
from .assignors import assignors_from
from .consumer_group import ConsumerGroup, ConsumerGroups
from .consumer_records import Replay, delete_records, group_records
from .coordinator_base import Body
from .leadership import OffsetsLeadership
from .membership import Membership
from .offset_apis import OffsetApis
from .offsets import (
    OFFSETS_TOPIC,
    Flush,
    OffsetStore,
    StoreLike,
)
from .state import (
    GROUP_AUTHORIZED_OPERATIONS,
    Group,
    GroupState,
    join_response,
)

log = logging.getLogger(__name__)


class GroupCoordinator(OffsetApis, AdminApis):
    """Kafka's classic group coordinator for a single node.

    Keyword settings mirror Kafka's broker properties: ``group.min.session.timeout.ms``,
    ``group.max.session.timeout.ms``, ``group.initial.rebalance.delay.ms``,
    ``offset.metadata.max.bytes`` and ``offsets.topic.num.partitions``. ``now`` is the
    monotonic clock in seconds (tests pass a fake one and call :meth:`tick`).
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        offsets_topic_partitions: int = 1,
        now: Callable[[], float] = time.monotonic,
        min_session_timeout_ms: int = 6000,
        max_session_timeout_ms: int = 1_800_000,
        initial_rebalance_delay_ms: int = 3000,
        offset_metadata_max_bytes: int = 4096,
        tick_interval_ms: int = 100,
        flush: Flush | None = None,
        consumer_session_timeout_ms: int = 45_000,
        consumer_heartbeat_interval_ms: int = 5_000,
        consumer_assignors: tuple[str, ...] = ("uniform", "range"),
        consumer_max_size: int = 2**31 - 1,
        consumer_commit_min_version: int = 9,
        create_offsets_topic: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self.offsets = OffsetStore(store, offsets_topic_partitions, flush)
        self.membership = Membership(
            now=now,
            min_session_timeout_ms=min_session_timeout_ms,
            max_session_timeout_ms=max_session_timeout_ms,
            initial_rebalance_delay_ms=initial_rebalance_delay_ms,
        )
        self.consumer = ConsumerGroups(
            now=now,
            topics=self._topic_table,
            assignors=assignors_from(list(consumer_assignors)),
            session_timeout_ms=consumer_session_timeout_ms,
            heartbeat_interval_ms=consumer_heartbeat_interval_ms,
            max_size=consumer_max_size,
            persist=self._persist_consumer,
            delete=self._delete_consumer,
        )
        self._now = now
        # Kafka refuses commits of consumer-protocol members below OffsetCommit v9 (the first
        # version that names the field a member epoch); a broker that does not serve v9 yet
        # passes 0 here, and the member epoch then arrives in the generation field.
        self._consumer_commit_min_version = consumer_commit_min_version
        self._metadata_max_bytes = offset_metadata_max_bytes
        self._tick_s = tick_interval_ms / 1000.0
        self._reaper: asyncio.Task[None] | None = None
        # In a cluster (``create_offsets_topic`` given) this broker coordinates the groups of
        # the offsets partitions it leads (:mod:`.leadership`); on one node, every group.
        self.leadership: OffsetsLeadership | None = None
        if create_offsets_topic is not None:
            self.leadership = OffsetsLeadership(
                self.offsets,
                self.membership,
                self.consumer,
                now,
                lambda: self._store.topics().get(OFFSETS_TOPIC),
                create_offsets_topic,
            )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open (creating if needed) ``__consumer_offsets``, replay it (off the event loop:
        it reads the whole topic), start the reaper. In a cluster the topic is created at
        the first FindCoordinator and each partition is replayed when this broker comes to
        lead it (:meth:`.OffsetsLeadership.changed`)."""
        if self.leadership is not None:
            self._reaper = asyncio.create_task(self._reap(), name="edplog-group-reaper")
            return
        replay = Replay()
        self.offsets.record_sink = replay.apply
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.offsets.open)
        finally:
            self.offsets.record_sink = None
        self.consumer.groups = replay.groups(self._now())
        for group in self.consumer.groups.values():
            self.consumer.refresh_snapshot(group)
        for group_id in self.offsets.groups():
            if group_id not in self.consumer.groups:
                self.membership.groups.setdefault(group_id, Group(group_id))
        self._reaper = asyncio.create_task(self._reap(), name="edplog-group-reaper")

    async def close(self) -> None:
        """Stop the reaper and release every parked long poll with NOT_COORDINATOR, which
        sends clients to look the coordinator up again."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        if self.leadership is not None:
            await self.leadership.close()
        self.membership.fail_all(ErrorCode.NOT_COORDINATOR)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                await self.tick_async()
            except Exception:  # a bug in one pass must not stop session expiry for good
                log.exception("group reaper pass failed")

    def tick(self) -> None:
        """Fire every classic membership deadline that has passed."""
        self.membership.tick()

    async def tick_async(self) -> None:
        """Fire every deadline of both protocols (the reaper calls this)."""
        self.membership.tick()
        for group, members in self.consumer.expired():
            await self.consumer.persist(group, members)

    async def _persist_consumer(self, group: ConsumerGroup, member_ids: list[str]) -> None:
        try:
            await self.offsets.append_records(group.group_id, group_records(group, member_ids))
        except (EdplogError, OSError) as exc:  # it goes on in memory; the next change retries
            log.error("consumer group %s: state not persisted: %s", group.group_id, exc)

    async def _delete_consumer(self, group: ConsumerGroup) -> None:
        await self.offsets.append_records(group.group_id, delete_records(group))

    def _topic_table(self) -> dict[str, tuple[Any, int]]:
        """The topics consumer groups may subscribe to: name -> (topic id, partitions)."""
        return {
            name: (self._store.topic_id(name), count)
            for name, count in self._store.topics().items()
            if name not in INTERNAL_TOPICS
        }

    def find_coordinator_key_ok(self, key: str, key_type: int) -> bool:
        """Whether this node coordinates ``key``: every non-empty group id (key_type 0).

        Transactions (key_type 1) have no coordinator yet, so they answer False; nor does a
        group whose offsets partition could not be read (see :meth:`unavailable`).
        """
        return key_type == 0 and bool(key) and self.unavailable(key) is None

    async def topic_deleted(self, topic: str) -> None:
        """Drop (tombstone) every committed offset of a deleted topic; the broker calls this
        from DeleteTopics so a re-created topic does not inherit old positions."""
        await self.offsets.delete_topic(topic)

    # ------------------------------------------------------------------ membership APIs

    async def join_group(
        self, req: Body, version: int, *, client_id: str = "", client_host: str = ""
    ) -> Body:
        """JoinGroup; ``client_id`` and ``client_host`` (from the request header and the
        socket) are only reported by DescribeGroups and seed new member ids."""
        self._serve(req["group_id"])
        consumer = self.consumer.groups.get(req["group_id"])
        if consumer is not None:
            if consumer.members:
                return join_response(
                    version, ErrorCode.INCONSISTENT_GROUP_PROTOCOL, req.get("member_id") or ""
                )
            await self.consumer.delete(consumer)  # an empty group changes type
        return await self.membership.join_group(
            req, version, client_id=client_id, client_host=client_host
        )

    async def sync_group(self, req: Body, version: int) -> Body:
        self._serve(req["group_id"])
        return await self.membership.sync_group(req, version)

    async def heartbeat(self, req: Body, version: int) -> Body:
        self._serve(req["group_id"])
        return self.membership.heartbeat(req, version)

    async def leave_group(self, req: Body, version: int) -> Body:
        self._serve(req["group_id"])
        return self.membership.leave_group(req, version)

    # ------------------------------------------------------------------ consumer protocol

    async def consumer_group_heartbeat(
        self, req: Body, version: int, *, client_id: str = "", client_host: str = ""
    ) -> Body:
        """ConsumerGroupHeartbeat (KIP-848); a non-empty classic group of that id refuses it."""
        self._serve(req["group_id"] or "")
        classic = self.membership.groups.get(req["group_id"])
        if classic is not None and classic.state is not GroupState.DEAD:
            if classic.members or classic.pending_members or classic.state is not GroupState.EMPTY:
                return self.consumer.error_response(
                    ErrorCode.GROUP_ID_NOT_FOUND, f"group {req['group_id']} is not a consumer group"
                )
            del self.membership.groups[req["group_id"]]  # an empty classic group is upgraded
            log.info("group %s: empty classic group becomes a consumer group", req["group_id"])
        return await self.consumer.heartbeat(
            req, version, client_id=client_id, client_host=client_host
        )

    async def consumer_group_describe(self, req: Body, version: int) -> Body:
        """ConsumerGroupDescribe: GROUP_ID_NOT_FOUND for unknown and classic groups."""
        names = {tid: name for name, (tid, _) in self._topic_table().items()}
        with_ops = bool(req.get("include_authorized_operations"))
        groups = []
        for group_id in req["group_ids"]:
            group = self.consumer.groups.get(group_id)
            not_here = self._group_error(group_id)
            if group is None or not_here:
                body: Body = {
                    "error_code": not_here or ErrorCode.GROUP_ID_NOT_FOUND,
                    "error_message": None
                    if not_here
                    else f"group {group_id} is not a consumer group",
                    "group_id": group_id,
                    "group_state": "",
                    "group_epoch": 0,
                    "assignment_epoch": 0,
                    "assignor_name": "",
                    "members": [],
                    "authorized_operations": -(2**31),
                }
            else:
                body = self.consumer.describe(group, names)
            if with_ops:
                body["authorized_operations"] = GROUP_AUTHORIZED_OPERATIONS
            groups.append(body)
        return {"throttle_time_ms": 0, "groups": groups}


__all__ = ["OFFSETS_TOPIC", "GroupCoordinator"]
