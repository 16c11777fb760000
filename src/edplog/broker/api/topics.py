"""Topic administration: create, delete, add partitions and delete records. Everything
persists through the store (the topic registry and the logs), so it survives restarts.

CreateTopics v7 answers the new topic's id, the one Metadata v10+ shows (all zero for
validate_only, where nothing is created, as Kafka); v5+ answers the topic's effective
configs, each with its source (an override or a default)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...cluster.registry import ClusterTopicRegistry
from ...errors import InvalidReplicaAssignmentError
from ..context import INTERNAL_TOPICS, ErrorCode, RequestContext, Services, code_for, message_for
from .configs import configs_of
from .registry import ApiSpec

log = logging.getLogger("edplog.broker")

Body = dict[str, Any]
_LEGAL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _topic_name_error(name: str) -> str | None:
    """Kafka's topic-name rule, used where nothing is created (validate_only)."""
    if not name or name in (".", "..") or len(name) > 249 or set(name) - _LEGAL_NAME_CHARS:
        return f"invalid topic name {name!r}"
    return None


def _created(name: str, code: int = ErrorCode.NONE, message: str | None = None) -> Body:
    return {
        "name": name,
        "topic_id": None,  # all zero, as Kafka answers for validate_only and errors
        "error_code": code,
        "error_message": message,
        "num_partitions": -1,
        "replication_factor": -1,
        "configs": None,
    }


def create_topics_error(req: Body, code: ErrorCode) -> Body:
    return {"throttle_time_ms": 0, "topics": [_created(t["name"], code) for t in req["topics"]]}


