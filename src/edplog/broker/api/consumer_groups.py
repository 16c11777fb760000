"""The consumer group protocol (KIP-848): ConsumerGroupHeartbeat and ConsumerGroupDescribe,
delegated to :class:`edplog.group.GroupCoordinator` like the classic group APIs."""

from __future__ import annotations

from typing import Any

from ..context import ErrorCode, RequestContext, Services
from .groups import with_group_operations
from .registry import ApiSpec

Body = dict[str, Any]


def _heartbeat_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "error_code": code,
        "error_message": None,
        "member_id": None,
        "member_epoch": 0,
        "heartbeat_interval_ms": 0,
        "assignment": None,
    }


def _describe_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "groups": [
            {
                "error_code": code,
                "error_message": None,
                "group_id": g,
                "group_state": "",
                "group_epoch": 0,
                "assignment_epoch": 0,
                "assignor_name": "",
                "members": [],
                "authorized_operations": -(2**31),
            }
            for g in req["group_ids"]
        ],
    }


def _unavailable(services: Services, group_id: str) -> bool:
    groups = services.groups
    return groups is None or (bool(group_id) and groups.unavailable(group_id) is not None)


async def consumer_group_heartbeat(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Join, heartbeat, reconcile or leave (member_epoch 0, >0, or -1/-2)."""
    if _unavailable(services, req.get("group_id") or ""):
        return _heartbeat_error(req, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    assert services.groups is not None
    return await services.groups.consumer_group_heartbeat(
        req, ctx.api_version, client_id=ctx.client_id, client_host=ctx.client_host
    )


async def consumer_group_describe(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Epochs, assignor, members with their current and target assignments."""
    if services.groups is None:
        return _describe_error(req, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    body: Body = await services.groups.consumer_group_describe(req, ctx.api_version)
    return with_group_operations(ctx, services, body)


APIS = [
    ApiSpec(68, consumer_group_heartbeat, _heartbeat_error),
    ApiSpec(69, consumer_group_describe, _describe_error),
]
