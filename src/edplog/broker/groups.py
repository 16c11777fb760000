"""Consumer-group APIs, delegated to :class:`edplog.group.GroupCoordinator`.

The coordinator owns membership and committed offsets; this module only routes requests and
adds what it needs from the connection (client id, peer host) for DescribeGroups.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from ..protocol import RequestHeader

if TYPE_CHECKING:
    from .server import Broker

#: The peer host of the connection a request came from (set by the connection's reader).
PEER_HOST: contextvars.ContextVar[str] = contextvars.ContextVar("edplog_peer_host", default="")


def _unavailable(name: str) -> Exception:
    return RuntimeError(f"{name}: the group coordinator is not running")


async def handle_join_group(broker: Broker, header: RequestHeader, req: dict[str, Any]) -> Any:
    if broker.coordinator is None:
        raise _unavailable("JoinGroup")
    return await broker.coordinator.join_group(
        req, header.api_version, client_id=header.client_id or "", client_host=PEER_HOST.get()
    )


def _delegate(method: str) -> Any:
    async def handle(broker: Broker, header: RequestHeader, req: dict[str, Any]) -> Any:
        if broker.coordinator is None:
            raise _unavailable(method)
        return await getattr(broker.coordinator, method)(req, header.api_version)

    handle.__name__ = f"handle_{method}"
    handle.__doc__ = f"Delegates to GroupCoordinator.{method}."
    return handle


HANDLERS = {
    11: handle_join_group,
    14: _delegate("sync_group"),
    12: _delegate("heartbeat"),
    13: _delegate("leave_group"),
    8: _delegate("offset_commit"),
    9: _delegate("offset_fetch"),
    16: _delegate("list_groups"),
    15: _delegate("describe_groups"),
    42: _delegate("delete_groups"),
}
