"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and describing the
broker's own static configuration).

DescribeConfigs answers, as Kafka does, each config's source and, when asked
(``include_synonyms``), its synonyms from the most specific down: the topic's override
(DYNAMIC_TOPIC_CONFIG), the broker property that sets the default of every topic
(STATIC_BROKER_CONFIG, when the broker sets it) and the built-in default (DEFAULT_CONFIG, named
by that broker property when there is one). Every config carries its ``config_type``; its
one-line ``documentation`` (from :mod:`edplog.config`) only when ``include_documentation``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...config import (
    BROKER_DEFAULTS,
    BROKER_PROPERTIES,
    CONFIG_TYPES,
    TOPIC_PROPERTIES,
    to_string,
)
from ...errors import InvalidConfigError
from ...security.tls import SENSITIVE
from ..context import ErrorCode, RequestContext, Services, code_for, message_for
from .registry import ApiSpec

Body = dict[str, Any]
TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
# Kafka's ConfigSource values.
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
CONFIG_TYPE_UNKNOWN = 0
# Topic property -> the broker property that sets its default.
_BROKER_NAME_OF = {topic: broker for broker, topic in BROKER_DEFAULTS.items()}


def _effective(services: Services, name: str) -> dict[str, str]:
    """A topic's effective config as the strings Kafka shows (lists comma-joined)."""
    return dict(services.store.effective_config(name).as_strings())


def _topic_synonyms(services: Services, key: str, overrides: dict[str, str]) -> list[Body]:
    """Where a topic config's value may come from, most specific first."""
    out = []
    if key in overrides:
        out.append({"name": key, "value": overrides[key], "source": SOURCE_DYNAMIC_TOPIC})
    broker_name = _BROKER_NAME_OF.get(key)
    broker_value = services.config.topic_defaults.get(key)
    if broker_name is not None and broker_value is not None:
        out.append({"name": broker_name, "value": broker_value, "source": SOURCE_STATIC_BROKER})
    default = to_string(key, TOPIC_PROPERTIES[key].default)
    out.append({"name": broker_name or key, "value": default, "source": SOURCE_DEFAULT})
    return out


def configs_of(services: Services, name: str) -> list[Body]:
    """A topic's effective configs, each with its source and synonyms (the caller drops the
    synonyms unless they were asked for)."""
    overrides = services.store.topic_config(name)
    out = []
    for key, value in sorted(_effective(services, name).items()):
        synonyms = _topic_synonyms(services, key, overrides)
        prop = TOPIC_PROPERTIES[key]
        out.append(
            {
                "name": key,
                "value": str(value),
                "read_only": False,
                "config_source": synonyms[0]["source"],
                "is_sensitive": False,
                "synonyms": synonyms,
                "config_type": CONFIG_TYPES.get(prop.kind, CONFIG_TYPE_UNKNOWN),
                "documentation": prop.doc or None,
            }
        )
    return out


def _sensitive(name: str, secret_properties: set[str] | frozenset[str] = frozenset()) -> bool:
    """A secret: ``ssl.key.password`` and the like, also as ``listener.name.<l>.ssl.*``; a
    JAAS configuration (it holds passwords); anything named a password or secret; and any
    property whose value came from ``ENC[...]`` or a config provider (``secret_properties``)."""
    _, ssl_prefix, rest = name.rpartition("ssl.")
    if ssl_prefix + rest in SENSITIVE or name in secret_properties:
        return True
    return name.endswith("jaas.config") or "password" in name or "secret" in name


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
    out = []
    for k, value in sorted(values.items()):
        # Passwords and keys are never answered (Kafka: value null, is_sensitive true).
        sensitive = _sensitive(k, cfg.secret_properties)
        v = None if sensitive else value
        prop = BROKER_PROPERTIES.get(k)
        config_type = (
            CONFIG_TYPES.get(prop.kind, CONFIG_TYPE_UNKNOWN) if prop else CONFIG_TYPE_UNKNOWN
        )
        out.append(
            {
                "name": k,
                "value": v,
                "read_only": True,
                "config_source": SOURCE_STATIC_BROKER,
                "is_sensitive": sensitive,
                "synonyms": [{"name": k, "value": v, "source": SOURCE_STATIC_BROKER}],
                "config_type": config_type,
                "documentation": prop.doc if prop else None,
            }
        )
    return out


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
        synonyms = bool(req.get("include_synonyms"))
        docs = bool(req.get("include_documentation"))
        for c in configs:
            c["is_default"] = c["config_source"] == SOURCE_DEFAULT
            if not synonyms:
                c["synonyms"] = []
            if not docs:
                c["documentation"] = None
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
