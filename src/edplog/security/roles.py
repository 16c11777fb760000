"""Roles (RBAC): predefined sets of operations, bound to users or groups on resources.

Kafka has ACLs only; roles are edplog's extension (in the spirit of Confluent's RBAC). A
:class:`Role` is a named set of operations per resource type. A :class:`RoleBinding` gives a
role to a principal (``User:alice`` or ``Group:ops``):

* a *cluster-scoped* role (SystemAdmin, ClusterAdmin, Operator) is bound to the cluster
  (``Cluster:kafka-cluster``) and grants its operations on every resource of the types it
  lists;
* a *resource-scoped* role (ResourceOwner, DeveloperRead, DeveloperWrite, DeveloperManage)
  is bound to a Topic, Group or TransactionalId pattern — a LITERAL name, ``*`` for every
  resource of the type, or a PREFIXED name — and grants its operations for that type on the
  resources the pattern covers.

The authorizer (:class:`~edplog.security.acl.AclAuthorizer`) combines bindings with ACLs: a
DENY ACL still wins, and an ALLOW from an ACL or a role grants.

Bindings live in ``role-bindings.json`` in the broker's data directory; :func:`list_bindings`,
:func:`add_binding` and :func:`remove_binding` manage that file (what ``edplog security
role-bindings`` runs). A running broker re-reads it when it changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .authorizer import RESOURCE_OPERATIONS, Operation
from .principal import Principal

ROLE_BINDINGS_FILE = "role-bindings.json"
CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
LITERAL = "LITERAL"
PREFIXED = "PREFIXED"

#: The operations that apply to each resource type a role may grant on.
_APPLICABLE: dict[str, frozenset[Operation]] = {
    **{kind: frozenset(ops) for kind, ops in RESOURCE_OPERATIONS.items()},
    "TransactionalId": frozenset((Operation.WRITE, Operation.DESCRIBE)),
}


class RoleError(ValueError):
    """A role binding that cannot exist (an unknown role, a role bound to the wrong kind
    of resource, a bad principal or pattern)."""


@dataclass(frozen=True)
class Role:
    """A predefined role: its operations per resource type, and where it is bound."""

    name: str
    cluster_scoped: bool
    grants: Mapping[str, frozenset[Operation]]
    description: str

    def allows(self, operation: Operation, resource_type: str) -> bool:
        return operation in self.grants.get(resource_type, frozenset())

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": "cluster" if self.cluster_scoped else "resource",
            "description": self.description,
            "operations": {
                kind: sorted(op.value for op in ops) for kind, ops in self.grants.items()
            },
        }


def _ops(*ops: Operation) -> frozenset[Operation]:
    return frozenset(ops)


_D = Operation
_DESCRIBE = _ops(_D.DESCRIBE, _D.DESCRIBE_CONFIGS)
_TOPIC_ADMIN = _ops(
    _D.CREATE, _D.DELETE, _D.ALTER, _D.DESCRIBE, _D.DESCRIBE_CONFIGS, _D.ALTER_CONFIGS
)

#: The predefined roles, by name.
ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role(
            "SystemAdmin",
            True,
            dict(_APPLICABLE),
            "every operation on the cluster and on every topic, group and transactional id",
        ),
        Role(
            "ClusterAdmin",
            True,
            {
                "Cluster": _ops(
                    _D.CREATE, _D.ALTER, _D.DESCRIBE, _D.DESCRIBE_CONFIGS, _D.ALTER_CONFIGS
                ),
                "Topic": _TOPIC_ADMIN,
                "Group": _ops(_D.DESCRIBE, _D.DELETE),
            },
            "administers the cluster and its topics (create, delete, alter, configs, "
            "partitions, reassignments, leader elections) and describes or deletes groups; "
            "no reading or writing of records",
        ),
        Role(
            "Operator",
            True,
            {
                "Cluster": _DESCRIBE,
                "Topic": _DESCRIBE | {_D.ALTER_CONFIGS},
                "Group": _ops(_D.DESCRIBE, _D.READ),
                "TransactionalId": _ops(_D.DESCRIBE),
            },
            "describes everything, alters topic configs, and may act for consumer groups "
            "(Read on groups: commit offsets, join); no records, no creating or deleting",
        ),
        Role(
            "ResourceOwner",
            False,
            {kind: _APPLICABLE[kind] for kind in ("Topic", "Group", "TransactionalId")},
            "every operation on the bound topics, groups or transactional ids",
        ),
        Role(
            "DeveloperRead",
            False,
            {"Topic": _ops(_D.READ, _D.DESCRIBE), "Group": _ops(_D.READ, _D.DESCRIBE)},
            "consumes the bound topics, in the bound consumer groups",
        ),
        Role(
            "DeveloperWrite",
            False,
            {
                "Topic": _ops(_D.WRITE, _D.DESCRIBE),
                "TransactionalId": _ops(_D.WRITE, _D.DESCRIBE),
            },
            "produces to the bound topics (idempotently: KIP-679 lets Write on a topic "
            "stand for IdempotentWrite)",
        ),
        Role(
            "DeveloperManage",
            False,
            {"Topic": _TOPIC_ADMIN, "Group": _ops(_D.DESCRIBE, _D.DELETE)},
            "creates, deletes, alters and describes the bound topics and their configs, "
            "and describes or deletes the bound groups; no records",
        ),
    )
}
#: The resource types a resource-scoped role may be bound to.
BINDABLE_TYPES = ("Topic", "Group", "TransactionalId")


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """``role`` for ``principal`` on ``resource_type:resource_name`` (``pattern_type``
    LITERAL or PREFIXED; a LITERAL ``*`` covers every resource of the type)."""

    principal: str
    role: str
    resource_type: str = "Cluster"
    resource_name: str = CLUSTER_NAME
    pattern_type: str = LITERAL

    def validate(self) -> None:
        role = ROLES.get(self.role)
        if role is None:
            raise RoleError(f"no role {self.role!r} (roles: {', '.join(ROLES)})")
        try:
            kind = Principal.parse(self.principal).principal_type
        except ValueError as exc:
            raise RoleError(str(exc)) from None
        if kind not in ("User", "Group"):
            raise RoleError(f"a role is bound to User:<name> or Group:<name>, not {kind}")
        if self.pattern_type not in (LITERAL, PREFIXED):
            raise RoleError(f"pattern type {self.pattern_type!r} is not LITERAL or PREFIXED")
        if role.cluster_scoped:
            if (self.resource_type, self.resource_name, self.pattern_type) != (
                "Cluster",
                CLUSTER_NAME,
                LITERAL,
            ):
                raise RoleError(f"{self.role} is bound to the cluster (Cluster:{CLUSTER_NAME})")
            return
        if self.resource_type not in BINDABLE_TYPES:
            raise RoleError(
                f"{self.role} is bound to a resource ({', '.join(BINDABLE_TYPES)}), "
                f"not {self.resource_type}"
            )
        if not self.resource_name:
            raise RoleError("the resource name is empty")
        if self.pattern_type == PREFIXED and self.resource_name == WILDCARD:
            raise RoleError("a PREFIXED pattern cannot be the wildcard '*'")

    def covers(self, resource_type: str, name: str) -> bool:
        """Whether this binding's role applies to the resource (for the role's grants)."""
        if ROLES[self.role].cluster_scoped:
            return True
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == LITERAL:
            return self.resource_name in (name, WILDCARD)
        return name.startswith(self.resource_name)

    def on(self, resource_type: str, name: str) -> bool:
        """Whether this binding is *on* the resource, for ``allow.everyone.if.no.acl.found``:
        a resource binding whose pattern covers it, or a cluster binding for the cluster."""
        if ROLES[self.role].cluster_scoped:
            return resource_type == "Cluster"
        return self.covers(resource_type, name)

    def to_json(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "role": self.role,
            "resource_type": self.resource_type,
            "resource_name": self.resource_name,
            "pattern_type": self.pattern_type,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoleBinding:
        try:
            binding = cls(
                str(data["principal"]),
                str(data["role"]),
                str(data.get("resource_type", "Cluster")),
                str(data.get("resource_name", CLUSTER_NAME)),
                str(data.get("pattern_type", LITERAL)).upper(),
            )
        except (KeyError, TypeError) as exc:
            raise RoleError(f"a role binding needs a principal and a role ({exc})") from None
        binding.validate()
        return binding

    def __str__(self) -> str:
        where = f"{self.resource_type}:{self.resource_name}"
        if self.pattern_type == PREFIXED:
            where += " (PREFIXED)"
        return f"{self.principal} {self.role} on {where}"


def list_roles() -> list[Role]:
    """The predefined roles."""
    return list(ROLES.values())


# ---- role-bindings.json ----------------------------------------------------------------


def bindings_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / ROLE_BINDINGS_FILE


def parse_bindings(text: str, where: str) -> tuple[RoleBinding, ...]:
    """The bindings of a role bindings document (``{"version": 0, "bindings": [...]}``);
    RoleError, naming ``where``, when it is not one."""
    try:
        document = json.loads(text)
        items = document["bindings"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RoleError(f"{where}: not a role bindings document ({exc})") from None
    if not isinstance(items, list):
        raise RoleError(f"{where}: 'bindings' is not a list")
    return tuple(dict.fromkeys(RoleBinding.from_json(item) for item in items))


def bindings_document(bindings: Iterable[RoleBinding]) -> dict[str, Any]:
    """The document :func:`parse_bindings` reads (a file's, or a znode's in a cluster)."""
    return {"version": 0, "bindings": [b.to_json() for b in dict.fromkeys(bindings)]}


def read_bindings(path: str | os.PathLike[str]) -> tuple[RoleBinding, ...]:
    """The bindings in a ``role-bindings.json`` (none when the file does not exist);
    RoleError when it cannot be read as one."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return ()
    return parse_bindings(text, str(path))


