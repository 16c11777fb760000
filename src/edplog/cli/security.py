"""``edplog security``: the predefined roles, role bindings, and ACLs of a running broker.

``roles`` lists the roles and what each grants. ``role-bindings list|add|remove`` manage
``role-bindings.json`` in a broker's data directory (``--data-dir``, or the first of
``log.dirs`` of ``--config server.properties``); a running broker re-reads the file within
``authorizer.roles.reload.interval.ms``. A cluster's bindings are in ZooKeeper
(``--zookeeper HOST:PORT[/chroot]``, or ``--config`` of a broker with ``zookeeper.connect``,
whose ZooKeeper TLS settings are used too); every broker of it watches them.
``acls list|add|remove`` talk to a running broker (DescribeAcls, CreateAcls, DeleteAcls)
with confluent-kafka's admin client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from ..security.roles import (
    CLUSTER_NAME,
    LITERAL,
    PREFIXED,
    RoleBinding,
    RoleError,
    add_binding,
    list_bindings,
    list_roles,
    remove_binding,
)


def register(commands: Any, perf: Any) -> None:
    """Add ``security roles``, ``security role-bindings ...`` and ``security acls ...``."""
    p = commands.add_parser("security", help="roles, role bindings and ACLs")
    sub = p.add_subparsers(dest="security_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _usage(p))

    roles = sub.add_parser("roles", help="the predefined roles and what each grants")
    roles.add_argument("--json", action="store_true", help="print JSON")
    roles.set_defaults(func=run_roles)

    rb = sub.add_parser("role-bindings", help="list, add or remove role bindings")
    rb_sub = rb.add_subparsers(dest="role_bindings_command", metavar="ACTION")
    rb.set_defaults(func=lambda args: _usage(rb))
    listing = rb_sub.add_parser("list", help="the role bindings of a broker")
    _where(listing)
    listing.add_argument("--principal", help="only this principal's (User:x or Group:y)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)
    for name, func, text in (
        ("add", run_add, "add a role binding"),
        ("remove", run_remove, "remove a role binding"),
    ):
        cmd = rb_sub.add_parser(name, help=text)
        _where(cmd)
        cmd.add_argument("--principal", required=True, help="User:<name> or Group:<name>")
        cmd.add_argument("--role", required=True, help="a role of `edplog security roles`")
        cmd.add_argument(
            "--resource",
            metavar="TYPE:NAME",
            help="Topic:<name>, Group:<name> or TransactionalId:<name> (a name of * is "
            "every one); omitted for a cluster role",
        )
        cmd.add_argument(
            "--prefixed", action="store_true", help="the name is a prefix (PREFIXED pattern)"
        )
        cmd.set_defaults(func=func)

    acls = sub.add_parser("acls", help="ACLs of a running broker")
    acls_sub = acls.add_subparsers(dest="acls_command", metavar="ACTION")
    acls.set_defaults(func=lambda args: _usage(acls))
    for name, func, text in (
        ("list", run_acls_list, "every ACL (DescribeAcls)"),
        ("add", run_acls_add, "add one ACL (CreateAcls)"),
        ("remove", run_acls_remove, "remove one ACL (DeleteAcls)"),
    ):
        cmd = acls_sub.add_parser(name, help=text)
        cmd.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT")
        cmd.add_argument(
            "--command-config",
            metavar="FILE",
            help="client properties (security.protocol, sasl.*, ssl.*) for the connection",
        )
        cmd.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
        cmd.set_defaults(func=func)
        if name == "list":
            continue
        cmd.add_argument("--principal", required=True, help="User:<name>, User:* or Group:<name>")
        cmd.add_argument(
            "--operation", required=True, help="Read, Write, Create, Delete, Alter, Describe, ..."
        )
        cmd.add_argument(
            "--resource",
            required=True,
            metavar="TYPE:NAME",
            help="Topic:<name>, Group:<name>, Cluster:kafka-cluster, TransactionalId:<name>",
        )
        cmd.add_argument("--prefixed", action="store_true", help="a PREFIXED pattern")
        cmd.add_argument("--deny", action="store_true", help="DENY (default ALLOW)")
        cmd.add_argument("--host", default="*", help="the client address (default *)")


def _where(cmd: argparse.ArgumentParser) -> None:
    group = cmd.add_mutually_exclusive_group(required=True)
    group.add_argument("--data-dir", help="the broker's data directory")
    group.add_argument("--config", metavar="FILE", help="the broker's server.properties")
    group.add_argument(
        "--zookeeper", metavar="HOST:PORT[/CHROOT]", help="a cluster's ZooKeeper (its bindings)"
    )


@contextlib.contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[Any]:
    """The cluster's ZooKeeper client when the arguments name a cluster, else None."""
    connect, tls, set_acl = args.zookeeper, None, False
    if connect is None and args.config:
        from ..broker.config import load_config
        from ..broker.zookeeper_settings import zookeeper_context

        config = load_config(args.config)
        connect = config.zookeeper_connect
        if connect is not None:
            tls, set_acl = zookeeper_context(config.zookeeper_tls), config.zookeeper_set_acl
    if connect is None:
        yield None
        return
    from ..cluster.zk import ZkClient

    zk = ZkClient(connect, tls=tls, set_acl=set_acl)
    try:
        zk.start()
    except Exception as exc:  # noqa: BLE001 - kazoo's timeouts and connection errors
        raise RoleError(f"cannot reach ZooKeeper at {connect}: {exc}") from None
    try:
        yield zk
    finally:
        zk.stop()


