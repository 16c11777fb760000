"""What each API needs the ACLs to allow, judged by the dispatch before the handler runs.

With ``authorizer.class.name`` set, :func:`refusal` names the error a request gets when its
principal lacks what Kafka requires of it; the whole request is then answered with that error
(the API's ``error_body``). It covers the APIs that act on one resource or on the cluster, and
the resource lists checked as a whole (a request naming one group or topic it may not touch
is refused entire). Produce, Fetch and Metadata are judged per topic by their handlers, so
that a request mixing allowed and refused topics is served for the allowed ones; ApiVersions
needs nothing.

Kafka's requirements, in brief: group APIs need Read on the group (Describe to describe it,
Delete to delete it); FindCoordinator Describe on the group or transactional id; replica
fetches and OffsetForLeaderEpoch from a replica ClusterAction on the cluster; ListOffsets and
OffsetForLeaderEpoch Describe on each topic; topic administration Create (on the cluster or
the topic), Delete or Alter on each topic; configs DescribeConfigs / AlterConfigs on each
resource (a broker is the cluster); cluster administration Describe or Alter on the cluster;
an idempotent InitProducerId IdempotentWrite on the cluster, or Write on some topic (KIP-679).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..security.acl import AclAuthorizer
from ..security.authorizer import Operation, Resource
from .context import ErrorCode, RequestContext

Body = dict[str, Any]
Need = tuple[Operation, str, str]  # (operation, resource type, resource name)

CLUSTER = "kafka-cluster"
# A topic named by id: the name is looked up before the decision (an unknown id is left to
# the handler, which answers UNKNOWN_TOPIC_ID).
_BY_ID = "\x00id:"
_REFUSED: dict[str, ErrorCode] = {
    "Topic": ErrorCode.TOPIC_AUTHORIZATION_FAILED,
    "Group": ErrorCode.GROUP_AUTHORIZATION_FAILED,
    "Cluster": ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
    "TransactionalId": ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}
# DescribeConfigs / AlterConfigs resource types: 2 topic, 4 broker, 8 broker logger.
_CONFIG_RESOURCES = {2: "Topic", 4: "Cluster", 8: "Cluster"}


def _cluster(op: Operation) -> Callable[[RequestContext, Body], Iterator[Need]]:
    def needs(ctx: RequestContext, req: Body) -> Iterator[Need]:
        yield op, "Cluster", CLUSTER

    return needs


def _group(op: Operation) -> Callable[[RequestContext, Body], Iterator[Need]]:
    def needs(ctx: RequestContext, req: Body) -> Iterator[Need]:
        yield op, "Group", req["group_id"]

    return needs


def _topics(
    op: Operation, key: str = "topics", field: str = "name"
) -> Callable[[RequestContext, Body], Iterator[Need]]:
    def needs(ctx: RequestContext, req: Body) -> Iterator[Need]:
        for t in req.get(key) or ():
            if t.get(field):
                yield op, "Topic", t[field]

    return needs


def _offset_commit(ctx: RequestContext, req: Body) -> Iterator[Need]:
    yield Operation.READ, "Group", req["group_id"]
    for t in req.get("topics") or ():
        if t.get("name"):
            yield Operation.READ, "Topic", t["name"]


def _offset_fetch(ctx: RequestContext, req: Body) -> Iterator[Need]:
    groups = req.get("groups")
    if groups is None:
        groups = [{"group_id": req.get("group_id"), "topics": req.get("topics")}]
    for g in groups:
        yield Operation.DESCRIBE, "Group", g["group_id"]
        for t in g.get("topics") or ():
            if t.get("name"):
                yield Operation.DESCRIBE, "Topic", t["name"]


def _find_coordinator(ctx: RequestContext, req: Body) -> Iterator[Need]:
    kind = "TransactionalId" if req.get("key_type", 0) == 1 else "Group"
    for key in req.get("coordinator_keys") or [req.get("key")]:
        if key:
            yield Operation.DESCRIBE, kind, key


def _groups_listed(op: Operation, key: str) -> Callable[[RequestContext, Body], Iterator[Need]]:
    def needs(ctx: RequestContext, req: Body) -> Iterator[Need]:
        for g in req.get(key) or ():
            yield op, "Group", g

    return needs


def _replica_or(
    consumer: Callable[[RequestContext, Body], Iterator[Need]],
) -> Callable[[RequestContext, Body], Iterator[Need]]:
    def needs(ctx: RequestContext, req: Body) -> Iterator[Need]:
        if (
            req.get("replica_id", -1) >= 0
            or (req.get("replica_state") or {}).get("replica_id", -1) >= 0
        ):
            yield Operation.CLUSTER_ACTION, "Cluster", CLUSTER
        else:
            yield from consumer(ctx, req)

    return needs


def _delete_topics(ctx: RequestContext, req: Body) -> Iterator[Need]:
    for name in req.get("topic_names") or ():
        yield Operation.DELETE, "Topic", name
    for t in req.get("topics") or ():
        if t.get("name"):
            yield Operation.DELETE, "Topic", t["name"]
        elif t.get("topic_id") is not None:
            yield Operation.DELETE, "Topic", _BY_ID + str(t["topic_id"])


def _offset_delete(ctx: RequestContext, req: Body) -> Iterator[Need]:
    yield Operation.DELETE, "Group", req["group_id"]
    for t in req.get("topics") or ():
        yield Operation.READ, "Topic", t["name"]


def _nothing(ctx: RequestContext, req: Body) -> Iterator[Need]:
    return iter(())


def _configs(op: Operation) -> Callable[[RequestContext, Body], Iterator[Need]]:
    def needs(ctx: RequestContext, req: Body) -> Iterator[Need]:
        for r in req["resources"]:
            kind = _CONFIG_RESOURCES.get(r["resource_type"], "Cluster")
            yield op, kind, r["resource_name"] if kind == "Topic" else CLUSTER

    return needs


#: What each API needs, as (operation, resource type, name) triples from its request.
NEEDS: dict[int, Callable[[RequestContext, Body], Iterator[Need]]] = {
    1: _replica_or(_nothing),  # consumers: Read per topic, in the handler
    2: _topics(Operation.DESCRIBE),
    8: _offset_commit,
    9: _offset_fetch,
    10: _find_coordinator,
    11: _group(Operation.READ),
    12: _group(Operation.READ),
    13: _group(Operation.READ),
    14: _group(Operation.READ),
    15: _groups_listed(Operation.DESCRIBE, "groups"),
    16: _cluster(Operation.DESCRIBE),
    20: _delete_topics,
    21: _topics(Operation.DELETE),
    23: _replica_or(_topics(Operation.DESCRIBE, "topics", "topic")),
    29: _cluster(Operation.DESCRIBE),
    30: _cluster(Operation.ALTER),
    31: _cluster(Operation.ALTER),
    32: _configs(Operation.DESCRIBE_CONFIGS),
    33: _configs(Operation.ALTER_CONFIGS),
    34: _cluster(Operation.ALTER),
    35: _cluster(Operation.DESCRIBE),
    37: _topics(Operation.ALTER),
    42: _groups_listed(Operation.DELETE, "groups_names"),
    43: _cluster(Operation.ALTER),
    44: _configs(Operation.ALTER_CONFIGS),
    45: _cluster(Operation.ALTER),
    46: _cluster(Operation.DESCRIBE),
    47: _offset_delete,
    48: _cluster(Operation.DESCRIBE_CONFIGS),
    49: _cluster(Operation.ALTER_CONFIGS),
    50: _cluster(Operation.DESCRIBE),
    51: _cluster(Operation.ALTER),
    60: _cluster(Operation.DESCRIBE),
    68: _group(Operation.READ),
    69: _groups_listed(Operation.DESCRIBE, "group_ids"),
}


def refusal(
    authorizer: AclAuthorizer,
    topic_name: Callable[[uuid.UUID], str | None],
    ctx: RequestContext,
    api_key: int,
    req: Body,
) -> ErrorCode | None:
    """The authorization error for this request, or None when it may go on (``topic_name``
    finds the name of a topic named by id)."""
    principal, host = ctx.principal, ctx.client_host
    if api_key == 19:  # CreateTopics: Create on the cluster, or on every topic named
        if authorizer.authorize(principal, host, Operation.CREATE, Resource("Cluster", CLUSTER)):
            return None
        for t in req["topics"]:
            if not authorizer.authorize(
                principal, host, Operation.CREATE, Resource("Topic", t["name"])
            ):
                return ErrorCode.TOPIC_AUTHORIZATION_FAILED
        return None
    if api_key == 22:  # InitProducerId
        if req.get("transactional_id") is not None:
            return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED  # no transactions yet
        if authorizer.authorize(
            principal, host, Operation.IDEMPOTENT_WRITE, Resource("Cluster", CLUSTER)
        ) or authorizer.authorize_any(principal, host, Operation.WRITE, "Topic"):
            return None
        return ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    needs = NEEDS.get(api_key)
    if needs is None:
        return None
    for op, kind, name in needs(ctx, req):
        if name.startswith(_BY_ID):
            found = topic_name(uuid.UUID(name[len(_BY_ID) :]))
            if found is None:
                continue
            name = found
        if not authorizer.authorize(principal, host, op, Resource(kind, name)):
            return _REFUSED[kind]
    return None
