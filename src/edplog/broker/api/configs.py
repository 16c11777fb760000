"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and describing the
broker's own static configuration)."""

from __future__ import annotations

import asyncio
from typing import Any

from ...errors import InvalidConfigError
from ..context import ErrorCode, RequestContext, Services, code_for, message_for
from .registry import ApiSpec

Body = dict[str, Any]
TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
# Kafka's ConfigSource values.
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5


def _effective(services: Services, name: str) -> dict[str, str]:
    """A topic's effective config as the strings Kafka shows (lists comma-joined)."""
    return dict(services.store.effective_config(name).as_strings())


def configs_of(services: Services, name: str) -> list[Body]:
    overrides = services.store.topic_config(name)
    return [
        {
            "name": key,
            "value": str(value),
            "read_only": False,
            "config_source": SOURCE_DYNAMIC_TOPIC if key in overrides else SOURCE_DEFAULT,
            "is_sensitive": False,
        }
        for key, value in sorted(_effective(services, name).items())
    ]


def _broker_configs(services: Services) -> list[Body]:
    cfg = services.config
    values = {
        "broker.id": str(cfg.node_id),
        "log.dirs": ",".join(cfg.all_log_dirs),
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


def _resource_result(res: Body, code: int = ErrorCode.NONE) -> Body:
    return {
        "error_code": code,
        "error_message": None,
        "resource_type": res["resource_type"],
        "resource_name": res["resource_name"],
    }


def describe_configs_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "results": [{**_resource_result(r, code), "configs": []} for r in req["resources"]],
    }


async def describe_configs(ctx: RequestContext, services: Services, req: Body) -> Body:
    results = []
    for res in req["resources"]:
        rtype, rname = res["resource_type"], res["resource_name"]
        result: Body = {**_resource_result(res), "configs": []}
        results.append(result)
        try:
            if rtype == TOPIC_RESOURCE:
                if rname not in services.store.topics():
                    result["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    continue
                configs = configs_of(services, rname)
            elif rtype == BROKER_RESOURCE and rname in ("", str(services.config.node_id)):
                configs = _broker_configs(services)
            else:
                result["error_code"] = ErrorCode.INVALID_REQUEST
                result["error_message"] = f"no config resource {rtype}/{rname!r}"
                continue
        except Exception as exc:
            result["error_code"], result["error_message"] = code_for(exc), message_for(exc)
            continue
        keys = res.get("configuration_keys")
        if keys is not None:
            configs = [c for c in configs if c["name"] in keys]
        for c in configs:
            c["is_default"] = c["config_source"] == SOURCE_DEFAULT
            c["synonyms"] = []
        result["configs"] = configs
    return {"throttle_time_ms": 0, "results": results}


def alter_configs_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "responses": [_resource_result(r, code) for r in req["resources"]],
    }


async def _alter(services: Services, req: Body, updates_of: Any) -> list[Body]:
    responses = []
    loop = asyncio.get_running_loop()
    for res in req["resources"]:
        rtype, rname = res["resource_type"], res["resource_name"]
        result = _resource_result(res)
        responses.append(result)
        if rtype != TOPIC_RESOURCE:
            result["error_code"] = ErrorCode.INVALID_REQUEST
            result["error_message"] = "only topic configs can be altered; broker configs are static"
            continue
        if rname not in services.store.topics():
            result["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            continue
        try:
            updates = updates_of(rname, res["configs"])
            if not req.get("validate_only"):
                await loop.run_in_executor(None, services.store.alter_topic_config, rname, updates)
                services.replicas.config_changed(rname)
        except Exception as exc:
            result["error_code"], result["error_message"] = code_for(exc), message_for(exc)
    return responses


async def alter_configs(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Replace a topic's overrides with exactly the given set (Kafka's legacy semantics)."""

    def updates_of(name: str, configs: list[Body]) -> dict[str, str | None]:
        new: dict[str, str | None] = {c["name"]: c["value"] for c in configs}
        removed = {k: None for k in services.store.topic_config(name) if k not in new}
        return {**removed, **new}

    return {"throttle_time_ms": 0, "responses": await _alter(services, req, updates_of)}


async def incremental_alter_configs(ctx: RequestContext, services: Services, req: Body) -> Body:
    """SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) on individual topic configs."""

    def updates_of(name: str, configs: list[Body]) -> dict[str, str | None]:
        effective = _effective(services, name)
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

    return {"throttle_time_ms": 0, "responses": await _alter(services, req, updates_of)}


APIS = [
    ApiSpec(32, describe_configs, describe_configs_error),
    ApiSpec(33, alter_configs, alter_configs_error),
    ApiSpec(44, incremental_alter_configs, alter_configs_error),
]
