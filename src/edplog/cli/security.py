"""``edplog security``: the predefined roles, role bindings, and ACLs of a running broker.

``roles`` lists the roles and what each grants. ``role-bindings list|add|remove`` manage
``role-bindings.json`` in a broker's data directory (``--data-dir``, or the first of
``log.dirs`` of ``--config server.properties``); a running broker re-reads the file within
``authorizer.roles.reload.interval.ms``. ``acls list`` asks a running broker (DescribeAcls).
"""

from __future__ import annotations

import argparse
import json
import sys
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
    """Add ``security roles``, ``security role-bindings ...`` and ``security acls list``."""
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
    acl_list = acls_sub.add_parser("list", help="every ACL (DescribeAcls)")
    acl_list.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT")
    acl_list.add_argument(
        "--command-config",
        metavar="FILE",
        help="client properties (security.protocol, sasl.*, ssl.*) for the connection",
    )
    acl_list.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    acl_list.set_defaults(func=run_acls_list)


def _where(cmd: argparse.ArgumentParser) -> None:
    group = cmd.add_mutually_exclusive_group(required=True)
    group.add_argument("--data-dir", help="the broker's data directory")
    group.add_argument("--config", metavar="FILE", help="the broker's server.properties")


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
        bindings = list_bindings(_data_dir(args))
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


def run_add(args: argparse.Namespace) -> int:
    try:
        binding = _binding(args)
        added = add_binding(_data_dir(args), binding)
    except RoleError as exc:
        print(f"edplog security: {exc}", file=sys.stderr)
        return 1
    print(("added: " if added else "already there: ") + str(binding))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    try:
        binding = _binding(args)
        removed = remove_binding(_data_dir(args), binding)
    except RoleError as exc:
        print(f"edplog security: {exc}", file=sys.stderr)
        return 1
    if not removed:
        print(f"edplog security: no such role binding: {binding}", file=sys.stderr)
        return 1
    print(f"removed: {binding}")
    return 0


def run_acls_list(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    conf: dict[str, str] = {"bootstrap.servers": args.bootstrap_server}
    if args.command_config:
        from ..broker.config import parse_properties

        with open(args.command_config) as f:
            conf.update(parse_properties(f.read()))
    admin = AdminClient(conf)
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
        acls = admin.describe_acls(every, request_timeout=args.timeout).result(args.timeout)
    except KafkaException as exc:
        print(f"edplog security: {exc.args[0].str()}", file=sys.stderr)
        return 1
    for a in sorted(acls, key=str):
        print(
            f"{a.principal} {a.permission_type.name} {a.operation.name} on "
            f"{a.restype.name}:{a.name} ({a.resource_pattern_type.name}) from {a.host}"
        )
    return 0
