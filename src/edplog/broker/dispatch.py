"""The one dispatch point: a request frame in, a pending response out.

For every request the dispatch decodes the header, gates the version (ApiVersions answers a
version it does not speak in v0 with its own range, KIP-511; advertised-but-rejected versions
get UNSUPPORTED_VERSION in the API's own response), decodes the body, asks the authorizer,
runs the handler (inline APIs — Produce, Fetch — inside the dispatch when they need not wait),
times it for the metrics, measures it against the client quotas (:mod:`.quotas`: the one
place quotas are applied, so no handler knows of them), and turns any exception into the
API's error response with :func:`~.context.code_for`. A frame that cannot be parsed ends the
connection, as in Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..protocol import (
    REJECTED,
    SUPPORTED,
    ProtocolError,
    RequestHeader,
    decode_request,
    read_request_header,
)
from . import authz
from .api import ALL_APIS, ApiSpec
from .context import ErrorCode, RequestContext, Services, code_for
from .quotas import (
    EXEMPT_APIS,
    FETCH,
    FETCH_API,
    PRODUCE,
    PRODUCE_API,
    REQUEST,
    QuotaManager,
    fetch_bytes,
    produce_bytes,
)

log = logging.getLogger("edplog.broker")

API_VERSIONS = 18
Body = dict[str, Any]


#: A response body meaning "end this connection without answering".
CLOSE: Any = object()


@dataclass(slots=True)
class Pending:
    """A request being answered: its body now, or a task that will produce it.

    ``task is None and body is None`` means no response at all (acks=0 Produce).
    ``version`` is the version to encode the response with (the ApiVersions fallback: 0);
    ``parts`` the encoded response once the connection has begun to send it;
    ``context`` the request's context (its ``throttle_ms`` is final once the body is).
    """

    header: RequestHeader
    task: asyncio.Future[Body | None] | None
    body: Body | None = None
    version: int = -1
    parts: list[Any] | None = None
    context: RequestContext | None = None


def version_supported(api_key: int, version: int) -> bool:
    """Whether a request of this version is served (advertised and not rejected)."""
    rng = SUPPORTED.get(api_key)
    if rng is None or not rng[0] <= version <= rng[1]:
        return False
    return version not in REJECTED.get(api_key, ())


class Dispatcher:
    """Routes frames to the handlers of ``apis`` (see the module docstring)."""

    def __init__(self, services: Services, apis: dict[int, ApiSpec] | None = None) -> None:
        self.services = services
        self.apis = apis if apis is not None else ALL_APIS

    def dispatch(
        self,
        frame: memoryview,
        context: Callable[[RequestHeader], RequestContext],
        allowed: frozenset[int] | None = None,
    ) -> Pending | None:
        """Parse one request and start answering it; None means: close the connection.

        ``context(header)`` makes the request's context (the connection knows the peer and
        the principal); ``allowed``, when given, is the only APIs the connection may send now
        (a SASL listener before authentication): any other closes it."""
        received = time.perf_counter_ns()
        try:
            header = read_request_header(frame)
        except (ProtocolError, ValueError, IndexError) as exc:
            log.info("unreadable request header (%s)", exc)
            return None
        key, version = header.api_key, header.api_version
        if allowed is not None and key not in allowed:
            log.info("closing: api %d before (re-)authentication", key)
            return None
        if key == API_VERSIONS and not version_supported(key, version):
            lo, hi = SUPPORTED[API_VERSIONS]
            body = {
                "error_code": ErrorCode.UNSUPPORTED_VERSION,
                "api_keys": [{"api_key": API_VERSIONS, "min_version": lo, "max_version": hi}],
                "throttle_time_ms": 0,
            }
            return Pending(header, None, body, 0)
        spec = self.apis.get(key)
        if spec is None or header.body_offset < 0:
            log.info("closing: api %d v%d is not served", key, version)
            return None
        if not version_supported(key, version):
            return self._rejected(spec, header, frame)
        try:
            req = decode_request(key, version, frame, header.body_offset)
        except (ProtocolError, ValueError, IndexError, UnicodeDecodeError) as exc:
            log.info("closing: malformed api %d v%d body (%s)", key, version, exc)
            return None
        ctx = context(header)
        ctx.received_ns = received
        services = self.services
        if not services.authorizer.authorize_request(ctx.principal, ctx.client_host, key):
            return self._answer(
                ctx, spec, spec.error_body(req, ErrorCode.CLUSTER_AUTHORIZATION_FAILED), req
            )
        acls = services.acls
        if acls is not None:
            topic_name, audit = services.store.topic_name, services.audit
            refused = authz.refusal(acls.authorizer, topic_name, ctx, key, req, audit)
            if refused is not None:
                return self._answer(ctx, spec, spec.error_body(req, refused), req)
            split = authz.per_item(acls.authorizer, topic_name, ctx, key, req, spec, audit)
            if split is not None:  # some items refused: the handler serves the others
                req, spec = split
        quotas = services.quotas
        if quotas is not None and quotas.active and key == FETCH_API:
            _bound_fetch(quotas, ctx, req)
        if not spec.inline:
            task = asyncio.ensure_future(self._run(ctx, spec, req))
            return Pending(header, task, None, version, context=ctx)
        try:
            result = spec.handler(ctx, services, req)
        except Exception as exc:
            return self._answer(ctx, spec, self._failed(ctx, spec, req, exc), req)
        if isinstance(result, Coroutine):
            # What follows is waiting (a long poll, a flush), not handling: request time
            # quotas count the handler's time up to here, as Kafka's leave purgatory out.
            ctx.handled_ns = time.perf_counter_ns() - ctx.received_ns
            task = asyncio.ensure_future(self._wait(ctx, spec, req, result))
            return Pending(header, task, None, version, context=ctx)
        return self._answer(ctx, spec, result, req)

    def _answer(
        self, ctx: RequestContext, spec: ApiSpec, body: Body | None, req: Body | None = None
    ) -> Pending:
        self._timed(ctx)
        quotas = self.services.quotas
        if quotas is not None and quotas.active and req is not None:
            _throttle(quotas, ctx, req, body)
        return Pending(ctx.header, None, body, ctx.api_version, context=ctx)

    def _timed(self, ctx: RequestContext) -> None:
        seconds = (time.perf_counter_ns() - ctx.received_ns) / 1e9
        self.services.metrics.request(ctx.api_key, ctx.api_version, seconds)

    def _failed(self, ctx: RequestContext, spec: ApiSpec, req: Body, exc: BaseException) -> Body:
        code = code_for(exc)
        if code == ErrorCode.UNKNOWN_SERVER_ERROR:
            log.error("handler for api %d v%d failed", ctx.api_key, ctx.api_version, exc_info=exc)
        self.services.metrics.request_error(ctx.api_key, code)
        return spec.error_body(req, code)

    async def _run(self, ctx: RequestContext, spec: ApiSpec, req: Body) -> Body | None:
        try:
            body: Body | None = await spec.handler(ctx, self.services, req)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            body = self._failed(ctx, spec, req, exc)
        self._timed(ctx)
        quotas = self.services.quotas
        if quotas is not None and quotas.active:
            _throttle(quotas, ctx, req, body)
        return body

    async def _wait(
        self, ctx: RequestContext, spec: ApiSpec, req: Body, coro: Coroutine[Any, Any, Any]
    ) -> Body | None:
        try:
            body: Body | None = await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            body = self._failed(ctx, spec, req, exc)
        self._timed(ctx)
        quotas = self.services.quotas
        if quotas is not None and quotas.active:
            _throttle(quotas, ctx, req, body)
        return body

    def _rejected(self, spec: ApiSpec, header: RequestHeader, frame: memoryview) -> Pending | None:
        """UNSUPPORTED_VERSION for a version we advertise but reject (Produce v0-2 ...).

        Versions nobody advertised close the connection as Kafka does: there is no response
        schema to answer them in.
        """
        key, version = header.api_key, header.api_version
        rng = SUPPORTED.get(key)
        if rng is None or not rng[0] <= version <= rng[1]:
            log.info("closing: api %d v%d not supported", key, version)
            return None
        try:
            req = decode_request(key, version, frame, header.body_offset)
            body = spec.error_body(req, ErrorCode.UNSUPPORTED_VERSION)
        except Exception as exc:  # no way to build an answer: end the connection
            log.info("closing: api %d v%d rejected (%s)", key, version, exc)
            return None
        return Pending(header, None, body, version)


def _bound_fetch(quotas: QuotaManager, ctx: RequestContext, req: Body) -> None:
    """Ask for no more than the consumer quota allows in its window (as Kafka bounds a
    fetch), so one response can never be larger than what the quota ever lets through."""
    _, _, quota = quotas.quota_for(FETCH, ctx.principal.name, ctx.client_id)
    limit = quotas.max_value_in_window(quota)
    if limit is not None and req.get("max_bytes", limit) > limit:
        req["max_bytes"] = limit


def _throttle(quotas: QuotaManager, ctx: RequestContext, req: Body, body: Any) -> None:
    """Record the request against the quotas of its client; when over one, put the
    throttle time in the response and on the context (the connection mutes for it)."""
    key = ctx.api_key
    if key in EXEMPT_APIS or (body is not None and not isinstance(body, dict)):
        return
    user, client_id = ctx.principal.name, ctx.client_id
    ms = 0
    if key == PRODUCE_API:
        ms = quotas.record(PRODUCE, user, client_id, produce_bytes(req, body))
    elif key == FETCH_API and body is not None:
        ms = quotas.record(FETCH, user, client_id, fetch_bytes(body))
    elapsed_ns = ctx.handled_ns or time.perf_counter_ns() - ctx.received_ns
    ms = max(ms, quotas.record(REQUEST, user, client_id, elapsed_ns * 100 / 1e9))
    if ms:
        ctx.throttle_ms = max(ctx.throttle_ms, ms)
        if body is not None and "throttle_time_ms" in body:
            body["throttle_time_ms"] = max(body["throttle_time_ms"] or 0, ms)
