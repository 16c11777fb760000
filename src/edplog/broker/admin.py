"""Topic administration: create, delete, add partitions, describe and alter configs, and
delete records. Everything persists through the store, so it survives restarts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidConfigError
from ..protocol import RequestHeader
from .errors import (
    INVALID_PARTITIONS,
    INVALID_REPLICATION_FACTOR,
    INVALID_REQUEST,
    NONE,
    OFFSET_OUT_OF_RANGE,
    UNKNOWN_TOPIC_OR_PARTITION,
    error_code,
    error_message,
)
from .metadata import INTERNAL_TOPICS

if TYPE_CHECKING:
    from .server import Broker

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
# Kafka's ConfigSource values.
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
TOPIC_EXISTS = 36
_LEGAL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _topic_name_error(name: str) -> str | None:
    """Kafka's topic-name rule, used where nothing is created (validate_only)."""
    if not name or name in (".", "..") or len(name) > 249 or set(name) - _LEGAL_NAME_CHARS:
        return f"invalid topic name {name!r}"
    return None


def _effective(broker: Broker, name: str) -> dict[str, str]:
    """A topic's effective config as the strings Kafka shows (lists comma-joined)."""
    config = broker.store.effective_config(name)
    if hasattr(config, "as_strings"):
        return dict(config.as_strings())
    return {k: str(v) for k, v in config.items()}


def _configs_of(broker: Broker, name: str) -> list[dict[str, Any]]:
    overrides = broker.store.topic_config(name)
    return [
        {
            "name": key,
            "value": str(value),
            "read_only": False,
            "config_source": SOURCE_DYNAMIC_TOPIC if key in overrides else SOURCE_DEFAULT,
            "is_sensitive": False,
        }
        for key, value in sorted(_effective(broker, name).items())
    ]


