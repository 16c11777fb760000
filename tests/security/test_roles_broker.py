"""Roles in a running broker: users log in with SASL PLAIN (confluent-kafka), groups come
from ``authorizer.groups.file``, bindings are managed with the real ``edplog security``
command, and the broker follows both files while it runs. Each test says what was tried and
what must hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from acl_helpers import binding, create
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourceType,
)
from roles_helpers import TIMEOUT_S, broker_props, conf, consume, edplog, eventually, produce

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.errors import InvalidConfigError

OK = KafkaError.NO_ERROR
TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED


@pytest.fixture
def started() -> Any:
    brokers: list[BackgroundBroker] = []
    yield brokers
    for b in brokers:
        b.stop()


def start(started: list[BackgroundBroker], props: dict[str, str]) -> BackgroundBroker:
    broker = BackgroundBroker(BrokerConfig.from_properties(props)).start()
    started.append(broker)
    return broker


def test_roles_with_file_groups_decide_produce_consume_and_admin(
    tmp_path: Path, started: list[BackgroundBroker]
) -> None:
    """Before the start, ``edplog security role-bindings add`` binds DeveloperWrite and
    DeveloperRead on the topic prefix ``pay-`` and DeveloperRead on the group prefix ``app-``
    to Group:devs; the groups file puts alice in devs; a DENY ACL takes Read on pay-secret
    from Group:devs. Then: alice produces to pay-in (idempotently too: Write through a role
    stands for IdempotentWrite) and consumes it in group app-1, but reading pay-secret is
    TOPIC_AUTHORIZATION_FAILED (DENY wins over the role) and producing to misc is refused;
    bob (no group) may not produce to pay-in. After bob is added to devs in the file he
    may; after the Write binding is removed with the command (broker running), alice may
    not. A ClusterAdmin binding for carol lets her create a topic but not write to it."""
    data = tmp_path / "data"
    data.mkdir()
    groups = tmp_path / "groups.txt"
    groups.write_text("# group: members\ndevs: alice\n")
    for role, resource in (
        ("DeveloperWrite", "Topic:pay-"),
        ("DeveloperRead", "Topic:pay-"),
        ("DeveloperRead", "Group:app-"),
    ):
        done = edplog(
            "security",
            "role-bindings",
            "add",
            "--data-dir",
            str(data),
            "--principal",
            "Group:devs",
            "--role",
            role,
            "--resource",
            resource,
            "--prefixed",
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("added: Group:devs")
    broker = start(started, broker_props(str(data), authorizer_groups_file=str(groups)))
    admin = AdminClient(conf(broker, "admin"))
    for fut in admin.create_topics(
        [NewTopic(t, 1, 1) for t in ("pay-in", "pay-secret", "misc")]
    ).values():
        fut.result(TIMEOUT_S)
    deny = binding(
        ResourceType.TOPIC, "pay-secret", "Group:devs", AclOperation.READ, AclPermissionType.DENY
    )
    create(admin, [deny])
    assert produce(broker, "admin", "pay-secret") == OK

    assert produce(broker, "alice", "pay-in") == OK
    assert produce(broker, "alice", "pay-in", idempotent=True) == OK
    assert consume(broker, "alice", "pay-in", "app-1") == OK
    assert consume(broker, "alice", "pay-secret", "app-2") == TOPIC_DENIED
    assert produce(broker, "alice", "misc") == TOPIC_DENIED
    assert produce(broker, "bob", "pay-in") == TOPIC_DENIED

    groups.write_text("devs: alice, bob\n")
    eventually(lambda: produce(broker, "bob", "pay-in") == OK, "bob writes once in devs")

    removed = edplog(
        "security",
        "role-bindings",
        "remove",
        "--data-dir",
        str(data),
        "--principal",
        "Group:devs",
        "--role",
        "DeveloperWrite",
        "--resource",
        "Topic:pay-",
        "--prefixed",
    )
    assert removed.returncode == 0, removed.stderr
    eventually(
        lambda: produce(broker, "alice", "pay-in") == TOPIC_DENIED, "alice refused once unbound"
    )
    assert consume(broker, "alice", "pay-in", "app-3") == OK  # DeveloperRead stays

    added = edplog(
        "security",
        "role-bindings",
        "add",
        "--data-dir",
        str(data),
        "--principal",
        "User:carol",
        "--role",
        "ClusterAdmin",
    )
    assert added.returncode == 0, added.stderr
    carol = AdminClient(conf(broker, "carol"))

    def carol_creates() -> bool:
        fut = carol.create_topics([NewTopic("carols", 1, 1)])["carols"]
        try:
            fut.result(TIMEOUT_S)
        except Exception as exc:
            code = exc.args[0].code()
            assert code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.TOPIC_ALREADY_EXISTS)
            return code == KafkaError.TOPIC_ALREADY_EXISTS
        return True

    eventually(carol_creates, "carol creates a topic as ClusterAdmin")
    assert produce(broker, "carol", "carols") == TOPIC_DENIED


def test_security_commands_list_roles_bindings_and_acls(
    tmp_path: Path, started: list[BackgroundBroker]
) -> None:
    """``edplog security roles --json`` lists every role with its operations;
    ``role-bindings list`` reads a broker's bindings by its server.properties; adding a
    binding that cannot exist fails with a message and exit code 1. ``acls add``, ``list`` and
    ``remove`` manage a running broker's ACLs over SASL with a --command-config file (removing
    what is not there fails, the anonymous listener may not add one); alice, with an ACL
    for Group:devs she is not in, is still refused the group."""
    roles = edplog("security", "roles", "--json")
    assert roles.returncode == 0, roles.stderr
    by_name = {r["name"]: r for r in json.loads(roles.stdout)}
    assert by_name["DeveloperRead"]["operations"] == {
        "Topic": ["Describe", "Read"],
        "Group": ["Describe", "Read"],
    }
    assert by_name["SystemAdmin"]["scope"] == "cluster"

    data = tmp_path / "data"
    data.mkdir()
    props = broker_props(str(data))
    server = tmp_path / "server.properties"
    server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    added = edplog(
        "security",
        "role-bindings",
        "add",
        "--config",
        str(server),
        "--principal",
        "User:alice",
        "--role",
        "ResourceOwner",
        "--resource",
        "Topic:*",
    )
    assert added.returncode == 0, added.stderr
    listed = edplog("security", "role-bindings", "list", "--config", str(server), "--json")
    assert json.loads(listed.stdout) == [
        {
            "principal": "User:alice",
            "role": "ResourceOwner",
            "resource_type": "Topic",
            "resource_name": "*",
            "pattern_type": "LITERAL",
        }
    ]
    wrong = edplog(
        "security", "role-bindings", "add", "--data-dir", str(data),
        "--principal", "User:alice", "--role", "Operator", "--resource", "Topic:t",
    )  # fmt: skip
    assert wrong.returncode == 1 and "Operator is bound to the cluster" in wrong.stderr

    broker = start(started, props)
    client = tmp_path / "admin.properties"
    client.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.username=admin\nsasl.password=admin-secret\n"
    )
    to_broker = (
        "--bootstrap-server",
        broker.bootstrap_for("CLIENTS"),
        "--command-config",
        str(client),
    )
    acl = ("--principal", "Group:devs", "--operation", "Read", "--resource", "Group:g")
    added = edplog("security", "acls", "add", *to_broker, *acl)
    assert added.returncode == 0, added.stderr
    listed = edplog("security", "acls", "list", *to_broker)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "Group:devs ALLOW READ on GROUP:g (LITERAL) from *"
    assert consume(broker, "alice", "pay-none", "g") == KafkaError.GROUP_AUTHORIZATION_FAILED
    removed = edplog("security", "acls", "remove", *to_broker, *acl)
    assert removed.returncode == 0, removed.stderr
    again = edplog("security", "acls", "remove", *to_broker, *acl)
    assert again.returncode == 1 and "no such ACL" in again.stderr
    assert edplog("security", "acls", "list", *to_broker).stdout == ""
    anonymous = edplog("security", "acls", "add", "--bootstrap-server", broker.bootstrap, *acl)
    assert anonymous.returncode == 1 and "authoriz" in anonymous.stderr.lower()


def test_role_settings_are_refused_where_they_cannot_work(tmp_path: Path) -> None:
    """Role and group settings without authorizer.class.name and an authorizer.* setting
    edplog does not have are refused at start, naming the setting; a groups file that does
    not exist or a damaged role-bindings.json stops the start."""
    with pytest.raises(InvalidConfigError, match="authorizer.groups.file: roles and groups"):
        BrokerConfig.from_properties({"authorizer.groups.file": "/tmp/g"})
    with pytest.raises(InvalidConfigError, match="authorizer.roles.enable: this authorizer"):
        BrokerConfig.from_properties({"authorizer.roles.enable": "true"})

    missing = broker_props(str(tmp_path / "a"), authorizer_groups_file=str(tmp_path / "none"))
    with pytest.raises(RuntimeError) as info:
        BackgroundBroker(BrokerConfig.from_properties(missing)).start()
    assert isinstance(info.value.__cause__, InvalidConfigError)
    assert "authorizer.groups.file" in str(info.value.__cause__)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "role-bindings.json").write_text('{"bindings": [{"role": "Nope"}]}')
    with pytest.raises(RuntimeError) as info:
        BackgroundBroker(BrokerConfig.from_properties(broker_props(str(tmp_path / "b")))).start()
    assert isinstance(info.value.__cause__, InvalidConfigError)
    assert "needs a principal and a role" in str(info.value.__cause__)
