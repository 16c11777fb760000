"""DescribeAcls, CreateAcls and DeleteAcls (Kafka's ACL administration).

Without ``authorizer.class.name`` there are no ACLs to manage: each answers SECURITY_DISABLED,
as Kafka does. With it, the request itself needs Describe (DescribeAcls) or Alter (CreateAcls,
DeleteAcls) on the cluster (the dispatch checks that). A creation is judged on its own: one
that cannot be stored (a filter value such as ANY, a bad principal or host, a cluster resource
not named ``kafka-cluster``) answers INVALID_REQUEST with the reason, the others are written
together. A DeleteAcls filter removes every ACL it matches and lists them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...security.acl import AclBinding, AclError, AclFilter, PatternType
from ..context import ErrorCode, RequestContext, Services
from .registry import ApiSpec

Body = dict[str, Any]


def _binding_fields(acl: AclBinding) -> Body:
    return {
        "principal": acl.principal,
        "host": acl.host,
        "operation": acl.operation,
        "permission_type": acl.permission,
    }


def _filter(item: Body) -> AclFilter:
    return AclFilter(
        item["resource_type_filter"],
        item["resource_name_filter"],
        item.get("pattern_type_filter", PatternType.LITERAL),
        item["principal_filter"],
        item["host_filter"],
        item["operation"],
        item["permission_type"],
    )


def describe_error(req: Body, code: ErrorCode) -> Body:
    return {"throttle_time_ms": 0, "error_code": code, "error_message": None, "resources": []}


async def describe_acls(ctx: RequestContext, services: Services, req: Body) -> Body:
    """The ACLs the filter matches, grouped by resource pattern."""
    if services.acls is None:
        return describe_error(req, ErrorCode.SECURITY_DISABLED)
    flt = _filter(req)
    try:
        flt.validate()
    except AclError as exc:
        body = describe_error(req, ErrorCode.INVALID_REQUEST)
        body["error_message"] = str(exc)
        return body
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "resources": _grouped(a for a in services.acls.authorizer.acls if flt.matches(a)),
    }


def _grouped(acls: Iterable[AclBinding]) -> list[Body]:
    resources: dict[tuple[int, str, int], list[Body]] = {}
    for acl in acls:
        key = (acl.resource_type, acl.resource_name, acl.pattern_type)
        resources.setdefault(key, []).append(_binding_fields(acl))
    return [
        {"resource_type": t, "resource_name": n, "pattern_type": p, "acls": entries}
        for (t, n, p), entries in sorted(resources.items())
    ]


def create_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "results": [{"error_code": code, "error_message": None} for _ in req["creations"]],
    }


async def create_acls(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Store every valid creation; an ACL that already exists is not stored twice."""
    if services.acls is None:
        return create_error(req, ErrorCode.SECURITY_DISABLED)
    results: list[Body] = []
    new: list[AclBinding] = []
    for item in req["creations"]:
        acl = AclBinding(
            item["resource_type"],
            item["resource_name"],
            item.get("resource_pattern_type", PatternType.LITERAL),
            item["principal"],
            item["host"],
            item["operation"],
            item["permission_type"],
        )
        try:
            acl.validate()
        except AclError as exc:
            results.append({"error_code": ErrorCode.INVALID_REQUEST, "error_message": str(exc)})
            continue
        new.append(acl)
        results.append({"error_code": ErrorCode.NONE, "error_message": None})
    if new:
        await services.acls.change(lambda current: (*current, *new))
    return {"throttle_time_ms": 0, "results": results}


def delete_error(req: Body, code: ErrorCode) -> Body:
    return {
        "throttle_time_ms": 0,
        "filter_results": [
            {"error_code": code, "error_message": None, "matching_acls": []} for _ in req["filters"]
        ],
    }


async def delete_acls(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Remove what each filter matches; each filter lists the ACLs it removed."""
    if services.acls is None:
        return delete_error(req, ErrorCode.SECURITY_DISABLED)
    filters: list[AclFilter | None] = []
    results: list[Body] = []
    for item in req["filters"]:
        flt = _filter(item)
        try:
            flt.validate()
        except AclError as exc:
            filters.append(None)
            results.append(
                {
                    "error_code": ErrorCode.INVALID_REQUEST,
                    "error_message": str(exc),
                    "matching_acls": [],
                }
            )
            continue
        filters.append(flt)
        results.append({"error_code": ErrorCode.NONE, "error_message": None, "matching_acls": []})
    current = services.acls.authorizer.acls
    removed: set[AclBinding] = set()
    for chosen, result in zip(filters, results, strict=True):
        if chosen is None:
            continue
        for acl in current:
            if chosen.matches(acl):
                removed.add(acl)
                result["matching_acls"].append(
                    {
                        "error_code": ErrorCode.NONE,
                        "error_message": None,
                        "resource_type": acl.resource_type,
                        "resource_name": acl.resource_name,
                        "pattern_type": acl.pattern_type,
                        **_binding_fields(acl),
                    }
                )
    if removed:
        await services.acls.change(lambda acls: [a for a in acls if a not in removed])
    return {"throttle_time_ms": 0, "filter_results": results}


APIS = [
    ApiSpec(29, describe_acls, describe_error),
    ApiSpec(30, create_acls, create_error),
    ApiSpec(31, delete_acls, delete_error),
]
