"""The ACL decision rules on their own (security/acl.py): each test builds a table, asks the
authorizer and says which of Kafka's rules the answer follows."""

from __future__ import annotations

import pytest

from edplog.security import Principal, Resource
from edplog.security.acl import (
    OPERATION_ALL,
    OPERATION_CODE,
    AclAuthorizer,
    AclBinding,
    AclError,
    AclFilter,
    PatternType,
    Permission,
    ResourceType,
)
from edplog.security.authorizer import Operation

ALICE = Principal("User", "alice")
BOB = Principal("User", "bob")
HOST = "10.0.0.7"


def acl(
    name: str,
    op: Operation | None,
    permission: Permission = Permission.ALLOW,
    *,
    kind: ResourceType = ResourceType.TOPIC,
    pattern: PatternType = PatternType.LITERAL,
    principal: str = "User:alice",
    host: str = "*",
) -> AclBinding:
    code = OPERATION_ALL if op is None else OPERATION_CODE[op]
    return AclBinding(kind, name, pattern, principal, host, code, permission)


def topic(name: str) -> Resource:
    return Resource("Topic", name)


def test_no_acl_denies_unless_allow_everyone_if_no_acl_found() -> None:
    """A resource without any ACL: denied by default, allowed with the setting; a resource
    with an ACL for someone else is denied to alice either way."""
    table = [acl("other", Operation.READ, principal="User:bob")]
    strict = AclAuthorizer(table)
    open_ = AclAuthorizer(table, allow_if_no_acl=True)
    assert not strict.authorize(ALICE, HOST, Operation.READ, topic("free"))
    assert open_.authorize(ALICE, HOST, Operation.READ, topic("free"))
    assert not open_.authorize(ALICE, HOST, Operation.READ, topic("other"))
    assert open_.authorize(BOB, HOST, Operation.READ, topic("other"))


def test_deny_wins_over_allow_and_prefixed_and_wildcard_patterns_match() -> None:
    """ALLOW Read on the prefix ``pub-`` and on every topic (``*``), DENY Read on
    ``pub-secret``: the deny wins there; the prefix and the wildcard allow elsewhere."""
    authz = AclAuthorizer(
        [
            acl("pub-", Operation.READ, pattern=PatternType.PREFIXED),
            acl("pub-secret", Operation.READ, Permission.DENY),
            acl("*", Operation.WRITE),
        ]
    )
    assert authz.authorize(ALICE, HOST, Operation.READ, topic("pub-news"))
    assert not authz.authorize(ALICE, HOST, Operation.READ, topic("pub-secret"))
    assert not authz.authorize(ALICE, HOST, Operation.READ, topic("private"))
    assert authz.authorize(ALICE, HOST, Operation.WRITE, topic("anything"))
    assert not authz.authorize(BOB, HOST, Operation.WRITE, topic("anything"))


def test_implied_operations_and_all() -> None:
    """Read implies Describe and AlterConfigs implies DescribeConfigs (for ALLOW only: a DENY
    of Read does not deny Describe); ``All`` allows, or denies, every operation."""
    authz = AclAuthorizer(
        [
            acl("t", Operation.READ),
            acl("t", Operation.ALTER_CONFIGS),
            acl("u", None),
            acl("u", Operation.DELETE, Permission.DENY),
            acl("v", Operation.DESCRIBE),
            acl("v", Operation.READ, Permission.DENY),
            acl("w", Operation.READ),
            acl("w", None, Permission.DENY),
        ]
    )
    assert authz.authorize(ALICE, HOST, Operation.DESCRIBE, topic("t"))
    assert authz.authorize(ALICE, HOST, Operation.DESCRIBE_CONFIGS, topic("t"))
    assert not authz.authorize(ALICE, HOST, Operation.WRITE, topic("t"))
    assert authz.authorize(ALICE, HOST, Operation.WRITE, topic("u"))
    assert not authz.authorize(ALICE, HOST, Operation.DELETE, topic("u"))
    assert authz.authorize(ALICE, HOST, Operation.DESCRIBE, topic("v"))
    assert not authz.authorize(ALICE, HOST, Operation.READ, topic("v"))
    assert not authz.authorize(ALICE, HOST, Operation.READ, topic("w"))


