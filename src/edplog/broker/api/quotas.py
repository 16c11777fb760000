"""DescribeClientQuotas and AlterClientQuotas (KIP-546): the quota configuration.

The values live in :class:`~edplog.broker.quotas.ClientQuotas` (``quotas.json``); enforcing
them is the dispatch's job, not this module's. An alteration is checked whole before anything
is written: an entry with an unknown entity type, an unknown key or a bad value fails with
INVALID_REQUEST and a message, the other entries of the request still apply (each entry has
its own result, as in Kafka), and ``validate_only`` checks without writing.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequestError
from ..context import (
    ENTITY_TYPES,
    IP,
    Entity,
    ErrorCode,
    RequestContext,
    Services,
    check_value,
    code_for,
    entity_of,
    message_for,
)
from .registry import ApiSpec

Body = dict[str, Any]
MATCH_EXACT = 0
MATCH_DEFAULT = 1
MATCH_ANY = 2


def _entity_body(entity: Entity) -> list[Body]:
    return [{"entity_type": kind, "entity_name": name} for kind, name in entity]


def describe_error(req: Body, code: ErrorCode, message: str | None = None) -> Body:
    return {"throttle_time_ms": 0, "error_code": code, "error_message": message, "entries": None}


class _UnsupportedEntityType(Exception):
    """A filter on an entity type Kafka does not have: UNSUPPORTED_VERSION, as Kafka answers."""


def _components(req: Body) -> list[tuple[str, int, str | None]]:
    out = []
    seen = set()
    for c in req["components"]:
        kind, match_type, match = c["entity_type"], c["match_type"], c["match"]
        if not kind:
            raise InvalidRequestError("empty entity type in the filter")
        if kind not in ENTITY_TYPES:
            raise _UnsupportedEntityType(f"unsupported quota entity type {kind!r}")
        if kind in seen:
            raise InvalidRequestError(f"entity type {kind!r} is filtered twice")
        seen.add(kind)
        if match_type == MATCH_EXACT and match is None:
            raise InvalidRequestError(f"an exact match of {kind} needs a name")
        if match_type in (MATCH_DEFAULT, MATCH_ANY) and match is not None:
            raise InvalidRequestError(f"match type {match_type} of {kind} takes no name")
        if match_type not in (MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY):
            raise InvalidRequestError(f"unknown match type {match_type}")
        out.append((kind, match_type, match))
    if IP in seen and len(seen) > 1:
        raise InvalidRequestError("an ip filter cannot be combined with user or client-id")
    return out


async def describe_client_quotas(ctx: RequestContext, services: Services, req: Body) -> Body:
    """The entities the filter matches, with their values."""
    assert services.quotas is not None
    try:
        components = _components(req)
    except InvalidRequestError as exc:
        return describe_error(req, ErrorCode.INVALID_REQUEST, str(exc))
    except _UnsupportedEntityType as exc:
        return describe_error(req, ErrorCode.UNSUPPORTED_VERSION, str(exc))
    found = services.quotas.quotas.matching(components, bool(req["strict"]))
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "entries": [
            {
                "entity": _entity_body(entity),
                "values": [{"key": k, "value": v} for k, v in sorted(values.items())],
            }
            for entity, values in found
        ],
    }


def _entry_changes(entry: Body) -> tuple[Entity, dict[str, float | None]]:
    entity = entity_of((e["entity_type"], e["entity_name"]) for e in entry["entity"])
    ops: dict[str, float | None] = {}
    for op in entry["ops"]:
        key = op["key"]
        if key in ops:
            raise InvalidRequestError(f"quota key {key!r} altered twice in one entry")
        if op["remove"]:
            keys_check = 1.0  # any valid value: only the key is checked for a removal
            check_value(entity, key, keys_check)
            ops[key] = None
        else:
            check_value(entity, key, float(op["value"]))
            ops[key] = float(op["value"])
    return entity, ops


def _result(entry: Body, code: int, message: str | None = None) -> Body:
    return {
        "error_code": code,
        "error_message": message,
        "entity": [
            {"entity_type": e["entity_type"], "entity_name": e["entity_name"]}
            for e in entry["entity"]
        ],
    }


async def alter_client_quotas(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Check every entry, then write the valid ones in one step (unless ``validate_only``)."""
    assert services.quotas is not None
    results: list[Body] = []
    changes: dict[Entity, dict[str, float | None]] = {}
    for entry in req["entries"]:
        try:
            entity, ops = _entry_changes(entry)
            if entity in changes:
                raise InvalidRequestError("the same entity is altered twice in one request")
        except InvalidRequestError as exc:
            results.append(_result(entry, ErrorCode.INVALID_REQUEST, str(exc)))
            continue
        changes[entity] = ops
        results.append(_result(entry, ErrorCode.NONE))
    if changes and not req["validate_only"]:
        try:
            await services.quotas.quotas.alter(changes)
        except Exception as exc:
            code, message = code_for(exc), message_for(exc)
            for r in results:
                if r["error_code"] == ErrorCode.NONE:
                    r["error_code"], r["error_message"] = code, message
    return {"throttle_time_ms": 0, "entries": results}


def alter_error(req: Body, code: ErrorCode) -> Body:
    return {"throttle_time_ms": 0, "entries": [_result(e, code) for e in req["entries"]]}


APIS = [
    ApiSpec(48, describe_client_quotas, lambda req, code: describe_error(req, code)),
    ApiSpec(49, alter_client_quotas, alter_error),
]
