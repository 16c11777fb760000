"""Kafka's ACL model and the authorizer that applies it.

An ACL (:class:`AclBinding`) says that a principal (``User:alice``, or ``User:*`` for
everyone) from a host (an address, or ``*``) is ALLOWed or DENYed one operation (or ``All``)
on a resource pattern: a resource type (Topic, Group, Cluster, TransactionalId,
DelegationToken, User) with a LITERAL name (``*`` meaning every resource of the type) or a
PREFIXED one (every name that starts with it).

A decision (:meth:`AclAuthorizer.authorize`) follows Kafka's rules:

1. a principal in ``super.users`` may do everything;
2. the ACLs whose pattern matches the resource are collected; when there is none at all,
   ``allow.everyone.if.no.acl.found`` decides (false by default: denied);
3. a matching DENY for the principal, the host and the operation (or ``All``) denies — DENY
   wins over any ALLOW;
4. otherwise a matching ALLOW allows. Some operations imply others, for ALLOW only: Read,
   Write, Delete and Alter imply Describe; AlterConfigs implies DescribeConfigs;
5. otherwise denied.

Role bindings (:mod:`.roles`) join in: the principals judged are the user and the groups a
:class:`~.groups.GroupSource` puts them in (``Group:<name>``, which ACLs may name too);
after the DENY check of step 3, an ALLOW ACL *or* a role binding whose role grants the
operation (with the same implications) on the resource allows. In step 2 a resource with no
ACL and no role binding on it is the one ``allow.everyone.if.no.acl.found`` opens (a
cluster-scoped binding is on the cluster only); with it false, such a resource is still
granted by the roles of cluster-scoped bindings.

Decisions are cached per (principal, host, operation, resource) until the ACLs, the role
bindings or the group membership change, so a produce or fetch pays one dictionary lookup per
topic. The ACLs live in the table this module keeps; the broker persists it (``to_json`` /
``from_json``) and calls :meth:`AclAuthorizer.replace` with every change, and
:meth:`AclAuthorizer.replace_bindings` / :meth:`AclAuthorizer.groups_changed` likewise.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .authorizer import Operation, Resource
from .groups import GroupSource, NoGroups
from .principal import Principal
from .roles import ROLES, RoleBinding

CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"
#: Decisions kept before the cache starts over.
CACHE_ENTRIES = 65536

#: Kafka's class names for its authorizers: accepted as meaning this one, so that an existing
#: server.properties keeps working.
AUTHORIZER_CLASS_NAMES = frozenset(
    {
        "edplog.security.acl.AclAuthorizer",
        "kafka.security.authorizer.AclAuthorizer",
        "kafka.security.auth.SimpleAclAuthorizer",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    }
)


class ResourceType(enum.IntEnum):
    """Kafka's resource type codes."""

    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


#: The names :class:`Resource` uses for each concrete type.
RESOURCE_TYPE_NAMES: dict[ResourceType, str] = {
    ResourceType.TOPIC: "Topic",
    ResourceType.GROUP: "Group",
    ResourceType.CLUSTER: "Cluster",
    ResourceType.TRANSACTIONAL_ID: "TransactionalId",
    ResourceType.DELEGATION_TOKEN: "DelegationToken",
    ResourceType.USER: "User",
}
RESOURCE_TYPES_BY_NAME = {name: code for code, name in RESOURCE_TYPE_NAMES.items()}


class PatternType(enum.IntEnum):
    """Kafka's resource pattern type codes (ANY and MATCH only in filters)."""

    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Permission(enum.IntEnum):
    """Kafka's ACL permission type codes."""

    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


#: Kafka's AclOperation codes, ``All`` and the filter's ``Any`` included.
OPERATION_ANY = 1
OPERATION_ALL = 2
OPERATIONS_BY_CODE: dict[int, Operation] = {
    3: Operation.READ,
    4: Operation.WRITE,
    5: Operation.CREATE,
    6: Operation.DELETE,
    7: Operation.ALTER,
    8: Operation.DESCRIBE,
    9: Operation.CLUSTER_ACTION,
    10: Operation.DESCRIBE_CONFIGS,
    11: Operation.ALTER_CONFIGS,
    12: Operation.IDEMPOTENT_WRITE,
}
OPERATION_CODE = {op: code for code, op in OPERATIONS_BY_CODE.items()}

# An ALLOW of any of these operations also allows the key's operation.
_IMPLIED_BY: dict[Operation, frozenset[int]] = {
    Operation.DESCRIBE: frozenset(
        OPERATION_CODE[o]
        for o in (
            Operation.DESCRIBE,
            Operation.READ,
            Operation.WRITE,
            Operation.DELETE,
            Operation.ALTER,
        )
    ),
    Operation.DESCRIBE_CONFIGS: frozenset(
        OPERATION_CODE[o] for o in (Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS)
    ),
}