def test_hosts_principal_wildcard_and_super_users() -> None:
    """An ACL for one host applies from that host only; ``User:*`` is everyone; a super
    user may do everything, even what a DENY names."""
    authz = AclAuthorizer(
        [
            acl("t", Operation.READ, host=HOST),
            acl("e", Operation.READ, principal="User:*"),
            acl("e", Operation.READ, Permission.DENY, principal="User:root"),
        ],
        super_users={"User:root"},
    )
    assert authz.authorize(ALICE, HOST, Operation.READ, topic("t"))
    assert not authz.authorize(ALICE, "10.0.0.8", Operation.READ, topic("t"))
    assert authz.authorize(BOB, "10.0.0.8", Operation.READ, topic("e"))
    assert authz.authorize(Principal("User", "root"), HOST, Operation.READ, topic("e"))


def test_decisions_are_cached_until_the_table_changes() -> None:
    """A decision is kept; replacing the table drops it, so a removed ACL stops allowing."""
    grant = acl("t", Operation.READ)
    authz = AclAuthorizer([grant])
    assert authz.authorize(ALICE, HOST, Operation.READ, topic("t"))
    authz.replace([])
    assert not authz.authorize(ALICE, HOST, Operation.READ, topic("t"))


def test_authorize_any_is_kafkas_by_resource_type_check() -> None:
    """Write on some topic allows an idempotent producer (KIP-679) unless a DENY on every
    topic takes it back."""
    assert AclAuthorizer([acl("orders", Operation.WRITE)]).authorize_any(
        ALICE, HOST, Operation.WRITE, "Topic"
    )
    assert not AclAuthorizer([acl("orders", Operation.READ)]).authorize_any(
        ALICE, HOST, Operation.WRITE, "Topic"
    )
    assert not AclAuthorizer(
        [acl("orders", Operation.WRITE), acl("*", Operation.WRITE, Permission.DENY)]
    ).authorize_any(ALICE, HOST, Operation.WRITE, "Topic")


@pytest.mark.parametrize(
    ("binding", "reason"),
    [
        (acl("t", Operation.READ, kind=ResourceType.ANY), "not a concrete type"),
        (acl("t", Operation.READ, pattern=PatternType.MATCH), "LITERAL or PREFIXED"),
        (acl("t", Operation.READ, principal="alice"), "<type>:<name>"),
        (acl("t", Operation.READ, host="example.com"), "not an IP address"),
        (acl("main", Operation.ALTER, kind=ResourceType.CLUSTER), "kafka-cluster"),
        (acl("*", Operation.READ, pattern=PatternType.PREFIXED), "wildcard"),
        (acl("", Operation.READ), "empty"),
    ],
)
def test_acls_that_cannot_be_stored_are_refused_with_the_reason(binding, reason) -> None:
    with pytest.raises(AclError, match=reason):
        binding.validate()


def test_filters_and_the_json_form() -> None:
    """A MATCH filter selects the ACLs that apply to a named resource (literal, wildcard and
    prefixes); ANY selects every pattern type; the JSON form round-trips."""
    table = [
        acl("pub-news", Operation.READ),
        acl("*", Operation.READ),
        acl("pub-", Operation.WRITE, pattern=PatternType.PREFIXED),
        acl("other", Operation.READ),
        acl("g", Operation.READ, kind=ResourceType.GROUP),
    ]
    match = AclFilter(ResourceType.TOPIC, "pub-news", PatternType.MATCH)
    assert [a.resource_name for a in table if match.matches(a)] == ["pub-news", "*", "pub-"]
    anything = AclFilter()
    assert all(anything.matches(a) for a in table)
    prefixed = AclFilter(pattern_type=PatternType.PREFIXED)
    assert [a.resource_name for a in table if prefixed.matches(a)] == ["pub-"]
    authz = AclAuthorizer(table)
    assert AclAuthorizer.from_json(authz.to_json()) == list(table)
