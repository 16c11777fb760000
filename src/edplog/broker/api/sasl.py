"""SaslHandshake (v1) and SaslAuthenticate: a SASL listener's login (KIP-152).

Both answer inside the dispatch, so the connection knows the outcome before it reads the
client's next request: a success makes the connection READY with the session's principal,
a failure (SASL_AUTHENTICATION_FAILED, 58, with a message) closes it once the answer is
written. On a listener without SASL both answer ILLEGAL_SASL_STATE, as Kafka does. Handshake
v0 (the SASL tokens then travel without Kafka framing) is not served: UNSUPPORTED_VERSION.

A handshake on an authenticated connection starts a re-authentication (KIP-368); a
successful SaslAuthenticate (v1+) gives the session lifetime (``connections.max.reauth.ms``,
0 when unset). The answer to a failure waits as the listener's failed-login account says
(security/sasl.py ``FailedLogins``), without holding the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from ...security.sasl import SaslError, SaslSession
from ..context import ErrorCode, RequestContext, Services
from .registry import ApiSpec

Body = dict[str, Any]


def _session(ctx: RequestContext) -> SaslSession | None:
    session = ctx.sasl
    return session if isinstance(session, SaslSession) else None


def handshake_error(req: Body, code: ErrorCode) -> Body:
    return {"error_code": code, "mechanisms": []}


def sasl_handshake(ctx: RequestContext, services: Services, req: Body) -> Body:
    session = _session(ctx)
    if session is None:
        return handshake_error(req, ErrorCode.ILLEGAL_SASL_STATE)
    offered = list(session.settings.mechanisms)
    if ctx.api_version < 1:
        return {"error_code": ErrorCode.UNSUPPORTED_VERSION, "mechanisms": offered}
    if session.principal is not None:
        try:
            session.reauthenticate(req["mechanism"])
        except SaslError:
            return {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": offered}
        return {"error_code": ErrorCode.NONE, "mechanisms": offered}
    if session.mechanism is not None:
        return {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": offered}
    if not session.handshake(req["mechanism"]):
        return {"error_code": ErrorCode.UNSUPPORTED_SASL_MECHANISM, "mechanisms": offered}
    return {"error_code": ErrorCode.NONE, "mechanisms": offered}


def authenticate_error(req: Body, code: ErrorCode) -> Body:
    return {"error_code": code, "error_message": None, "auth_bytes": b"", "session_lifetime_ms": 0}


def sasl_authenticate(
    ctx: RequestContext, services: Services, req: Body
) -> Body | Coroutine[Any, Any, Body]:
    session = _session(ctx)
    if session is None:
        return authenticate_error(req, ErrorCode.ILLEGAL_SASL_STATE)
    try:
        answer = session.step(bytes(req["auth_bytes"]))
    except SaslError as exc:
        body = authenticate_error(req, ErrorCode.SASL_AUTHENTICATION_FAILED)
        body["error_message"] = str(exc)
        failures = session.settings.failures
        delay = failures.failed(ctx.client_host) if failures is not None else 0.0
        return _after(delay, body) if delay > 0 else body
    return {
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "auth_bytes": answer,
        "session_lifetime_ms": session.lifetime_ms() if session.principal is not None else 0,
    }


async def _after(seconds: float, body: Body) -> Body:
    await asyncio.sleep(seconds)
    return body


APIS = [
    ApiSpec(17, sasl_handshake, handshake_error, inline=True),
    ApiSpec(36, sasl_authenticate, authenticate_error, inline=True),
]
