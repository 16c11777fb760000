"""Roles and role bindings in the authorizer (security/roles.py, security/acl.py), with group
membership from a real groups file: which decisions a binding makes, how it combines with
ACLs, and that cached decisions follow changes. Each test says what was tried and what must
hold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edplog.security.acl import (
    OPERATION_ALL,
    AclAuthorizer,
    AclBinding,
    PatternType,
    Permission,
    ResourceType,
)
from edplog.security.authorizer import Operation, Resource
from edplog.security.groups import FileGroups, GroupSettings, parse_groups_file
from edplog.security.principal import Principal
from edplog.security.roles import (
    ROLES,
    RoleBinding,
    RoleError,
    add_binding,
    list_bindings,
    remove_binding,
)

ALICE, BOB, CAROL = Principal("User", "alice"), Principal("User", "bob"), Principal("User", "carol")
HOST = "127.0.0.1"


def topic(name: str) -> Resource:
    return Resource("Topic", name)


def group(name: str) -> Resource:
    return Resource("Group", name)


CLUSTER = Resource("Cluster", "kafka-cluster")


def groups_file(tmp_path: Path, text: str) -> FileGroups:
    path = tmp_path / "groups"
    path.write_text(text)
    return FileGroups(str(path))


def test_resource_roles_grant_their_operations_on_their_patterns(tmp_path: Path) -> None:
    """DeveloperRead for Group:devs on the topic prefix ``pay-`` and the group ``app``, and
    DeveloperWrite for User:bob on the literal topic ``orders``: alice (in devs) may Read and
    Describe pay-in and join app, not Write pay-in nor Read orders; bob may Write and Describe
    orders and nothing on pay-in; carol (no group) nothing; the Write binding also answers
    authorize_any(Write, Topic) for bob (KIP-679's idempotent producer)."""
    auth = AclAuthorizer(
        bindings=[
            RoleBinding("Group:devs", "DeveloperRead", "Topic", "pay-", "PREFIXED"),
            RoleBinding("Group:devs", "DeveloperRead", "Group", "app"),
            RoleBinding("User:bob", "DeveloperWrite", "Topic", "orders"),
        ],
        groups=groups_file(tmp_path, "devs: alice\n"),
    )
    ok = auth.authorize
    assert ok(ALICE, HOST, Operation.READ, topic("pay-in"))
    assert ok(ALICE, HOST, Operation.DESCRIBE, topic("pay-in"))
    assert ok(ALICE, HOST, Operation.READ, group("app"))
    assert not ok(ALICE, HOST, Operation.WRITE, topic("pay-in"))
    assert not ok(ALICE, HOST, Operation.READ, topic("orders"))
    assert not ok(ALICE, HOST, Operation.READ, topic("pay"))  # not under the prefix
    assert ok(BOB, HOST, Operation.WRITE, topic("orders"))
    assert ok(BOB, HOST, Operation.DESCRIBE, topic("orders"))
    assert not ok(BOB, HOST, Operation.READ, topic("pay-in"))
    assert not ok(CAROL, HOST, Operation.READ, topic("pay-in"))
    assert auth.authorize_any(BOB, HOST, Operation.WRITE, "Topic")
    assert not auth.authorize_any(ALICE, HOST, Operation.WRITE, "Topic")


def test_cluster_roles_cover_every_resource_of_their_types() -> None:
    """SystemAdmin may do anything anywhere; ClusterAdmin creates and deletes any topic and
    alters the cluster but may not Read or Write records; Operator describes everything and
    alters topic configs but may not delete a topic."""
    auth = AclAuthorizer(
        bindings=[
            RoleBinding("User:alice", "SystemAdmin"),
            RoleBinding("User:bob", "ClusterAdmin"),
            RoleBinding("User:carol", "Operator"),
        ]
    )
    ok = auth.authorize
    for op in (Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER_CONFIGS):
        assert ok(ALICE, HOST, op, topic("any"))
    assert ok(ALICE, HOST, Operation.CLUSTER_ACTION, CLUSTER)
    assert ok(BOB, HOST, Operation.CREATE, CLUSTER)
    assert ok(BOB, HOST, Operation.DELETE, topic("any"))
    assert ok(BOB, HOST, Operation.ALTER, CLUSTER)
    assert not ok(BOB, HOST, Operation.READ, topic("any"))
    assert not ok(BOB, HOST, Operation.WRITE, topic("any"))
    assert ok(CAROL, HOST, Operation.DESCRIBE, topic("t"))
    assert ok(CAROL, HOST, Operation.DESCRIBE_CONFIGS, CLUSTER)
    assert ok(CAROL, HOST, Operation.ALTER_CONFIGS, topic("t"))
    assert not ok(CAROL, HOST, Operation.DELETE, topic("t"))
    assert not ok(CAROL, HOST, Operation.READ, topic("t"))


def test_a_deny_acl_wins_over_a_role_and_acls_name_groups(tmp_path: Path) -> None:
    """ResourceOwner of every topic (``*``) for Group:devs, and a DENY Read ACL for Group:devs
    on ``secret``: alice (in devs) may Read ``public`` but not ``secret``; an ALLOW ACL for
    Group:ops (carol's group) grants Write on ``ops-log`` without any role; super users pass
    whatever the ACLs say."""
    auth = AclAuthorizer(
        [
            AclBinding(
                ResourceType.TOPIC,
                "secret",
                PatternType.LITERAL,
                "Group:devs",
                "*",
                3,  # Read
                Permission.DENY,
            ),
            AclBinding(
                ResourceType.TOPIC,
                "ops-log",
                PatternType.LITERAL,
                "Group:ops",
                "*",
                OPERATION_ALL,
                Permission.ALLOW,
            ),
        ],
        super_users=["User:root"],
        bindings=[RoleBinding("Group:devs", "ResourceOwner", "Topic", "*")],
        groups=groups_file(tmp_path, "devs: alice, bob\nops: carol\n"),
    )
    assert auth.authorize(ALICE, HOST, Operation.READ, topic("public"))
    assert not auth.authorize(ALICE, HOST, Operation.READ, topic("secret"))
    assert auth.authorize(ALICE, HOST, Operation.WRITE, topic("secret"))  # only Read denied
    assert auth.authorize(CAROL, HOST, Operation.WRITE, topic("ops-log"))
    assert not auth.authorize(CAROL, HOST, Operation.WRITE, topic("public"))
    assert auth.authorize(Principal("User", "root"), HOST, Operation.READ, topic("secret"))


def test_allow_everyone_counts_bindings_on_the_resource() -> None:
    """allow.everyone.if.no.acl.found=true: a topic with neither an ACL nor a binding is
    open to anyone; a topic under a binding's prefix (``team-``) is not open to others any
    more, as an ACL on it would close it; a cluster binding (SystemAdmin) does not close
    every topic, only the cluster itself."""
    auth = AclAuthorizer(
        allow_if_no_acl=True,
        bindings=[
            RoleBinding("User:alice", "DeveloperRead", "Topic", "team-", "PREFIXED"),
            RoleBinding("User:alice", "SystemAdmin"),
        ],
    )
    assert auth.authorize(BOB, HOST, Operation.READ, topic("open"))
    assert not auth.authorize(BOB, HOST, Operation.READ, topic("team-x"))
    assert auth.authorize(ALICE, HOST, Operation.READ, topic("team-x"))
    assert not auth.authorize(BOB, HOST, Operation.ALTER, CLUSTER)


def test_cached_decisions_follow_binding_and_group_changes(tmp_path: Path) -> None:
    """A decision is cached; replacing the bindings drops it (alice loses Read when her
    binding goes), and so does a changed groups file once refresh() reads it (bob gains Read
    when he joins devs, loses it when he leaves); an unchanged file is not re-read."""
    groups = groups_file(tmp_path, "devs: alice\n")
    binding = RoleBinding("Group:devs", "DeveloperRead", "Topic", "t")
    auth = AclAuthorizer(bindings=[binding], groups=groups)
    assert auth.authorize(ALICE, HOST, Operation.READ, topic("t"))
    assert not auth.authorize(BOB, HOST, Operation.READ, topic("t"))

    path = tmp_path / "groups"
    path.write_text("devs: alice, bob\n# bob joined\n")
    assert not auth.authorize(BOB, HOST, Operation.READ, topic("t"))  # cached, not re-read
    assert groups.refresh()
    auth.groups_changed()
    assert auth.authorize(BOB, HOST, Operation.READ, topic("t"))
    assert not groups.refresh()  # unchanged

    path.write_text("devs: alice\n")
    os.utime(path, ns=(1, 1))  # a different stamp even within the same clock tick
    assert groups.refresh()
    auth.groups_changed()
    assert not auth.authorize(BOB, HOST, Operation.READ, topic("t"))

    auth.replace_bindings([])
    assert not auth.authorize(ALICE, HOST, Operation.READ, topic("t"))


def test_bindings_are_validated_and_kept_in_the_data_dir(tmp_path: Path) -> None:
    """add_binding / remove_binding / list_bindings keep role-bindings.json; adding twice
    is a no-op; removing what is not there says so; bindings that cannot exist are refused
    with a message: an unknown role, a cluster role on a topic, a resource role on the
    cluster, a principal that is neither User nor Group, a PREFIXED ``*``."""
    b1 = RoleBinding("Group:devs", "DeveloperRead", "Topic", "pay-", "PREFIXED")
    b2 = RoleBinding("User:ops", "Operator")
    assert add_binding(tmp_path, b1) and add_binding(tmp_path, b2)
    assert not add_binding(tmp_path, b1)
    assert list_bindings(tmp_path) == (b1, b2)
    assert remove_binding(tmp_path, b1) and not remove_binding(tmp_path, b1)
    assert list_bindings(tmp_path) == (b2,)
    bad = [
        (RoleBinding("User:a", "Owner", "Topic", "t"), "no role 'Owner'"),
        (RoleBinding("User:a", "ClusterAdmin", "Topic", "t"), "bound to the cluster"),
        (RoleBinding("User:a", "DeveloperRead"), "bound to a resource"),
        (RoleBinding("Service:a", "DeveloperRead", "Topic", "t"), "User:<name> or Group"),
        (RoleBinding("User:a", "DeveloperRead", "Topic", "*", "PREFIXED"), "wildcard"),
    ]
    for binding, message in bad:
        with pytest.raises(RoleError, match=message):
            add_binding(tmp_path, binding)
    assert set(ROLES) >= {"SystemAdmin", "ClusterAdmin", "Operator", "ResourceOwner"}


def test_group_settings_and_files_are_checked() -> None:
    """A groups file line without ``group:`` is refused naming its line; the settings refuse
    a groups file together with LDAP, an LDAP URL that is neither ldap:// nor ldaps://, a
    trust store for ldap:// or one that does not exist, missing search bases, a bind DN
    without a password, and a non-positive interval."""
    assert parse_groups_file("a: x, y\nb: y\n# c\n\na: z") == {
        "x": frozenset({"a"}),
        "y": frozenset({"a", "b"}),
        "z": frozenset({"a"}),
    }
    with pytest.raises(ValueError, match="line 2"):
        parse_groups_file("a: x\nnonsense\n")
    ldap = {
        "authorizer.ldap.url": "ldap://127.0.0.1:389",
        "authorizer.ldap.user.search.base": "ou=people,dc=x",
        "authorizer.ldap.group.search.base": "ou=groups,dc=x",
    }
    assert GroupSettings.from_properties(ldap).ldap is not None
    cases = [
        ({**ldap, "authorizer.groups.file": "/tmp/g"}, "both set"),
        ({**ldap, "authorizer.ldap.url": "ldapi://h"}, "StartTLS is not implemented"),
        ({**ldap, "authorizer.ldap.ssl.truststore.location": "/etc/hosts"}, "for an ldaps://"),
        (
            {
                **ldap,
                "authorizer.ldap.url": "ldaps://h",
                "authorizer.ldap.ssl.truststore.location": "/nonexistent/ca.pem",
            },
            "no such file",
        ),
        ({"authorizer.ldap.url": "ldap://h"}, "user.search.base is required"),
        ({**ldap, "authorizer.ldap.bind.dn": "cn=x"}, "go together"),
        ({"authorizer.roles.reload.interval.ms": "0"}, "must be positive"),
    ]
    for props, message in cases:
        with pytest.raises(ValueError, match=message):
            GroupSettings.from_properties(props)
