"""How an API family declares its handlers to the dispatch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..context import ErrorCode

Body = dict[str, Any]


@dataclass(frozen=True)
class ApiSpec:
    """One API: its key, its handler, and the response that reports a failure.

    ``handler(ctx, services, request)`` is a coroutine function, or with ``inline`` a plain
    function that answers inside the dispatch: it returns the body (None: no response) or a
    coroutine for the part that must wait. ``error_body(request, code)`` builds the response
    that gives ``code`` for everything the request asked about.
    """

    key: int
    handler: Callable[..., Any]
    error_body: Callable[[Body, ErrorCode], Body]
    inline: bool = False


def top_level_error(extra: Body | None = None) -> Callable[[Body, ErrorCode], Body]:
    """An error_body for APIs whose response has one ``error_code`` field."""

    def build(request: Body, code: ErrorCode) -> Body:
        return {"throttle_time_ms": 0, "error_code": code, **(extra or {})}

    return build
