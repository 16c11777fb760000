"""ACL bindings and filters for the tests that drive a broker's ACLs through AdminClient."""

from __future__ import annotations

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

TIMEOUT_S = 30


def binding(
    kind: ResourceType,
    name: str,
    principal: str,
    op: AclOperation,
    permission: AclPermissionType = AclPermissionType.ALLOW,
    pattern: ResourcePatternType | None = None,
) -> AclBinding:
    """One ACL on a LITERAL (or the given) pattern, for every host."""
    return AclBinding(
        kind, name, pattern or ResourcePatternType.LITERAL, principal, "*", op, permission
    )


def every(kind: ResourceType = ResourceType.ANY) -> AclBindingFilter:
    """A filter that matches every ACL (of one resource type)."""
    return AclBindingFilter(
        kind, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )


def create(admin: AdminClient, acls: list[AclBinding]) -> None:
    """Create ACLs and wait until the broker has them all."""
    for fut in admin.create_acls(acls, request_timeout=TIMEOUT_S).values():
        fut.result(TIMEOUT_S)
