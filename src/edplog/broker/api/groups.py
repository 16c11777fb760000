"""Consumer-group APIs, delegated to :class:`edplog.group.GroupCoordinator`.

The coordinator owns membership and committed offsets; this module routes requests, adds what
the coordinator needs from the connection (client id, peer host), and answers
COORDINATOR_NOT_AVAILABLE — in each API's own response shape — when there is no coordinator
or the group's partition of the offsets topic is offline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...security import Resource, authorized_operations
from ..context import ErrorCode, RequestContext, Services
from .registry import ApiSpec, top_level_error

#: What the coordinator answers when the operations were not asked for.
_OMITTED = -(2**31)

Body = dict[str, Any]


def _offset_commit_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "topics": [
            {
                "name": t["name"],
                "topic_id": t.get("topic_id"),
                "partitions": [
                    {"partition_index": p["partition_index"], "error_code": code}
                    for p in t["partitions"]
                ],
            }
            for t in req["topics"]
        ],
    }


def _offset_fetch_error(req: Body, code: ErrorCode) -> Body:
    groups = [
        {"group_id": g["group_id"], "topics": [], "error_code": code}
        for g in req.get("groups") or ()
    ]
    return {"throttle_time_ms": 0, "error_code": code, "topics": [], "groups": groups}


def _offset_delete_error(req: Body, code: ErrorCode) -> Body:
    return {"error_code": code, "throttle_time_ms": 0, "topics": []}


def _describe_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "groups": [
            {
                "error_code": code,
                "error_message": None,
                "group_id": g,
                "group_state": "",
                "protocol_type": "",
                "protocol_data": "",
                "members": [],
                "authorized_operations": -(2**31),
            }
            for g in req["groups"]
        ],
    }


def _delete_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "results": [{"group_id": g, "error_code": code} for g in req["groups_names"]],
    }


_JOIN_ERROR = top_level_error(
    {
        "generation_id": -1,
        "protocol_type": None,
        "protocol_name": None,
        "leader": "",
        "skip_assignment": False,
        "member_id": "",
        "members": [],
    }
)
_SYNC_ERROR = top_level_error({"protocol_type": None, "protocol_name": None, "assignment": b""})
_SIMPLE_ERROR = top_level_error({"members": []})


def _group_unavailable(services: Services, group_id: str | None) -> bool:
    groups = services.groups
    if groups is None:
        return True
    return bool(group_id) and groups.unavailable(group_id or "") is not None


def _routed(
    method: str,
    error_body: Callable[[Body, ErrorCode], Body],
    group_of: Callable[[Body], str | None] | None = None,
) -> Any:
    """A handler that delegates to GroupCoordinator.<method>, answering in the API's error
    shape when the group cannot be served here."""

    async def handle(ctx: RequestContext, services: Services, req: Body) -> Body:
        if _group_unavailable(services, group_of(req) if group_of else None):
            return error_body(req, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        body: Body = await getattr(services.groups, method)(req, ctx.api_version)
        return body

    handle.__name__ = method
    handle.__doc__ = f"Delegates to GroupCoordinator.{method}."
    return handle


def with_group_operations(ctx: RequestContext, services: Services, body: Body) -> Body:
    """Fill in each described group's authorized operations from the authorizer (the
    coordinator knows no principals: it only marks the groups asked about)."""
    for group in body.get("groups") or ():
        if group.get("authorized_operations", _OMITTED) != _OMITTED:
            resource = Resource("Group", group["group_id"])
            group["authorized_operations"] = authorized_operations(
                services.authorizer, ctx.principal, ctx.client_host, resource
            )
    return body


async def describe_groups(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Delegates to GroupCoordinator.describe_groups; operations come from the authorizer."""
    if services.groups is None:
        return _describe_error(req, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    body: Body = await services.groups.describe_groups(req, ctx.api_version)
    return with_group_operations(ctx, services, body)


async def join_group(ctx: RequestContext, services: Services, req: Body) -> Body:
    if _group_unavailable(services, req.get("group_id")):
        return _JOIN_ERROR(req, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    assert services.groups is not None
    return await services.groups.join_group(
        req, ctx.api_version, client_id=ctx.client_id, client_host=ctx.client_host
    )


def _group_id(req: Body) -> str | None:
    return req.get("group_id")


APIS = [
    ApiSpec(11, join_group, _JOIN_ERROR),
    ApiSpec(14, _routed("sync_group", _SYNC_ERROR, _group_id), _SYNC_ERROR),
    ApiSpec(12, _routed("heartbeat", _SIMPLE_ERROR, _group_id), _SIMPLE_ERROR),
    ApiSpec(13, _routed("leave_group", _SIMPLE_ERROR, _group_id), _SIMPLE_ERROR),
    ApiSpec(8, _routed("offset_commit", _offset_commit_error, _group_id), _offset_commit_error),
    ApiSpec(47, _routed("offset_delete", _offset_delete_error, _group_id), _offset_delete_error),
    ApiSpec(9, _routed("offset_fetch", _offset_fetch_error, _group_id), _offset_fetch_error),
    ApiSpec(
        16, _routed("list_groups", top_level_error({"groups": []})), top_level_error({"groups": []})
    ),
    ApiSpec(15, describe_groups, _describe_error),
    ApiSpec(42, _routed("delete_groups", _delete_error), _delete_error),
]