def _bindings(args: argparse.Namespace) -> tuple[RoleBinding, ...]:
    with _cluster(args) as zk:
        if zk is None:
            return list_bindings(_data_dir(args))
        from ..cluster import zk_security

        return zk_security.read_role_bindings(zk)[0]


def _change(args: argparse.Namespace, binding: RoleBinding, add: bool) -> bool:
    """Add or remove ``binding`` where the arguments say; whether it changed anything."""
    with _cluster(args) as zk:
        if zk is None:
            edit = add_binding if add else remove_binding
            return edit(_data_dir(args), binding)
        from ..cluster import zk_security

        if add:
            binding.validate()
        changed: list[bool] = []

        def make(current: tuple[RoleBinding, ...]) -> tuple[RoleBinding, ...]:
            changed[:] = [(binding in current) != add]
            if not changed[0]:
                return current
            return (*current, binding) if add else tuple(b for b in current if b != binding)

        zk_security.change_role_bindings(zk, make)
        return changed[0]


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _data_dir(args: argparse.Namespace) -> str:
    if args.data_dir:
        return str(args.data_dir)
    from ..broker.config import load_config

    return load_config(args.config).data_dir


def run_roles(args: argparse.Namespace) -> int:
    roles = list_roles()
    if args.json:
        print(json.dumps([r.to_json() for r in roles], indent=2))
        return 0
    for role in roles:
        scope = "cluster" if role.cluster_scoped else "resource"
        print(f"{role.name} ({scope}): {role.description}")
        for kind, ops in role.grants.items():
            print(f"    {kind}: {', '.join(sorted(op.value for op in ops))}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        bindings = _bindings(args)
    except RoleError as exc:
        print(f"edplog security: {exc}", file=sys.stderr)
        return 1
    if args.principal:
        bindings = tuple(b for b in bindings if b.principal == args.principal)
    if args.json:
        print(json.dumps([b.to_json() for b in bindings], indent=2))
    else:
        for b in bindings:
            print(b)
    return 0


def _binding(args: argparse.Namespace) -> RoleBinding:
    if args.resource is None:
        if args.prefixed:
            raise RoleError("--prefixed needs --resource")
        return RoleBinding(args.principal, args.role)
    kind, sep, name = args.resource.partition(":")
    if not sep or not name:
        raise RoleError(f"--resource is TYPE:NAME (Topic:orders), not {args.resource!r}")
    if kind == "Cluster" and name == CLUSTER_NAME and not args.prefixed:
        return RoleBinding(args.principal, args.role)
    return RoleBinding(
        args.principal, args.role, kind, name, PREFIXED if args.prefixed else LITERAL
    )


def _edit(args: argparse.Namespace, add: bool) -> bool | None:
    """Add or remove the binding the arguments name: whether it changed anything, or None
    (said on stderr) when the arguments or the stored bindings are wrong."""
    try:
        return _change(args, _binding(args), add)
    except RoleError as exc:
        print(f"edplog security: {exc}", file=sys.stderr)
        return None


def run_add(args: argparse.Namespace) -> int:
    added = _edit(args, True)
    if added is None:
        return 1
    print(("added: " if added else "already there: ") + str(_binding(args)))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    removed = _edit(args, False)
    if removed is None:
        return 1
    if not removed:
        print(f"edplog security: no such role binding: {_binding(args)}", file=sys.stderr)
        return 1
    print(f"removed: {_binding(args)}")
    return 0


def _admin(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import AdminClient

    conf: dict[str, str] = {"bootstrap.servers": args.bootstrap_server}
    if args.command_config:
        from ..broker.config import parse_properties

        with open(args.command_config) as f:
            conf.update(parse_properties(f.read()))
    return AdminClient(conf)


_RESOURCE_TYPES = {
    "topic": "TOPIC",
    "group": "GROUP",
    "cluster": "BROKER",  # confluent-kafka's name for the cluster resource
    "transactionalid": "TRANSACTIONAL_ID",
}


def _acl(args: argparse.Namespace) -> Any:
    """The one ACL the arguments describe, as confluent-kafka's AclBinding."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    kind, sep, name = args.resource.partition(":")
    if not sep or not name or kind.lower() not in _RESOURCE_TYPES:
        raise ValueError(
            f"--resource is Topic:, Group:, Cluster: or TransactionalId:<name>, not "
            f"{args.resource!r}"
        )
    op = args.operation.replace("_", "").lower()
    ops = {o.name.replace("_", "").lower(): o for o in AclOperation}
    if op not in ops or op in ("any", "unknown"):
        raise ValueError(f"--operation {args.operation!r} is not an ACL operation")
    return AclBinding(
        ResourceType[_RESOURCE_TYPES[kind.lower()]],
        name,
        ResourcePatternType.PREFIXED if args.prefixed else ResourcePatternType.LITERAL,
        args.principal,
        args.host,
        ops[op],
        AclPermissionType.DENY if args.deny else AclPermissionType.ALLOW,
    )


def _show(a: Any) -> str:
    return (
        f"{a.principal} {a.permission_type.name} {a.operation.name} on "
        f"{a.restype.name}:{a.name} ({a.resource_pattern_type.name}) from {a.host}"
    )


def run_acls_list(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    every = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        admin = _admin(args)  # kept referenced until the answer: its futures need it
        found = admin.describe_acls(every, request_timeout=args.timeout).result(args.timeout)
    except KafkaException as exc:
        print(f"edplog security: {exc.args[0].str()}", file=sys.stderr)
        return 1
    for line in sorted(_show(a) for a in found):
        print(line)
    return 0


def run_acls_add(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    try:
        acl = _acl(args)
        admin = _admin(args)
        for fut in admin.create_acls([acl], request_timeout=args.timeout).values():
            fut.result(args.timeout)
    except (ValueError, KafkaException) as exc:
        why = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        print(f"edplog security: {why}", file=sys.stderr)
        return 1
    print(f"added: {_show(acl)}")
    return 0


def run_acls_remove(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AclBindingFilter

    try:
        acl = _acl(args)
        exact = AclBindingFilter(
            acl.restype,
            acl.name,
            acl.resource_pattern_type,
            acl.principal,
            acl.host,
            acl.operation,
            acl.permission_type,
        )
        removed = []
        admin = _admin(args)
        for fut in admin.delete_acls([exact], request_timeout=args.timeout).values():
            removed += fut.result(args.timeout)
    except (ValueError, KafkaException) as exc:
        why = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        print(f"edplog security: {why}", file=sys.stderr)
        return 1
    if not removed:
        print(f"edplog security: no such ACL: {_show(acl)}", file=sys.stderr)
        return 1
    print(f"removed: {_show(acl)}")
    return 0
