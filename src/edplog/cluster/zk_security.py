"""A cluster's ACLs, SCRAM credentials and role bindings in ZooKeeper, shared by every broker.

Kafka's ZooKeeper layout (names are percent-encoded where a character could not be part of a
znode name, such as ``/`` in a group id):

- ``/kafka-acl/<ResourceType>/<name>`` (LITERAL patterns) and
  ``/kafka-acl-extended/prefixed/<ResourceType>/<name>`` (PREFIXED):
  ``{"version":1,"acls":[{"principal","permissionType","operation","host"}]}``, one znode per
  resource pattern; a pattern with no ACL left is deleted.
- ``/config/users/<user>``: ``{"version":1,"config":{"SCRAM-SHA-512":"salt=<b64>,
  stored_key=<b64>,server_key=<b64>,iterations=<n>"}}``; other keys of the config (Kafka keeps
  user quotas there) are left as they are.
- ``/edplog/role-bindings``: the role bindings (edplog's own node: Kafka has no roles), the
  same document as a single broker's ``role-bindings.json``. One znode, written with the
  version it was read at; brokers watch the znode itself.

A change is one multi-op: every changed znode is written with the version it was read at
(a concurrent change by another broker fails it, and the change is computed again from a new
read), together with a sequential change notification (``/kafka-acl-changes/acl_changes_`` or
``/config/changes/config_change_``). Every broker watches the notifications and reads the
whole table again when one appears: the notification says *that* something changed, and a
full read cannot miss a change however many notifications came at once. Only the newest
notifications are kept (:data:`NOTIFICATIONS_KEPT`).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)

from ..errors import EdplogError
from ..security.acl import (
    OPERATION_ALL,
    OPERATION_CODE,
    OPERATIONS_BY_CODE,
    RESOURCE_TYPE_NAMES,
    RESOURCE_TYPES_BY_NAME,
    AclBinding,
    PatternType,
    Permission,
    ResourceType,
)
from ..security.authorizer import Operation
from ..security.roles import RoleBinding, RoleError, bindings_document, parse_bindings
from ..security.scram import ScramCredential, ScramCredentials
from .zk import ZkClient
from .zk_codec import CAS_ATTEMPTS
from .zk_session import WatchHandle

log = logging.getLogger("edplog.cluster")

ACL_LITERAL = "/kafka-acl"
ACL_PREFIXED = "/kafka-acl-extended/prefixed"
ACL_CHANGES = "/kafka-acl-changes"
ACL_CHANGE_PREFIX = "acl_changes_"
CONFIG_USERS = "/config/users"
CONFIG_CHANGES = "/config/changes"
CONFIG_CHANGE_PREFIX = "config_change_"
#: Change notifications left in place (older ones are deleted by the writer).
NOTIFICATIONS_KEPT = 20

_PERMISSIONS = {Permission.ALLOW: "Allow", Permission.DENY: "Deny"}
_PERMISSIONS_BY_NAME = {v: k for k, v in _PERMISSIONS.items()}

Pattern = tuple[int, int, str]  # (pattern type, resource type, name)
_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_ACL_BASES = ((PatternType.LITERAL, ACL_LITERAL), (PatternType.PREFIXED, ACL_PREFIXED))
_Read = dict[str, tuple[int, dict[str, Any]]]


class ZkConflictError(EdplogError):
    """A change kept meeting concurrent changes by other brokers."""


def _encode_name(name: str) -> str:
    return quote(name, safe="-._~:*@=+,")


def _pattern_path(pattern: Pattern) -> str:
    pattern_type, resource_type, name = pattern
    base = ACL_LITERAL if pattern_type == PatternType.LITERAL else ACL_PREFIXED
    return f"{base}/{RESOURCE_TYPE_NAMES[ResourceType(resource_type)]}/{_encode_name(name)}"


def _acl_entry(acl: AclBinding) -> dict[str, str]:
    op = "All" if acl.operation == OPERATION_ALL else OPERATIONS_BY_CODE[acl.operation].value
    return {
        "principal": acl.principal,
        "permissionType": _PERMISSIONS[Permission(acl.permission)],
        "operation": op,
        "host": acl.host,
    }


def _acl_from_entry(pattern: Pattern, entry: Mapping[str, Any]) -> AclBinding:
    op = str(entry["operation"])
    acl = AclBinding(
        pattern[1],
        pattern[2],
        pattern[0],
        str(entry["principal"]),
        str(entry["host"]),
        OPERATION_ALL if op == "All" else OPERATION_CODE[Operation(op)],
        _PERMISSIONS_BY_NAME[str(entry["permissionType"])],
    )
    acl.validate()
    return acl


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# ---- ACLs ------------------------------------------------------------------------------------


def read_acls(zk: ZkClient) -> tuple[list[AclBinding], dict[Pattern, int]]:
    """Every ACL, and the version each resource pattern's znode was read at."""
    kazoo = zk.kazoo
    pending = []
    for pattern_type, base in (
        (PatternType.LITERAL, ACL_LITERAL),
        (PatternType.PREFIXED, ACL_PREFIXED),
    ):
        for type_name in _children(zk, base):
            resource_type = RESOURCE_TYPES_BY_NAME.get(type_name)
            if resource_type is None:
                continue
            for child in _children(zk, f"{base}/{type_name}"):
                pattern = (int(pattern_type), int(resource_type), unquote(child))
                pending.append((pattern, kazoo.get_async(f"{base}/{type_name}/{child}")))
    acls: list[AclBinding] = []
    versions: dict[Pattern, int] = {}
    for pattern, result in pending:
        try:
            data, stat = result.get()
        except NoNodeError:
            continue  # deleted between the listing and the read
        versions[pattern] = stat.version
        try:
            entries = json.loads(data.decode())["acls"] if data else []
            acls.extend(_acl_from_entry(pattern, e) for e in entries)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("ACLs of %s in ZooKeeper cannot be read (skipped): %s", pattern, exc)
    return acls, versions


