"""The offset APIs of the group coordinator: OffsetCommit, OffsetFetch, OffsetDelete.

Commits are fenced by generation (classic groups, :mod:`.membership`) or member epoch
(consumer groups, :mod:`.consumer_group`), validated per partition and flushed to
``__consumer_offsets`` (:mod:`.offsets`) before the answer. OffsetCommit and OffsetFetch v10
name topics by id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import EdplogError, ErrorCode, kafka_code_of
from .coordinator_base import Body, CoordinatorBase
from .offsets import CommittedOffset, TopicPartition
from .state import GroupState

log = logging.getLogger("edplog.group.coordinator")


class OffsetApis(CoordinatorBase):
    """OffsetCommit, OffsetFetch and OffsetDelete (a mixin of GroupCoordinator)."""

    _metadata_max_bytes: int
    _consumer_commit_min_version: int

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