async def create_topics(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Create topics; -1 partitions or replication factor means the broker default."""
    return await create_topics_for(services, req)


async def create_topics_for(services: Services, req: Body) -> Body:
    """CreateTopics' work, for a request already authorized (or the broker's own, as for
    the audit topic)."""
    results = []
    store, config = services.store, services.config
    for topic in req["topics"]:
        name = topic["name"]
        result = _created(name)
        results.append(result)
        count = topic["num_partitions"]
        if topic.get("assignments"):
            count = len(topic["assignments"])
        if count == -1:
            count = config.num_partitions
        replication = topic["replication_factor"]
        if replication == -1:
            replication = config.default_replication_factor
        configs = {c["name"]: c["value"] for c in topic.get("configs") or ()}
        assignment = None
        if services.cluster is not None:
            assignment, refusal = _cluster_assignment(services, topic, count, replication)
            if refusal is not None:
                result["error_code"], result["error_message"] = refusal
                continue
            assert assignment is not None
            replication = len(next(iter(assignment.values())))
        elif replication != 1:
            result["error_code"] = ErrorCode.INVALID_REPLICATION_FACTOR
            result["error_message"] = f"replication factor {replication} > 1 broker available"
            continue
        if count <= 0:
            result["error_code"] = ErrorCode.INVALID_PARTITIONS
            result["error_message"] = f"{count} partitions"
            continue
        if req.get("validate_only"):
            problem = _topic_name_error(name)
            if problem is not None:
                result["error_code"] = ErrorCode.INVALID_TOPIC_EXCEPTION
                result["error_message"] = problem
            elif name in store.topics():
                result["error_code"] = ErrorCode.TOPIC_ALREADY_EXISTS
                result["error_message"] = f"topic {name!r} already exists"
        else:
            overrides = {k: v for k, v in configs.items() if v}
            try:
                # Creating directories and preallocating indexes is disk work: off the loop
                # (and in a cluster, ZooKeeper writes: blocking calls).
                if assignment is not None:
                    await asyncio.get_running_loop().run_in_executor(
                        None, _create_in_cluster, store, name, assignment, overrides
                    )
                else:
                    await asyncio.get_running_loop().run_in_executor(
                        None, store.create_topic, name, count, overrides
                    )
            except Exception as exc:
                result["error_code"], result["error_message"] = code_for(exc), message_for(exc)
                continue
        if result["error_code"] == ErrorCode.NONE:
            result["num_partitions"], result["replication_factor"] = count, replication
            if not req.get("validate_only"):
                result["topic_id"] = store.topic_id(name)
                result["configs"] = configs_of(services, name)
    return {"throttle_time_ms": 0, "topics": results}


def _cluster_assignment(
    services: Services, topic: Body, count: int, replication: int
) -> tuple[dict[int, tuple[int, ...]] | None, tuple[ErrorCode, str] | None]:
    """The replica lists of a new topic in a cluster: the request's own (checked as Kafka
    checks them) or a rack-aware placement over the live brokers."""
    assert services.cluster is not None
    live = services.cluster.cache.snapshot.brokers
    explicit = topic.get("assignments")
    if explicit:
        if topic["num_partitions"] != -1 or topic["replication_factor"] != -1:
            return None, (
                ErrorCode.INVALID_REQUEST,
                "give either assignments or num_partitions/replication_factor, not both",
            )
        out: dict[int, tuple[int, ...]] = {}
        sizes = set()
        for item in explicit:
            index, brokers = item["partition_index"], tuple(item["broker_ids"])
            if index in out or not 0 <= index < len(explicit):
                return None, (
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"partition indexes must be 0..{len(explicit) - 1}, each once",
                )
            if not brokers or len(set(brokers)) != len(brokers):
                return None, (
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"partition {index}: replicas {list(brokers)} are empty or repeat a broker",
                )
            unknown = [b for b in brokers if b not in live]
            if unknown:
                return None, (
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"partition {index}: brokers {unknown} are not live",
                )
            sizes.add(len(brokers))
            out[index] = brokers
        if len(sizes) != 1:
            return None, (
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                "every partition must have the same number of replicas",
            )
        return out, None
    if replication < 1 or replication > len(live):
        return None, (
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"replication factor {replication}: {len(live)} live broker(s)",
        )
    if count <= 0:
        return None, (ErrorCode.INVALID_PARTITIONS, f"{count} partitions")
    registry = services.store.registry
    assert isinstance(registry, ClusterTopicRegistry)
    return registry.place(count, replication), None


def _create_in_cluster(
    store: Any, name: str, assignment: dict[int, tuple[int, ...]], config: dict[str, str]
) -> None:
    registry = store.registry
    assert isinstance(registry, ClusterTopicRegistry)
    store.validate_topic_config(config)
    registry.create_assigned(name, assignment, config)


def _add_assigned(services: Services, name: str, added: int, given: list[Body]) -> None:
    """CreatePartitions with explicit replica lists (a cluster): one list per new partition,
    of live brokers, as long as the topic's replication factor."""
    registry = services.store.registry
    assert isinstance(registry, ClusterTopicRegistry) and services.cluster is not None
    snap = services.cluster.cache.snapshot
    lists = [tuple(a["broker_ids"]) for a in given]
    topic = snap.topics.get(name)
    rf = len(next(iter(topic.partitions.values()))) if topic is not None else 0
    if len(lists) != added:
        raise InvalidReplicaAssignmentError(f"{added} new partitions but {len(lists)} assignments")
    for reps in lists:
        if len(reps) != rf or len(set(reps)) != rf or any(b not in snap.brokers for b in reps):
            raise InvalidReplicaAssignmentError(
                f"replicas {list(reps)}: need {rf} distinct live brokers"
            )
    registry.add_assigned(name, lists)


def _names(req: Body) -> list[str]:
    names = list(req.get("topic_names") or ())
    names += [t["name"] for t in req.get("topics") or () if t.get("name") is not None]
    return names


def delete_topics_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "responses": [{"name": n, "error_code": code, "error_message": None} for n in _names(req)],
    }