class AclError(ValueError):
    """An ACL that cannot be stored (a filter value where a concrete one is needed, a bad
    principal or host, a cluster resource not named ``kafka-cluster``)."""


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL, in Kafka's wire codes."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int

    def validate(self) -> None:
        """Raise :class:`AclError` unless this ACL can be stored."""
        if self.resource_type not in RESOURCE_TYPE_NAMES:
            raise AclError(f"resource type {self.resource_type} is not a concrete type")
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise AclError(f"pattern type {self.pattern_type} is not LITERAL or PREFIXED")
        if self.operation != OPERATION_ALL and self.operation not in OPERATIONS_BY_CODE:
            raise AclError(f"operation {self.operation} is not a concrete operation")
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            raise AclError(f"permission type {self.permission} is not ALLOW or DENY")
        if not self.resource_name:
            raise AclError("the resource name is empty")
        if self.resource_type == ResourceType.CLUSTER and self.resource_name != CLUSTER_NAME:
            raise AclError(f"the cluster resource is named {CLUSTER_NAME!r}")
        if self.pattern_type == PatternType.PREFIXED and self.resource_name == WILDCARD:
            raise AclError("a PREFIXED pattern cannot be the wildcard '*'")
        try:
            Principal.parse(self.principal)
        except ValueError as exc:
            raise AclError(str(exc)) from None
        if self.host != WILDCARD:
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                raise AclError(f"host {self.host!r} is not an IP address or '*'") from None

    def pattern_matches(self, resource_type: int, name: str) -> bool:
        """Whether this ACL's pattern covers the resource ``(resource_type, name)``."""
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.LITERAL:
            return self.resource_name in (name, WILDCARD)
        return name.startswith(self.resource_name)

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_type": RESOURCE_TYPE_NAMES[ResourceType(self.resource_type)],
            "resource_name": self.resource_name,
            "pattern_type": PatternType(self.pattern_type).name,
            "principal": self.principal,
            "host": self.host,
            "operation": _operation_name(self.operation),
            "permission": Permission(self.permission).name,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AclBinding:
        op = str(data["operation"])
        binding = cls(
            RESOURCE_TYPES_BY_NAME[data["resource_type"]],
            str(data["resource_name"]),
            PatternType[data["pattern_type"]],
            str(data["principal"]),
            str(data["host"]),
            OPERATION_ALL if op == "All" else OPERATION_CODE[Operation(op)],
            Permission[data["permission"]],
        )
        binding.validate()
        return binding


def _operation_name(code: int) -> str:
    return "All" if code == OPERATION_ALL else OPERATIONS_BY_CODE[code].value


@dataclass(frozen=True, slots=True)
class AclFilter:
    """What DescribeAcls and DeleteAcls select: each field a value, or its ``ANY``/None."""

    resource_type: int = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: int = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: int = OPERATION_ANY
    permission: int = Permission.ANY

    def validate(self) -> None:
        if self.resource_type == ResourceType.UNKNOWN:
            raise AclError("the resource type filter is UNKNOWN")
        if self.pattern_type == PatternType.UNKNOWN:
            raise AclError("the pattern type filter is UNKNOWN")
        if self.operation == 0:
            raise AclError("the operation filter is UNKNOWN")
        if self.permission == Permission.UNKNOWN:
            raise AclError("the permission type filter is UNKNOWN")
        if self.pattern_type == PatternType.MATCH and self.resource_name is None:
            raise AclError("a MATCH filter needs a resource name")

    def matches(self, acl: AclBinding) -> bool:
        if self.resource_type != ResourceType.ANY and acl.resource_type != self.resource_type:
            return False
        if self.pattern_type == PatternType.MATCH:
            assert self.resource_name is not None
            if self.resource_type == ResourceType.ANY:
                covered = acl.pattern_matches(acl.resource_type, self.resource_name)
            else:
                covered = acl.pattern_matches(self.resource_type, self.resource_name)
            if not covered:
                return False
        else:
            if self.pattern_type != PatternType.ANY and acl.pattern_type != self.pattern_type:
                return False
            if self.resource_name is not None and acl.resource_name != self.resource_name:
                return False
        if self.principal is not None and acl.principal != self.principal:
            return False
        if self.host is not None and acl.host != self.host:
            return False
        if self.operation != OPERATION_ANY and acl.operation != self.operation:
            return False
        return self.permission == Permission.ANY or acl.permission == self.permission


def parse_super_users(text: str) -> frozenset[str]:
    """``super.users``: principals separated by semicolons (``User:admin;User:ops``)."""
    users = set()
    for item in text.split(";"):
        item = item.strip()
        if item:
            users.add(str(Principal.parse(item)))
    return frozenset(users)