def change_acls(
    zk: ZkClient, make: Callable[[tuple[AclBinding, ...]], Iterable[AclBinding]]
) -> tuple[AclBinding, ...]:
    """Write ``make(current ACLs)`` (see the module docstring); the new table."""
    for _ in range(CAS_ATTEMPTS):
        current, versions = read_acls(zk)
        new = tuple(dict.fromkeys(make(tuple(current))))
        before = _by_pattern(current)
        after = _by_pattern(new)
        ops = zk.kazoo.transaction()
        changed = False
        for pattern in sorted(set(before) | set(after), key=repr):
            old, wanted = before.get(pattern, []), after.get(pattern, [])
            if old == wanted:
                continue
            changed = True
            path = _pattern_path(pattern)
            body = _json({"version": 1, "acls": [_acl_entry(a) for a in wanted]})
            if pattern not in versions:
                zk.kazoo.ensure_path(path.rsplit("/", 1)[0])
                ops.create(path, body)
            elif wanted:
                ops.set_data(path, body, version=versions[pattern])
            else:
                ops.delete(path, version=versions[pattern])
        if not changed:
            return new
        _notify(zk, ops, ACL_CHANGES, ACL_CHANGE_PREFIX, {"version": 1})
        if _committed(ops):
            _trim(zk, ACL_CHANGES)
            return new
    raise ZkConflictError("the ACLs kept changing under this change: try again")


def _by_pattern(acls: Iterable[AclBinding]) -> dict[Pattern, list[AclBinding]]:
    out: dict[Pattern, list[AclBinding]] = {}
    for acl in acls:
        out.setdefault((acl.pattern_type, acl.resource_type, acl.resource_name), []).append(acl)
    return out


def watch_acls(zk: ZkClient, cb: Callable[[], None]) -> WatchHandle:
    """cb() now and after every change any broker makes (on a kazoo thread)."""
    zk.kazoo.ensure_path(ACL_CHANGES)
    return zk.watch_children(ACL_CHANGES, lambda _: cb())


# ---- SCRAM credentials -----------------------------------------------------------------------


def _scram_text(c: ScramCredential) -> str:
    b64 = base64.b64encode
    return (
        f"salt={b64(c.salt).decode()},stored_key={b64(c.stored_key).decode()},"
        f"server_key={b64(c.server_key).decode()},iterations={c.iterations}"
    )


def _scram_from_text(mechanism: str, text: str) -> ScramCredential:
    fields = dict(item.split("=", 1) for item in text.split(","))
    return ScramCredential(
        mechanism,
        base64.b64decode(fields["salt"]),
        int(fields["iterations"]),
        base64.b64decode(fields["stored_key"]),
        base64.b64decode(fields["server_key"]),
    )


def read_credentials(
    zk: ZkClient,
) -> tuple[ScramCredentials, dict[str, tuple[int, dict[str, Any]]]]:
    """Every user's SCRAM credentials, and per user the znode version and whole config."""
    kazoo = zk.kazoo
    pending = [
        (unquote(c), kazoo.get_async(f"{CONFIG_USERS}/{c}")) for c in _children(zk, CONFIG_USERS)
    ]
    table: dict[str, dict[str, ScramCredential]] = {}
    read: _Read = {}
    for user, result in pending:
        try:
            data, stat = result.get()
        except NoNodeError:
            continue
        try:
            config = dict(json.loads(data.decode()).get("config") or {}) if data else {}
            creds = {m: _scram_from_text(m, str(v)) for m, v in config.items() if m in _SCRAM}
        except (ValueError, KeyError, TypeError) as exc:
            log.error("the credentials of %r in ZooKeeper cannot be read (skipped): %s", user, exc)
            continue
        read[user] = (stat.version, config)
        if creds:
            table[user] = creds
    return ScramCredentials(table), read


