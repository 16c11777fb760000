"""What a request handler gets: the request's context and the broker's services.

Every handler under :mod:`edplog.broker.api` is ``handler(ctx, services, request)``:

- ``ctx`` (:class:`RequestContext`): the request header, the client id, the peer address,
  the listener and connection it came on, and the authenticated principal;
- ``services`` (:class:`Services`): the parts of the broker a handler may use — the replica
  manager (this node's partitions), the store (topics), the group coordinator, the producer id
  manager, the authorizer, the metrics, the client quotas, the SCRAM credentials and the
  fetch-session cache — each a typed object, not the broker itself;
- ``request``: the decoded request body (a dict keyed by Kafka's field names).

This module is the handlers' whole toolkit, so handlers import nothing else from the broker
and the dispatch can import every handler without a circle. :func:`code_for` is the one
mapping from exceptions to Kafka error codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..cluster.node import ClusterNode
from ..errors import EdplogError, ErrorCode, kafka_code_of
from ..group import GroupCoordinator
from ..protocol import RequestHeader
from ..security import ANONYMOUS, Authorizer, Principal
from ..security.audit import Audit
from ..security.authorizer import Operation, Resource
from ..storage import INTERNAL_TOPICS, Store
from .acl_store import AclStore
from .config import BrokerConfig
from .fetch_session import CachedPartition, FetchContext, FetchSessionCache, Key
from .producer_ids import ProducerIdManager
from .quotas import ENTITY_TYPES, IP, CredentialStore, Entity, QuotaManager, check_value, entity_of
from .replica_manager import ReplicaManager

log = logging.getLogger("edplog.broker")

__all__ = [
    "ANONYMOUS",
    "ENTITY_TYPES",
    "IP",
    "Entity",
    "check_value",
    "entity_of",
    "INTERNAL_TOPICS",
    "CachedPartition",
    "FetchContext",
    "FetchSessionCache",
    "Key",
    "ErrorCode",
    "Handler",
    "InlineHandler",
    "AclStore",
    "Operation",
    "Principal",
    "RequestContext",
    "Resource",
    "authorized",
    "Services",
    "code_for",
    "message_for",
]

Body = dict[str, Any]


@dataclass(slots=True)
class RequestContext:
    """One request: where it came from and who sent it."""

    header: RequestHeader
    peer: tuple[str, int] | None = None
    listener: str = "PLAINTEXT"
    connection_id: str = ""
    principal: Principal = ANONYMOUS
    received_ns: int = field(default_factory=time.perf_counter_ns)
    # Set by the dispatch when a quota throttles the request: the connection then stops
    # reading for this long after sending the response (KIP-219).
    throttle_ms: int = 0
    # The handler's own time when it handed a wait to a task (request_percentage counts it).
    handled_ns: int = 0
    # The connection's SASL exchange (security.sasl.SaslSession) on a SASL listener.
    sasl: Any = None

    @property
    def api_key(self) -> int:
        return self.header.api_key

    @property
    def api_version(self) -> int:
        return self.header.api_version

    @property
    def client_id(self) -> str:
        return self.header.client_id or ""

    @property
    def client_host(self) -> str:
        return self.peer[0] if self.peer else ""


@dataclass
class Services:
    """The broker's parts a handler may use (see the module docstring)."""

    config: BrokerConfig
    store: Store
    replicas: ReplicaManager
    groups: GroupCoordinator | None
    producer_ids: ProducerIdManager
    authorizer: Authorizer
    metrics: Any
    # Completes when shutdown starts, so long polls return at once.
    shutdown: Callable[[], Awaitable[None]] | None = None
    # Client quotas (configuration and enforcement) and SCRAM credentials.
    quotas: QuotaManager | None = None
    credentials: CredentialStore | None = None
    # The ACLs (None: no authorizer.class.name, everything is allowed).
    acls: AclStore | None = None
    # KIP-227 sessions; made on the first Fetch from ``config`` if the broker gave none.
    fetch_sessions: FetchSessionCache | None = None
    # This broker's membership of a cluster (None: a single node).
    cluster: ClusterNode | None = None
    # The audit log (None: no audit.log.file).
    audit: Audit | None = None

    @property
    def closing(self) -> bool:
        return self.replicas.closing


def authorized(
    ctx: RequestContext, services: Services, operation: Operation, resource_type: str, name: str
) -> bool:
    """Whether the request's principal may do ``operation`` on the resource (always, without
    ``authorizer.class.name``); decisions are cached by the authorizer, and audited when
    the audit log asks for them."""
    acls = services.acls
    if acls is None:
        return True
    allowed = acls.authorizer.authorize(
        ctx.principal, ctx.client_host, operation, Resource(resource_type, name)
    )
    if services.audit is not None:
        services.audit.authorization(ctx, operation, resource_type, name, allowed)
    return allowed


Handler = Callable[[RequestContext, Services, Body], Awaitable[Body | None]]
# A handler run inside the dispatch: the response body (None: no response), or a coroutine
# for the part that has to wait, which becomes the request's task.
InlineHandler = Callable[
    [RequestContext, Services, Body], "Body | None | Coroutine[Any, Any, Body | None]"
]


def code_for(exc: BaseException) -> ErrorCode:
    """The Kafka error code to answer for ``exc`` (logging it when it is unexpected).

    An exception edplog did not raise on purpose is a bug: it is logged with its traceback
    and reported as UNKNOWN_SERVER_ERROR, so one bad request never takes the broker down.
    """
    if isinstance(exc, EdplogError):
        return kafka_code_of(exc)
    if isinstance(exc, OSError):
        # The disk failed a write (ENOSPC, EIO): a storage error, reported from the first one.
        log.error("storage error while serving a request: %s", exc)
        return ErrorCode.KAFKA_STORAGE_ERROR
    if isinstance(exc, ValueError | TypeError):
        log.info("invalid request field: %s", exc)
        return ErrorCode.INVALID_REQUEST
    log.error("unexpected error while serving a request", exc_info=exc)
    return ErrorCode.UNKNOWN_SERVER_ERROR


def message_for(exc: BaseException) -> str:
    """A short message for the response's error_message field."""
    return str(exc) or type(exc).__name__
