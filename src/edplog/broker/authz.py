"""What each API needs the ACLs (and role bindings) to allow, judged by the dispatch.

With ``authorizer.class.name`` set, :func:`refusal` names the error a whole request gets when
its principal lacks what Kafka requires of the request as a whole (the API's ``error_body``):
the APIs that act on one resource or on the cluster, and the group of a group-scoped request.
Requests naming several resources are answered per item, as Kafka answers them
(:func:`per_item`): an item the principal may not touch gets its own error code
(TOPIC_AUTHORIZATION_FAILED 29, GROUP_AUTHORIZATION_FAILED 30, CLUSTER_AUTHORIZATION_FAILED 31)
and the handler serves the others. Produce, Fetch and Metadata are judged per topic by their
handlers; ApiVersions needs nothing.

Kafka's requirements, in brief: group APIs need Read on the group (Describe to describe it,
Delete to delete it); FindCoordinator Describe on the group or transactional id; replica
fetches and OffsetForLeaderEpoch from a replica ClusterAction on the cluster; ListOffsets and
OffsetForLeaderEpoch Describe on each topic; OffsetCommit Read on each topic, OffsetFetch
Describe on each topic (with "all topics", the topics it may not Describe are left out);
OffsetDelete Delete on the group and Read on each topic; topic administration Create (on the
cluster or the topic), Delete or Alter on each topic; configs DescribeConfigs / AlterConfigs on
each resource (a broker is the cluster); ListGroups lists the groups the principal may
Describe (all of them with Describe on the cluster); cluster administration (ElectLeaders,
partition reassignments ...) Describe or Alter on the cluster; an idempotent InitProducerId
IdempotentWrite on the cluster, or Write on some topic (KIP-679).

With an audit log (``audit.log.file``), every decision made here is handed to it, and it keeps
those it audits (security/audit.py).
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..security.acl import AclAuthorizer
from ..security.audit import Audit
from ..security.authorizer import Operation, Resource
from .api.registry import ApiSpec
from .context import ErrorCode, RequestContext

Body = dict[str, Any]
Need = tuple[Operation, str, str]  # (operation, resource type, resource name)
TopicName = Callable[[uuid.UUID], "str | None"]

CLUSTER = "kafka-cluster"
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


def _find_coordinator(ctx: RequestContext, req: Body) -> Iterator[Need]:
    kind = "TransactionalId" if req.get("key_type", 0) == 1 else "Group"
    for key in req.get("coordinator_keys") or [req.get("key")]:
        if key:
            yield Operation.DESCRIBE, kind, key


def _from_replica(req: Body) -> bool:
    return bool(
        req.get("replica_id", -1) >= 0
        or (req.get("replica_state") or {}).get("replica_id", -1) >= 0
    )


def _replica(ctx: RequestContext, req: Body) -> Iterator[Need]:
    if _from_replica(req):  # a consumer's Fetch is judged per topic by its handler
        yield Operation.CLUSTER_ACTION, "Cluster", CLUSTER


def _offset_fetch_group(ctx: RequestContext, req: Body) -> Iterator[Need]:
    if req.get("groups") is None:  # v0-7: one group; v8+ groups are answered per group
        yield Operation.DESCRIBE, "Group", req["group_id"]


#: What each API needs of the request as a whole, as (operation, resource type, name).
NEEDS: dict[int, Callable[[RequestContext, Body], Iterator[Need]]] = {
    1: _replica,
    8: _group(Operation.READ),
    9: _offset_fetch_group,
    10: _find_coordinator,
    11: _group(Operation.READ),
    12: _group(Operation.READ),
    13: _group(Operation.READ),
    14: _group(Operation.READ),
    23: _replica,
    29: _cluster(Operation.DESCRIBE),
    30: _cluster(Operation.ALTER),
    31: _cluster(Operation.ALTER),
    34: _cluster(Operation.ALTER),
    35: _cluster(Operation.DESCRIBE),
    43: _cluster(Operation.ALTER),
    45: _cluster(Operation.ALTER),
    46: _cluster(Operation.DESCRIBE),
    47: _group(Operation.DELETE),
    48: _cluster(Operation.DESCRIBE_CONFIGS),
    49: _cluster(Operation.ALTER_CONFIGS),
    50: _cluster(Operation.DESCRIBE),
    51: _cluster(Operation.ALTER),
    60: _cluster(Operation.DESCRIBE),
    68: _group(Operation.READ),
}


def refusal(
    authorizer: AclAuthorizer,
    topic_name: TopicName,
    ctx: RequestContext,
    api_key: int,
    req: Body,
    audit: Audit | None = None,
) -> ErrorCode | None:
    """The authorization error for this whole request, or None when it may go on (its
    items may still be refused one by one: :func:`per_item`). Decisions go to ``audit``."""
    principal, host = ctx.principal, ctx.client_host
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
        allowed = authorizer.authorize(principal, host, op, Resource(kind, name))
        if audit is not None:
            audit.authorization(ctx, op, kind, name, allowed)
        if not allowed:
            return _REFUSED[kind]
    return None


# ---- per-item answers ------------------------------------------------------------------


@dataclass(frozen=True)
class _Items:
    """A multi-resource API answered per item: the request's list, the response's list,
    and what one item needs (its error is the one of the first need refused)."""

    request_key: str
    response_key: str
    needs: Callable[[Any], Iterable[Need]]
    # How a refused item is answered when the API's error_body does not list items.
    entry: Callable[[Any, ErrorCode], Body] | None = None


def _offset_delete_entry(topic: Any, code: ErrorCode) -> Body:
    partitions = [
        {"partition_index": p["partition_index"], "error_code": code} for p in topic["partitions"]
    ]
    return {"name": topic["name"], "partitions": partitions}


def _topic(op: Operation, field: str = "name") -> Callable[[Any], Iterable[Need]]:
    def needs(item: Any) -> Iterable[Need]:
        return ((op, "Topic", item[field]),) if item.get(field) else ()

    return needs


def _named_group(op: Operation) -> Callable[[Any], Iterable[Need]]:
    return lambda group: ((op, "Group", group),)


def _config(op: Operation) -> Callable[[Any], Iterable[Need]]:
    def needs(item: Any) -> Iterable[Need]:
        kind = _CONFIG_RESOURCES.get(item["resource_type"], "Cluster")
        return ((op, kind, item["resource_name"] if kind == "Topic" else CLUSTER),)

    return needs


_PER_ITEM: dict[int, _Items] = {
    2: _Items("topics", "topics", _topic(Operation.DESCRIBE)),
    8: _Items("topics", "topics", _topic(Operation.READ)),
    15: _Items("groups", "groups", _named_group(Operation.DESCRIBE)),
    19: _Items("topics", "topics", _topic(Operation.CREATE)),
    20: _Items("topics", "responses", _topic(Operation.DELETE)),
    21: _Items("topics", "topics", _topic(Operation.DELETE)),
    23: _Items("topics", "topics", _topic(Operation.DESCRIBE, "topic")),
    32: _Items("resources", "results", _config(Operation.DESCRIBE_CONFIGS)),
    33: _Items("resources", "responses", _config(Operation.ALTER_CONFIGS)),
    37: _Items("topics", "results", _topic(Operation.ALTER)),
    42: _Items("groups_names", "results", _named_group(Operation.DELETE)),
    44: _Items("resources", "responses", _config(Operation.ALTER_CONFIGS)),
    47: _Items("topics", "topics", _topic(Operation.READ), _offset_delete_entry),
    69: _Items("group_ids", "groups", _named_group(Operation.DESCRIBE)),
}

Merge = Callable[[Body], Body]


def per_item(
    authorizer: AclAuthorizer,
    topic_name: TopicName,
    ctx: RequestContext,
    api_key: int,
    req: Body,
    spec: ApiSpec,
    audit: Audit | None = None,
) -> tuple[Body, ApiSpec] | None:
    """For an API answered per item: the request without the items the principal may not
    touch, and the spec whose handler adds their errors (built with the API's own
    ``error_body``) to the response; None when nothing is taken out or filtered.
    Decisions go to ``audit``."""
    principal, host = ctx.principal, ctx.client_host

    def allowed(op: Operation, kind: str, name: str) -> bool:
        decision = authorizer.authorize(principal, host, op, Resource(kind, name))
        if audit is not None:
            audit.authorization(ctx, op, kind, name, decision)
        return decision

    merge: Merge | None
    if api_key == 16:
        merge = None if allowed(Operation.DESCRIBE, "Cluster", CLUSTER) else _list_groups(allowed)
        return None if merge is None else (req, _merged(spec, merge))
    if api_key == 9:
        split9 = _offset_fetch(allowed, topic_name, req, spec)
        return None if split9 is None else (split9[0], _merged(spec, split9[1]))
    items = _PER_ITEM.get(api_key)
    if items is None or (api_key in (1, 23) and _from_replica(req)):
        return None
    if api_key == 19 and authorizer.authorize(
        principal, host, Operation.CREATE, Resource("Cluster", CLUSTER)
    ):
        if audit is not None:  # audited per topic: the record names what was created
            for topic in req.get("topics") or ():
                audit.authorization(
                    ctx, Operation.CREATE, "Topic", topic["name"], True, "Create on the cluster"
                )
        return None
    listed = req.get(items.request_key)
    if api_key == 20 and not listed:
        items = _Items("topic_names", "responses", _named_topic(Operation.DELETE))
        listed = req.get("topic_names")
    keep: list[Any] = []
    refused: dict[ErrorCode, list[Any]] = {}
    for item in listed or ():
        if isinstance(item, dict) and "topic_id" in item and not item.get("name"):
            # A topic named by id (DeleteTopics v6+, OffsetCommit v10): judged by its name.
            tid = item.get("topic_id")
            found = topic_name(uuid.UUID(str(tid))) if tid is not None else None
            if found is None:
                keep.append(item)  # an unknown id: the handler answers it
                continue
            item = {**item, "name": found}
        code = next((_REFUSED[k] for op, k, n in items.needs(item) if not allowed(op, k, n)), None)
        if code is None:
            keep.append(item)
        else:
            refused.setdefault(code, []).append(item)
    if not refused:
        return None
    key = items.response_key
    errors: list[Body] = []
    for code, some in refused.items():
        if items.entry is not None:
            errors += [items.entry(item, code) for item in some]
        else:
            errors += spec.error_body({**req, items.request_key: some}, code)[key]

    def add_errors(body: Body) -> Body:
        body[key] = list(body.get(key) or ()) + errors
        return body

    return {**req, items.request_key: keep}, _merged(spec, add_errors)


def _named_topic(op: Operation) -> Callable[[Any], Iterable[Need]]:
    return lambda name: ((op, "Topic", name),)


def _merged(spec: ApiSpec, merge: Merge) -> ApiSpec:
    """``spec`` with a handler that passes its response through ``merge``."""
    handler = spec.handler

    def handle(ctx: RequestContext, services: Any, req: Body) -> Any:
        result = handler(ctx, services, req)
        if inspect.isawaitable(result):

            async def finish() -> Body | None:
                body: Body | None = await result
                return merge(body) if body is not None else body

            return finish()
        return merge(result) if result is not None else result

    return dataclasses.replace(spec, handler=handle)


def _list_groups(allowed: Callable[[Operation, str, str], bool]) -> Merge:
    def keep_described(body: Body) -> Body:
        groups = body.get("groups") or ()
        body["groups"] = [g for g in groups if allowed(Operation.DESCRIBE, "Group", g["group_id"])]
        return body

    return keep_described


def _offset_fetch(
    allowed: Callable[[Operation, str, str], bool],
    topic_name: TopicName,
    req: Body,
    spec: ApiSpec,
) -> tuple[Body, Merge] | None:
    """OffsetFetch: each group needs Describe (v8+ batches answer a refused group with
    GROUP_AUTHORIZATION_FAILED), each topic Describe: a named topic refused answers
    TOPIC_AUTHORIZATION_FAILED per partition, and "all topics" leaves the others out."""

    def name_of(t: Body) -> str | None:
        if t.get("name"):
            return str(t["name"])
        tid = t.get("topic_id")
        return topic_name(uuid.UUID(str(tid))) if tid is not None else None

    def split_topics(topics: list[Body] | None) -> tuple[list[Body] | None, list[Body]]:
        if topics is None:
            return None, []
        keep, refused = [], []
        for t in topics:
            name = name_of(t)
            if name is not None and not allowed(Operation.DESCRIBE, "Topic", name):
                refused.append(
                    {
                        "name": name,
                        "topic_id": t.get("topic_id"),
                        "partitions": [
                            {
                                "partition_index": p,
                                "committed_offset": -1,
                                "committed_leader_epoch": -1,
                                "metadata": "",
                                "error_code": ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                            }
                            for p in t.get("partition_indexes") or ()
                        ],
                    }
                )
            else:
                keep.append(t)
        return keep, refused

    def finish_topics(answered: list[Body], refused: list[Body], every: bool) -> list[Body]:
        if every:  # "all topics": only those the principal may Describe
            answered = [t for t in answered if allowed(Operation.DESCRIBE, "Topic", t["name"])]
        return answered + refused

    if req.get("groups") is None:
        keep, refused = split_topics(req.get("topics"))
        every = req.get("topics") is None

        def merge_one(body: Body) -> Body:
            body["topics"] = finish_topics(body.get("topics") or [], refused, every)
            return body

        return {**req, "topics": keep}, merge_one
    groups, denied, per_group = [], [], {}
    for g in req["groups"]:
        if not allowed(Operation.DESCRIBE, "Group", g["group_id"]):
            denied.append(g)
            continue
        keep, refused = split_topics(g.get("topics"))
        per_group[g["group_id"]] = (refused, g.get("topics") is None)
        groups.append({**g, "topics": keep})
    errors = (
        spec.error_body({**req, "groups": denied}, ErrorCode.GROUP_AUTHORIZATION_FAILED)["groups"]
        if denied
        else []
    )

    def merge_many(body: Body) -> Body:
        for g in body.get("groups") or ():
            refused, every = per_group.get(g["group_id"], ([], False))
            g["topics"] = finish_topics(g.get("topics") or [], refused, every)
        body["groups"] = list(body.get("groups") or ()) + errors
        return body

    return {**req, "groups": groups}, merge_many