def change_credentials(
    zk: ZkClient, make: Callable[[ScramCredentials], ScramCredentials]
) -> ScramCredentials:
    """Write ``make(current credentials)``; the new table."""
    zk.kazoo.ensure_path(CONFIG_USERS, acl=zk.acl_for(CONFIG_USERS))
    for _ in range(CAS_ATTEMPTS):
        current, read = read_credentials(zk)
        new = make(current)
        ops = zk.kazoo.transaction()
        changed = []
        for user in sorted(set(current.users()) | set(new.users())):
            old, wanted = current.of(user), new.of(user)
            if old == wanted:
                continue
            changed.append(user)
            version, config = read.get(user, (-1, {}))
            config = {
                k: v for k, v in config.items() if k not in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            }
            config.update({m: _scram_text(c) for m, c in sorted(wanted.items())})
            path = f"{CONFIG_USERS}/{_encode_name(user)}"
            body = _json({"version": 1, "config": config})
            if user not in read:
                ops.create(path, body, acl=zk.acl_for(path))
            elif config:
                ops.set_data(path, body, version=version)
            else:
                ops.delete(path, version=version)
        if not changed:
            return new
        for user in changed:
            entity = {"version": 2, "entity_path": f"users/{_encode_name(user)}"}
            _notify(zk, ops, CONFIG_CHANGES, CONFIG_CHANGE_PREFIX, entity)
        if _committed(ops):
            _trim(zk, CONFIG_CHANGES)
            return new
    raise ZkConflictError("the SCRAM credentials kept changing under this change: try again")


def watch_credentials(zk: ZkClient, cb: Callable[[], None]) -> WatchHandle:
    """cb() now and after every change any broker makes (on a kazoo thread)."""
    for path in (CONFIG_USERS, CONFIG_CHANGES):
        zk.kazoo.ensure_path(path, acl=zk.acl_for(path))
    return zk.watch_children(CONFIG_CHANGES, lambda _: cb())


# ---- role bindings ---------------------------------------------------------------------------

ROLE_BINDINGS = "/edplog/role-bindings"


def _role_bindings(data: bytes | None) -> tuple[RoleBinding, ...]:
    return parse_bindings(data.decode(), f"ZooKeeper {ROLE_BINDINGS}") if data else ()


def read_role_bindings(zk: ZkClient) -> tuple[tuple[RoleBinding, ...], int]:
    """The cluster's role bindings and the znode's version (-1: none stored yet)."""
    try:
        data, stat = zk.kazoo.get(ROLE_BINDINGS)
    except NoNodeError:
        return (), -1
    return _role_bindings(data), stat.version


def change_role_bindings(
    zk: ZkClient, make: Callable[[tuple[RoleBinding, ...]], tuple[RoleBinding, ...]]
) -> tuple[RoleBinding, ...]:
    """Write ``make(current bindings)``; the new bindings."""
    for _ in range(CAS_ATTEMPTS):
        current, version = read_role_bindings(zk)
        new = make(current)
        if new == current:
            return new
        body = _json(bindings_document(new))
        try:
            if version < 0:
                zk.kazoo.ensure_path("/edplog", acl=zk.acl_for("/edplog"))
                zk.kazoo.create(ROLE_BINDINGS, body, acl=zk.acl_for(ROLE_BINDINGS))
            else:
                zk.kazoo.set(ROLE_BINDINGS, body, version=version)
            return new
        except (BadVersionError, NodeExistsError, NoNodeError):
            continue
    raise ZkConflictError("the role bindings kept changing under this change: try again")


def watch_role_bindings(zk: ZkClient, cb: Callable[[tuple[RoleBinding, ...]], None]) -> WatchHandle:
    """cb(bindings) now and after every change (on a kazoo thread); a znode that cannot be
    read keeps the bindings in force (logged)."""

    def changed(data: bytes | None) -> None:
        try:
            bindings = _role_bindings(data)
        except RoleError as exc:
            log.error("role bindings not re-read (those in force stay): %s", exc)
            return
        cb(bindings)

    return zk.watch_path(ROLE_BINDINGS, changed)


# ---- shared ----------------------------------------------------------------------------------


def _children(zk: ZkClient, path: str) -> list[str]:
    try:
        return sorted(zk.kazoo.get_children(path))
    except NoNodeError:
        return []


def _notify(zk: ZkClient, ops: Any, parent: str, prefix: str, body: object) -> None:
    zk.kazoo.ensure_path(parent)
    ops.create(f"{parent}/{prefix}", _json(body), sequence=True)


def _committed(ops: Any) -> bool:
    """Commit; False when a version check failed (another broker changed something)."""
    results = ops.commit()
    conflicts = (BadVersionError, NodeExistsError, NoNodeError, NotEmptyError)
    if any(isinstance(r, conflicts) for r in results):
        return False
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, RolledBackError):
            raise result
    return True


def _trim(zk: ZkClient, parent: str) -> None:
    """Delete all but the newest notifications (their sequence numbers sort in order)."""
    for old in _children(zk, parent)[:-NOTIFICATIONS_KEPT]:
        try:
            zk.kazoo.delete(f"{parent}/{old}")
        except NoNodeError:
            pass