class AclAuthorizer:
    """Applies a table of ACLs (see the module docstring); an :class:`Authorizer`."""

    def __init__(
        self,
        acls: Iterable[AclBinding] = (),
        *,
        super_users: Iterable[str] = (),
        allow_if_no_acl: bool = False,
        bindings: Iterable[RoleBinding] = (),
        groups: GroupSource | None = None,
    ) -> None:
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self._acls: tuple[AclBinding, ...] = ()
        self._by_type: dict[int, tuple[AclBinding, ...]] = {}
        self._bindings: tuple[RoleBinding, ...] = ()
        self._groups: GroupSource = groups or NoGroups()
        self._cache: dict[tuple[str, str, Operation, str, str], bool] = {}
        self.replace(acls)
        self.replace_bindings(bindings)

    @property
    def acls(self) -> tuple[AclBinding, ...]:
        return self._acls

    def replace(self, acls: Iterable[AclBinding]) -> None:
        """Put ``acls`` in force (the whole table), dropping every cached decision."""
        unique = tuple(dict.fromkeys(acls))
        by_type: dict[int, list[AclBinding]] = {}
        for acl in unique:
            by_type.setdefault(acl.resource_type, []).append(acl)
        self._acls = unique
        self._by_type = {t: tuple(v) for t, v in by_type.items()}
        self._cache = {}

    @property
    def bindings(self) -> tuple[RoleBinding, ...]:
        return self._bindings

    def replace_bindings(self, bindings: Iterable[RoleBinding]) -> None:
        """Put the role ``bindings`` in force (the whole table), dropping cached decisions."""
        self._bindings = tuple(dict.fromkeys(bindings))
        self._cache = {}

    def set_groups(self, groups: GroupSource) -> None:
        self._groups = groups
        self._cache = {}

    def groups_changed(self) -> None:
        """The group source's membership changed: decisions made with the old one go."""
        self._cache = {}

    def principals(self, principal: Principal) -> frozenset[str]:
        """The principals a request is judged as: itself, and ``Group:<g>`` for each group
        a user is in."""
        me = str(principal)
        if principal.principal_type != "User":
            return frozenset((me,))
        return frozenset((me, *(f"Group:{g}" for g in self._groups.groups_of(principal.name))))

    def authorize_request(self, principal: Principal, host: str, api_key: int) -> bool:
        return True  # every API is judged by the resources it touches

    def authorize(
        self, principal: Principal, host: str, operation: Operation, resource: Resource
    ) -> bool:
        key = (str(principal), host, operation, resource.resource_type, resource.name)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(principal, host, operation, resource)
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache = {}
            self._cache[key] = decision
        return decision

    def _decide(
        self, principal: Principal, host: str, operation: Operation, resource: Resource
    ) -> bool:
        if str(principal) in self.super_users:
            return True
        rtype = RESOURCE_TYPES_BY_NAME[resource.resource_type]
        kind, name = resource.resource_type, resource.name
        matching = [a for a in self._by_type.get(rtype, ()) if a.pattern_matches(rtype, name)]
        if self.allow_if_no_acl and not matching:
            # Nothing on the resource: open to all. Cluster-scoped bindings are on the cluster
            # only; otherwise the first cluster role bound would close every topic.
            if not any(b.on(kind, name) for b in self._bindings):
                return True
        who = self.principals(principal) | {WILDCARD_PRINCIPAL}
        mine = [a for a in matching if a.principal in who and a.host in (host, WILDCARD)]
        code = OPERATION_CODE[operation]
        for a in mine:
            if a.permission == Permission.DENY and a.operation in (code, OPERATION_ALL):
                return False
        allowing = _IMPLIED_BY.get(operation, frozenset((code,)))
        if any(
            a.permission == Permission.ALLOW
            and (a.operation == OPERATION_ALL or a.operation in allowing)
            for a in mine
        ):
            return True
        granting = [OPERATIONS_BY_CODE[c] for c in allowing]
        return any(
            b.principal in who
            and b.covers(kind, name)
            and any(ROLES[b.role].allows(op, kind) for op in granting)
            for b in self._bindings
        )

    def authorize_any(
        self, principal: Principal, host: str, operation: Operation, resource_type: str
    ) -> bool:
        """Whether ``principal`` may do ``operation`` on at least one resource of the type,
        as Kafka's authorizeByResourceType: an ALLOW (ACL or role binding) on some pattern
        of the type, unless a DENY on every resource of the type (the wildcard literal)
        takes it away."""
        if str(principal) in self.super_users:
            return True
        rtype = RESOURCE_TYPES_BY_NAME[resource_type]
        acls = self._by_type.get(rtype, ())
        who = self.principals(principal) | {WILDCARD_PRINCIPAL}
        code = OPERATION_CODE[operation]
        mine = [a for a in acls if a.principal in who and a.host in (host, WILDCARD)]
        for a in mine:
            if (
                a.permission == Permission.DENY
                and a.operation in (code, OPERATION_ALL)
                and a.pattern_type == PatternType.LITERAL
                and a.resource_name == WILDCARD
            ):
                return False
        if any(
            a.permission == Permission.ALLOW and a.operation in (code, OPERATION_ALL) for a in mine
        ):
            return True
        if any(
            b.principal in who
            and ROLES[b.role].allows(operation, resource_type)
            and (ROLES[b.role].cluster_scoped or b.resource_type == resource_type)
            for b in self._bindings
        ):
            return True
        return not acls and not self._bindings and self.allow_if_no_acl

    # ---- persistence -------------------------------------------------------------------

    def to_json(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self._acls]

    @staticmethod
    def from_json(data: Iterable[Mapping[str, Any]]) -> list[AclBinding]:
        return [AclBinding.from_json(item) for item in data]