async def handle_create_topics(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Create topics; -1 partitions or replication factor means the broker default."""
    results = []
    for topic in req["topics"]:
        name = topic["name"]
        result: dict[str, Any] = {
            "name": name,
            "error_code": NONE,
            "error_message": None,
            "num_partitions": -1,
            "replication_factor": -1,
            "configs": None,
        }
        results.append(result)
        count = topic["num_partitions"]
        if topic.get("assignments"):
            count = len(topic["assignments"])
        if count == -1:
            count = broker.config.num_partitions
        replication = topic["replication_factor"]
        if replication == -1:
            replication = broker.config.default_replication_factor
        configs = {c["name"]: c["value"] for c in topic.get("configs") or ()}
        if replication != 1:
            result["error_code"] = INVALID_REPLICATION_FACTOR
            result["error_message"] = f"replication factor {replication} > 1 broker available"
            continue
        if count <= 0:
            result["error_code"] = INVALID_PARTITIONS
            result["error_message"] = f"{count} partitions"
            continue
        if req.get("validate_only"):
            problem = _topic_name_error(name)
            if problem is not None:
                result["error_code"], result["error_message"] = 17, problem
            elif name in broker.store.topics():
                result["error_code"] = TOPIC_EXISTS
                result["error_message"] = f"topic {name!r} already exists"
        else:
            try:
                broker.store.create_topic(name, count, {k: v for k, v in configs.items() if v})
            except Exception as exc:
                result["error_code"], result["error_message"] = error_code(exc), error_message(exc)
                continue
        if result["error_code"] == NONE:
            result["num_partitions"], result["replication_factor"] = count, replication
            if not req.get("validate_only"):
                result["configs"] = _configs_of(broker, name)
    return {"throttle_time_ms": 0, "topics": results}


async def handle_delete_topics(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    names = list(req.get("topic_names") or ())
    names += [t["name"] for t in req.get("topics") or () if t.get("name") is not None]
    responses = []
    for name in names:
        result: dict[str, Any] = {"name": name, "error_code": NONE, "error_message": None}
        responses.append(result)
        if name in INTERNAL_TOPICS:
            result["error_code"] = INVALID_REQUEST
            result["error_message"] = f"{name} is internal"
            continue
        try:
            broker.store.delete_topic(name)
        except Exception as exc:
            result["error_code"], result["error_message"] = error_code(exc), error_message(exc)
            continue
        broker.topic_deleted(name)
    return {"throttle_time_ms": 0, "responses": responses}


async def handle_create_partitions(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    results = []
    for topic in req["topics"]:
        name = topic["name"]
        result: dict[str, Any] = {"name": name, "error_code": NONE, "error_message": None}
        results.append(result)
        current = broker.store.topics().get(name)
        if current is None:
            result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
            continue
        if topic["count"] <= current:
            result["error_code"] = INVALID_PARTITIONS
            result["error_message"] = f"topic has {current} partitions, asked for {topic['count']}"
            continue
        if req.get("validate_only"):
            continue
        try:
            broker.store.add_partitions(name, topic["count"])
        except Exception as exc:
            result["error_code"], result["error_message"] = error_code(exc), error_message(exc)
            continue
        broker.partitions_added(name)
    return {"throttle_time_ms": 0, "results": results}


def _broker_configs(broker: Broker) -> list[dict[str, Any]]:
    cfg = broker.config
    values = {
        "broker.id": str(cfg.node_id),
        "log.dirs": cfg.data_dir,
        "num.partitions": str(cfg.num_partitions),
        "auto.create.topics.enable": str(cfg.auto_create_topics).lower(),
        "message.max.bytes": str(cfg.message_max_bytes),
        "socket.request.max.bytes": str(cfg.socket_request_max_bytes),
        "default.replication.factor": str(cfg.default_replication_factor),
    }
    values.update(cfg.extra)
    return [
        {
            "name": k,
            "value": v,
            "read_only": True,
            "config_source": SOURCE_STATIC_BROKER,
            "is_sensitive": False,
        }
        for k, v in sorted(values.items())
    ]


async def handle_describe_configs(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    results = []
    for res in req["resources"]:
        rtype, rname = res["resource_type"], res["resource_name"]
        result: dict[str, Any] = {
            "error_code": NONE,
            "error_message": None,
            "resource_type": rtype,
            "resource_name": rname,
            "configs": [],
        }
        results.append(result)
        try:
            if rtype == TOPIC_RESOURCE:
                if rname not in broker.store.topics():
                    result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                    continue
                configs = _configs_of(broker, rname)
            elif rtype == BROKER_RESOURCE and rname in ("", str(broker.config.node_id)):
                configs = _broker_configs(broker)
            else:
                result["error_code"] = INVALID_REQUEST
                result["error_message"] = f"no config resource {rtype}/{rname!r}"
                continue
        except Exception as exc:
            result["error_code"], result["error_message"] = error_code(exc), error_message(exc)
            continue
        keys = res.get("configuration_keys")
        if keys is not None:
            configs = [c for c in configs if c["name"] in keys]
        for c in configs:
            c["is_default"] = c["config_source"] == SOURCE_DEFAULT
            c["synonyms"] = []
        result["configs"] = configs
    return {"throttle_time_ms": 0, "results": results}


def _alter(broker: Broker, req: dict[str, Any], updates_of: Any) -> list[dict[str, Any]]:
    responses = []
    for res in req["resources"]:
        rtype, rname = res["resource_type"], res["resource_name"]
        result: dict[str, Any] = {
            "error_code": NONE,
            "error_message": None,
            "resource_type": rtype,
            "resource_name": rname,
        }
        responses.append(result)
        if rtype != TOPIC_RESOURCE:
            result["error_code"] = INVALID_REQUEST
            result["error_message"] = "only topic configs can be altered; broker configs are static"
            continue
        if rname not in broker.store.topics():
            result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
            continue
        try:
            updates = updates_of(rname, res["configs"])
            if not req.get("validate_only"):
                broker.store.alter_topic_config(rname, updates)
                broker.config_changed(rname)
        except Exception as exc:
            result["error_code"], result["error_message"] = error_code(exc), error_message(exc)
    return responses


async def handle_alter_configs(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Replace a topic's overrides with exactly the given set (Kafka's legacy semantics)."""

    def updates_of(name: str, configs: list[dict[str, Any]]) -> dict[str, str | None]:
        new: dict[str, str | None] = {c["name"]: c["value"] for c in configs}
        removed = {k: None for k in broker.store.topic_config(name) if k not in new}
        return {**removed, **new}

    return {"throttle_time_ms": 0, "responses": _alter(broker, req, updates_of)}


async def handle_incremental_alter_configs(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) on individual topic configs."""

    def updates_of(name: str, configs: list[dict[str, Any]]) -> dict[str, str | None]:
        effective = _effective(broker, name)
        updates: dict[str, str | None] = {}
        for c in configs:
            op, key, value = c["config_operation"], c["name"], c["value"]
            if op == 0:
                updates[key] = value
            elif op == 1:
                updates[key] = None
            elif op in (2, 3):
                items = [v for v in str(effective.get(key, "")).split(",") if v]
                given = [v for v in (value or "").split(",") if v]
                if op == 2:
                    items += [v for v in given if v not in items]
                else:
                    items = [v for v in items if v not in given]
                updates[key] = ",".join(items)
            else:
                raise InvalidConfigError(f"unknown config operation {op}")
        return updates

    return {"throttle_time_ms": 0, "responses": _alter(broker, req, updates_of)}


async def handle_delete_records(
    broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> dict[str, Any]:
    """Advance log start offsets; -1 means up to the high watermark."""
    topics = []
    for topic in req["topics"]:
        results = []
        for preq in topic["partitions"]:
            result = {
                "partition_index": preq["partition_index"],
                "low_watermark": -1,
                "error_code": NONE,
            }
            results.append(result)
            partition = broker.partition(topic["name"], preq["partition_index"])
            if partition is None:
                result["error_code"] = UNKNOWN_TOPIC_OR_PARTITION
                continue
            offset = preq["offset"]
            if offset == -1:
                offset = partition.high_watermark
            if offset < 0 or offset > partition.high_watermark:
                result["error_code"] = OFFSET_OUT_OF_RANGE
                continue
            try:
                result["low_watermark"] = int(partition.log.delete_records_before(offset))
            except Exception as exc:
                result["error_code"] = error_code(exc)
        topics.append({"name": topic["name"], "partitions": results})
    return {"throttle_time_ms": 0, "topics": topics}


HANDLERS = {
    19: handle_create_topics,
    20: handle_delete_topics,
    37: handle_create_partitions,
    32: handle_describe_configs,
    33: handle_alter_configs,
    44: handle_incremental_alter_configs,
    21: handle_delete_records,
}