async def delete_topics(ctx: RequestContext, services: Services, req: Body) -> Body:
    responses = []
    for name in _names(req):
        result: Body = {"name": name, "error_code": ErrorCode.NONE, "error_message": None}
        responses.append(result)
        if name in INTERNAL_TOPICS:
            result["error_code"] = ErrorCode.INVALID_REQUEST
            result["error_message"] = f"{name} is internal"
            continue
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, services.store.delete_topic, name
            )
        except Exception as exc:
            result["error_code"], result["error_message"] = code_for(exc), message_for(exc)
            continue
        services.replicas.topic_deleted(name)
        if services.groups is not None:
            # A topic re-created under the name must start with no committed offsets.
            try:
                await services.groups.topic_deleted(name)
            except Exception:
                log.exception("could not drop the committed offsets of deleted topic %s", name)
    return {"throttle_time_ms": 0, "responses": responses}


def create_partitions_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "results": [
            {"name": t["name"], "error_code": code, "error_message": None} for t in req["topics"]
        ],
    }


async def create_partitions(ctx: RequestContext, services: Services, req: Body) -> Body:
    results = []
    for topic in req["topics"]:
        name = topic["name"]
        result: Body = {"name": name, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        current = services.store.topics().get(name)
        if current is None:
            result["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            continue
        if topic["count"] <= current:
            result["error_code"] = ErrorCode.INVALID_PARTITIONS
            result["error_message"] = f"topic has {current} partitions, asked for {topic['count']}"
            continue
        if req.get("validate_only"):
            continue
        given = topic.get("assignments")
        if given and services.cluster is None:
            result["error_code"] = ErrorCode.INVALID_REPLICA_ASSIGNMENT
            result["error_message"] = "a single node places every partition on itself"
            continue
        try:
            if given:
                await asyncio.get_running_loop().run_in_executor(
                    None, _add_assigned, services, name, topic["count"] - current, given
                )
            else:
                await asyncio.get_running_loop().run_in_executor(
                    None, services.store.add_partitions, name, topic["count"]
                )
        except Exception as exc:
            result["error_code"], result["error_message"] = code_for(exc), message_for(exc)
            continue
        services.replicas.partitions_added(name)
    return {"throttle_time_ms": 0, "results": results}


def _deleted(index: int, code: int = ErrorCode.NONE) -> Body:
    return {"partition_index": index, "low_watermark": -1, "error_code": code}


def delete_records_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "topics": [
            {
                "name": t["name"],
                "partitions": [_deleted(p["partition_index"], code) for p in t["partitions"]],
            }
            for t in req["topics"]
        ],
    }


async def delete_records(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Advance log start offsets; -1 means up to the high watermark. The segment deletions
    run off the event loop."""
    loop = asyncio.get_running_loop()
    topics = []
    for topic in req["topics"]:
        results = []
        for preq in topic["partitions"]:
            result = _deleted(preq["partition_index"])
            results.append(result)
            try:
                partition = services.replicas.partition(topic["name"], preq["partition_index"])
            except Exception as exc:
                result["error_code"] = code_for(exc)
                continue
            if partition is None:
                result["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            offset = preq["offset"]
            if offset == -1:
                offset = partition.high_watermark
            if offset < 0 or offset > partition.high_watermark:
                result["error_code"] = ErrorCode.OFFSET_OUT_OF_RANGE
                continue
            try:
                low = await loop.run_in_executor(None, partition.log.delete_records_before, offset)
            except Exception as exc:
                result["error_code"] = code_for(exc)
                continue
            result["low_watermark"] = int(low)
        topics.append({"name": topic["name"], "partitions": results})
    return {"throttle_time_ms": 0, "topics": topics}


APIS = [
    ApiSpec(19, create_topics, create_topics_error),
    ApiSpec(20, delete_topics, delete_topics_error),
    ApiSpec(37, create_partitions, create_partitions_error),
    ApiSpec(21, delete_records, delete_records_error),
]
