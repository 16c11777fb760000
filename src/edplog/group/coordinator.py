"""The group coordinator the broker calls: one object per node, transport-free.

The broker decodes a request into a dict (every field of the newest version, defaults for the
fields the client's version lacks), awaits the matching method with the api version, and
encodes the returned dict with that version. Membership (join, sync, heartbeat, leave) lives in
:mod:`.membership`; committed offsets in :mod:`.offsets`; this module adds the offset APIs and
the group-admin APIs and runs the reaper task that expires sessions.

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

from ..errors import EdplogError, ErrorCode, kafka_code_of
from ..storage import INTERNAL_TOPICS
from .assignors import assignors_from
from .consumer_group import ConsumerGroup, ConsumerGroups
from .consumer_records import Replay, delete_records, group_records
from .leadership import OffsetsLeadership
from .membership import Membership
from .offsets import (
    OFFSETS_TOPIC,
    CommittedOffset,
    Flush,
    OffsetStore,
    StoreLike,
    TopicPartition,
)
from .state import (
    GROUP_AUTHORIZED_OPERATIONS,
    Group,
    GroupState,
    join_response,
)

log = logging.getLogger(__name__)

Body = dict[str, Any]


class GroupCoordinator:
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

    def _serve(self, group_id: str) -> None:
        """In a cluster, raise NOT_COORDINATOR (or COORDINATOR_LOAD_IN_PROGRESS) for a group
        this broker does not coordinate now: the API answers in its own error shape."""
        if self.leadership is not None:
            self.leadership.check(group_id)

    def _group_error(self, group_id: str) -> int:
        """For APIs with an error per group: the same as :meth:`_serve`, as a code."""
        if self.leadership is None or not group_id:
            return ErrorCode.NONE
        return self.leadership.error_for(group_id)

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

    def unavailable(self, group_id: str) -> str | None:
        """Why this node cannot coordinate ``group_id`` now (its partition of the offsets
        topic is offline), or None: such a group is answered COORDINATOR_NOT_AVAILABLE."""
        return self.offsets.unavailable(group_id) if group_id else None

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

    # ------------------------------------------------------------------ offsets

    async def offset_commit(self, req: Body, version: int) -> Body:
        """OffsetCommit: fenced by generation, validated per partition, flushed before the
        answer."""
        group_id: str = req["group_id"]
        self._serve(group_id)
        generation, member_id, instance_id = -1, "", None
        if version >= 1:
            generation = int(req.get("generation_id_or_member_epoch", req.get("generation_id", -1)))
            member_id = req.get("member_id") or ""
        if version >= 7:
            instance_id = req.get("group_instance_id")
        consumer = self.consumer.groups.get(group_id)
        if not group_id:
            group_error = ErrorCode.INVALID_GROUP_ID
        elif consumer is not None:
            group_error = self.consumer.validate_commit(consumer, member_id, generation)
            if (
                group_error == ErrorCode.NONE
                and member_id in consumer.members
                and version < self._consumer_commit_min_version
            ):
                group_error = ErrorCode.UNSUPPORTED_VERSION
        else:
            group_error = self.membership.validate_commit(
                group_id, generation, member_id, instance_id
            )
        topics = self._store.topics()
        names = self._topic_names(req["topics"], topics) if version >= 10 else None
        now_ms = int(time.time() * 1000)
        errors: dict[TopicPartition, int] = {}
        entries: dict[TopicPartition, CommittedOffset] = {}
        for i, topic in enumerate(req["topics"]):
            name = topic["name"] if names is None else names[i]
            for part in topic["partitions"]:
                tp = (name, int(part["partition_index"]))
                metadata = part.get("committed_metadata") or ""
                if group_error != ErrorCode.NONE:
                    errors[tp] = group_error
                elif names is not None and not name:
                    errors[tp] = ErrorCode.UNKNOWN_TOPIC_ID
                elif not 0 <= tp[1] < topics.get(name, 0):
                    errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                elif len(metadata.encode()) > self._metadata_max_bytes:
                    errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                else:
                    timestamp_ms = now_ms
                    if version == 1 and part.get("commit_timestamp", -1) >= 0:
                        timestamp_ms = int(part["commit_timestamp"])
                    epoch = int(part.get("committed_leader_epoch", -1)) if version >= 6 else -1
                    entries[tp] = CommittedOffset(
                        int(part["committed_offset"]), epoch, metadata, timestamp_ms
                    )
                    errors[tp] = ErrorCode.NONE
        try:
            await self.offsets.commit(group_id, entries)
        except EdplogError as exc:
            log.error("group %s: offset commit failed: %s", group_id, exc)
            for tp in entries:
                errors[tp] = kafka_code_of(exc)
        return {
            "throttle_time_ms": 0,
            "topics": [
                {
                    "name": topic["name"],
                    "topic_id": topic.get("topic_id"),
                    "partitions": [
                        {
                            "partition_index": part["partition_index"],
                            "error_code": errors[
                                (
                                    topic["name"] if names is None else names[i],
                                    int(part["partition_index"]),
                                )
                            ],
                        }
                        for part in topic["partitions"]
                    ],
                }
                for i, topic in enumerate(req["topics"])
            ],
        }

    def _topic_names(self, requested: list[Body], known: dict[str, int]) -> list[str]:
        """OffsetCommit and OffsetFetch v10 name topics by id: each requested topic's name,
        "" for an id no topic has (answered UNKNOWN_TOPIC_ID)."""
        names = []
        for t in requested:
            topic_id = t.get("topic_id")
            name = self._store.topic_name(topic_id) if topic_id is not None else None
            names.append(name if name is not None and name in known else "")
        return names

    async def offset_fetch(self, req: Body, version: int) -> Body:
        """OffsetFetch: v0-7 name one group, v8+ a batch of groups; topics=None means all."""
        if version >= 8:
            groups = []
            for g in req["groups"]:
                not_here = self._group_error(g["group_id"])
                if not_here:
                    error, topics = not_here, []
                elif self.unavailable(g["group_id"]) is not None:
                    error, topics = ErrorCode.COORDINATOR_NOT_AVAILABLE, []
                else:
                    error, topics = self._fetch_group(
                        g["group_id"],
                        g.get("topics"),
                        g.get("member_id"),
                        g.get("member_epoch", -1),
                        by_id=version >= 10,
                    )
                groups.append({"group_id": g["group_id"], "topics": topics, "error_code": error})
            return {
                "throttle_time_ms": 0,
                "error_code": ErrorCode.NONE,
                "topics": [],
                "groups": groups,
            }
        self._serve(req["group_id"])
        error, topics = self._fetch_group(req["group_id"], req.get("topics"))
        return {"throttle_time_ms": 0, "error_code": error, "topics": topics, "groups": []}

    def _fetch_group(
        self,
        group_id: str,
        requested: list[dict[str, Any]] | None,
        member_id: str | None = None,
        member_epoch: int = -1,
        by_id: bool = False,
    ) -> tuple[int, list[Body]]:
        """One group's committed offsets. With ``by_id`` (v10) topics are named by id: an id
        no topic has answers UNKNOWN_TOPIC_ID per partition, and "all topics" leaves out the
        offsets of topics that no longer exist (they have no id to name them by)."""
        error = ErrorCode.NONE if group_id else ErrorCode.INVALID_GROUP_ID
        consumer = self.consumer.groups.get(group_id)
        if consumer is not None and member_id and member_epoch >= 0:
            # OffsetFetch v9+ from a consumer-protocol member: it must be current (Kafka).
            member = consumer.members.get(member_id)
            if member is None:
                error = ErrorCode.UNKNOWN_MEMBER_ID
            elif member_epoch != member.member_epoch:
                error = ErrorCode.STALE_MEMBER_EPOCH
            if error != ErrorCode.NONE:
                return error, []
        committed = self.offsets.get(group_id)
        known = self._store.topics() if by_id else {}
        if requested is None:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in sorted(committed):
                if not by_id or topic in known:
                    by_topic.setdefault(topic, []).append(partition)
            wanted = [(name, None, parts) for name, parts in by_topic.items()]
        elif by_id:
            names = self._topic_names(requested, known)
            wanted = [
                (name, t.get("topic_id"), list(t["partition_indexes"]))
                for name, t in zip(names, requested, strict=True)
            ]
        else:
            wanted = [(t["name"], None, list(t["partition_indexes"])) for t in requested]
        topics = []
        for name, topic_id, partitions in wanted:
            unknown = by_id and not name and error == ErrorCode.NONE
            code = ErrorCode.UNKNOWN_TOPIC_ID if unknown else error
            rows = []
            for partition in partitions:
                entry = None if unknown else committed.get((name, partition))
                rows.append(
                    {
                        "partition_index": partition,
                        "committed_offset": entry.offset if entry else -1,
                        "committed_leader_epoch": entry.leader_epoch if entry else -1,
                        "metadata": entry.metadata if entry else "",
                        "error_code": code,
                    }
                )
            if by_id and topic_id is None:
                topic_id = self._store.topic_id(name)
            topics.append({"name": name, "topic_id": topic_id, "partitions": rows})
        return error, topics

    async def offset_delete(self, req: Body, version: int) -> Body:
        """OffsetDelete: drop committed offsets of partitions the group does not consume now.

        Like Kafka: an unknown group is GROUP_ID_NOT_FOUND; a non-empty group that is not a
        consumer group is NON_EMPTY_GROUP; a partition of a topic a member subscribes to is
        GROUP_SUBSCRIBED_TO_TOPIC (also when a member's subscription cannot be read). Every
        other listed partition is tombstoned in the offsets topic, committed or not.
        """
        group_id: str = req["group_id"]
        self._serve(group_id)
        group = self.membership.groups.get(group_id) if group_id else None
        group_error: int = ErrorCode.NONE
        if not group_id:
            group_error = ErrorCode.INVALID_GROUP_ID
        elif group is None or group.state is GroupState.DEAD:
            group_error = ErrorCode.GROUP_ID_NOT_FOUND
        elif group.state is not GroupState.EMPTY and group.protocol_type != "consumer":
            group_error = ErrorCode.NON_EMPTY_GROUP
        if group is None or group_error != ErrorCode.NONE:
            return {"error_code": group_error, "throttle_time_ms": 0, "topics": []}
        subscribed = set() if group.state is GroupState.EMPTY else group.subscribed_topics()
        doomed: list[TopicPartition] = []
        topics = []
        for topic in req["topics"]:
            name = topic["name"]
            busy = subscribed is None or name in subscribed
            code = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC if busy else ErrorCode.NONE
            rows = []
            for part in topic["partitions"]:
                index = int(part["partition_index"])
                if not busy:
                    doomed.append((name, index))
                rows.append({"partition_index": index, "error_code": code})
            topics.append({"name": name, "partitions": rows})
        try:
            await self.offsets.delete_offsets(group_id, doomed)
        except EdplogError as exc:
            log.error("group %s: offset delete failed: %s", group_id, exc)
            return {"error_code": kafka_code_of(exc), "throttle_time_ms": 0, "topics": []}
        if doomed:
            log.info("group %s: committed offsets of %d partitions deleted", group_id, len(doomed))
        return {"error_code": ErrorCode.NONE, "throttle_time_ms": 0, "topics": topics}

    # ------------------------------------------------------------------ group admin

    async def list_groups(self, req: Body, version: int) -> Body:
        """ListGroups with v4 state and v5 type filters (matched case-insensitively)."""
        states = {s.lower() for s in (req.get("states_filter") or [])} if version >= 4 else set()
        types = {t.lower() for t in (req.get("types_filter") or [])} if version >= 5 else set()
        groups = []
        for group in self.membership.groups.values():
            if group.state is GroupState.DEAD:
                continue
            if states and group.state.value.lower() not in states:
                continue
            if types and "classic" not in types:
                continue
            groups.append(
                {
                    "group_id": group.group_id,
                    "protocol_type": group.protocol_type or "",
                    "group_state": group.state.value,
                    "group_type": "classic",
                }
            )
        for cgroup in self.consumer.groups.values():
            state = cgroup.state.value
            if states and state.lower() not in states:
                continue
            if types and "consumer" not in types:
                continue
            groups.append(
                {
                    "group_id": cgroup.group_id,
                    "protocol_type": "consumer",
                    "group_state": state,
                    "group_type": "consumer",
                }
            )
        # A coordinator still loading a partition lists what it has, saying it is not all.
        loading = self.leadership is not None and self.leadership.loading
        error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if loading else ErrorCode.NONE
        return {"throttle_time_ms": 0, "error_code": error, "groups": groups}

    async def describe_groups(self, req: Body, version: int) -> Body:
        """DescribeGroups; an unknown group is reported Dead, or GROUP_ID_NOT_FOUND from v6."""
        with_ops = version >= 3 and bool(req.get("include_authorized_operations"))
        described = []
        for group_id in req["groups"]:
            group = self.membership.groups.get(group_id)
            not_here = self._group_error(group_id)
            if not_here:
                body = Group(group_id).describe()
                body["error_code"] = not_here
            elif group is not None and group.state is not GroupState.DEAD:
                body = group.describe()
            else:
                body = Group(group_id).describe()
                body["group_state"] = GroupState.DEAD.value
                if version >= 6:
                    body["error_code"] = ErrorCode.GROUP_ID_NOT_FOUND
                    body["error_message"] = f"group {group_id} does not exist"
            if with_ops:
                body["authorized_operations"] = GROUP_AUTHORIZED_OPERATIONS
            described.append(body)
        return {"throttle_time_ms": 0, "groups": described}

    async def delete_groups(self, req: Body, version: int) -> Body:
        """DeleteGroups: only Empty groups; their offsets are tombstoned in the offsets topic."""
        results = []
        for group_id in req["groups_names"]:
            results.append({"group_id": group_id, "error_code": await self._delete_group(group_id)})
        return {"throttle_time_ms": 0, "results": results}

    async def _delete_group(self, group_id: str) -> int:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        if self._group_error(group_id):
            return self._group_error(group_id)
        consumer = self.consumer.groups.get(group_id)
        if consumer is not None:
            if consumer.members:
                return ErrorCode.NON_EMPTY_GROUP
            try:
                await self.offsets.delete_group(group_id)
                await self.consumer.delete(consumer)
            except EdplogError as exc:
                log.error("group %s: delete failed: %s", group_id, exc)
                return kafka_code_of(exc)
            return ErrorCode.NONE
        group = self.membership.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group.state is not GroupState.EMPTY:
            return ErrorCode.NON_EMPTY_GROUP
        try:
            await self.offsets.delete_group(group_id)
        except EdplogError as exc:
            log.error("group %s: delete failed: %s", group_id, exc)
            return kafka_code_of(exc)
        group.state = GroupState.DEAD
        del self.membership.groups[group_id]
        log.info("group %s deleted", group_id)
        return ErrorCode.NONE


__all__ = ["OFFSETS_TOPIC", "GroupCoordinator"]