def write_bindings(path: str | os.PathLike[str], bindings: Iterable[RoleBinding]) -> None:
    """Replace the file's bindings atomically (a temporary file renamed over it, fsynced),
    so a broker re-reading it sees the old table or the new one, never half of one."""
    target = Path(path)
    document = bindings_document(bindings)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".role-bindings.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def list_bindings(data_dir: str | os.PathLike[str]) -> tuple[RoleBinding, ...]:
    """The role bindings of the broker whose data directory is ``data_dir``."""
    return read_bindings(bindings_path(data_dir))


@contextlib.contextmanager
def _locked(data_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Serialise read-modify-write of the bindings between commands run at the same time
    (an advisory lock on a file beside them; the broker only reads)."""
    if not Path(data_dir).is_dir():
        raise RoleError(f"{data_dir}: no such data directory")
    with open(Path(data_dir) / ".role-bindings.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def add_binding(data_dir: str | os.PathLike[str], binding: RoleBinding) -> bool:
    """Add ``binding`` (validated first); False when it was there already."""
    binding.validate()
    with _locked(data_dir):
        current = list_bindings(data_dir)
        if binding in current:
            return False
        write_bindings(bindings_path(data_dir), (*current, binding))
        return True


def remove_binding(data_dir: str | os.PathLike[str], binding: RoleBinding) -> bool:
    """Remove ``binding``; False when there was no such binding."""
    with _locked(data_dir):
        current = list_bindings(data_dir)
        if binding not in current:
            return False
        write_bindings(bindings_path(data_dir), (b for b in current if b != binding))
        return True
