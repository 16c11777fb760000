"""ACLs in a running broker, through confluent-kafka's AdminClient, Producer and Consumer.

Plaintext connections are the principal ``User:ANONYMOUS``; the other principals the tests
name (``User:bob``) stand for everyone else, so an ACL for bob alone takes the resource away
from the anonymous client. Each test says what was tried and what must hold."""

from __future__ import annotations

import uuid

import pytest
from acl_helpers import TIMEOUT_S, binding, create, every
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from edplog.errors import InvalidConfigError

ACL_ON = {"authorizer_class_name": "kafka.security.authorizer.AclAuthorizer"}
ME = "User:ANONYMOUS"


def test_without_an_authorizer_acl_calls_answer_security_disabled(kafka_broker_factory):
    """No authorizer.class.name: everything is allowed and the ACL APIs say SECURITY_DISABLED
    (Kafka's answer), so a tool learns ACLs are off instead of seeing them ignored."""
    broker = kafka_broker_factory()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fut = admin.create_acls([binding(ResourceType.TOPIC, "t", ME, AclOperation.READ)])
    with pytest.raises(KafkaException) as info:
        list(fut.values())[0].result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.SECURITY_DISABLED


def test_acls_are_created_described_deleted_and_kept_across_a_restart(
    kafka_broker_factory, tmp_path
):
    """A super user creates literal, prefixed and group ACLs; DescribeAcls finds them by
    filter; they survive a restart (acls.json); DeleteAcls removes what its filter matches and
    lists it; an ACL that cannot exist (a cluster not named kafka-cluster) is refused alone."""
    props = {**ACL_ON, "super_users": ME}
    broker = kafka_broker_factory(tmp_path, **props)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    wanted = [
        binding(ResourceType.TOPIC, "orders", "User:bob", AclOperation.WRITE),
        binding(
            ResourceType.TOPIC,
            "pub-",
            "User:bob",
            AclOperation.READ,
            pattern=ResourcePatternType.PREFIXED,
        ),
        binding(
            ResourceType.GROUP, "billing", "User:bob", AclOperation.READ, AclPermissionType.DENY
        ),
    ]
    create(admin, wanted)
    bad = admin.create_acls([binding(ResourceType.BROKER, "main", "User:bob", AclOperation.ALTER)])
    with pytest.raises(KafkaException) as info:
        list(bad.values())[0].result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.INVALID_REQUEST
    assert "kafka-cluster" in info.value.args[0].str()

    found = admin.describe_acls(every(), request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    assert sorted(map(str, found)) == sorted(map(str, wanted))
    groups = admin.describe_acls(every(ResourceType.GROUP)).result(TIMEOUT_S)
    assert [(b.name, b.permission_type) for b in groups] == [("billing", AclPermissionType.DENY)]

    broker.stop()
    broker = kafka_broker_factory(tmp_path, **props)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    again = admin.describe_acls(every()).result(TIMEOUT_S)
    assert sorted(map(str, again)) == sorted(map(str, wanted))

    removed = list(admin.delete_acls([every(ResourceType.TOPIC)]).values())[0].result(TIMEOUT_S)
    assert sorted(b.name for b in removed) == ["orders", "pub-"]
    left = admin.describe_acls(every()).result(TIMEOUT_S)
    assert [b.name for b in left] == ["billing"]


def _produce(bootstrap: str, topic: str, **extra) -> KafkaError | None:
    """One record, the delivery error (None when acknowledged)."""
    errors: list[KafkaError | None] = []
    p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10_000, **extra})
    p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT_S)
    assert errors, "no delivery report"
    return errors[0]


def _consume_error(bootstrap: str, topic: str, group: str) -> KafkaError | None:
    """The first error a consumer of ``topic`` in ``group`` meets, or None once it reads a
    record."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    try:
        c.subscribe([topic])
        for _ in range(60):
            msg = c.poll(0.5)
            if msg is None:
                continue
            return msg.error()
        raise AssertionError("neither a record nor an error in 30 s")
    finally:
        c.close()


def test_acls_decide_produce_fetch_metadata_and_groups(kafka_broker_factory):
    """allow.everyone.if.no.acl.found=true, so resources without ACLs stay open. The anonymous
    client may Write ``orders`` and Read the prefix ``pub-`` but is DENYed ``pub-secret``;
    ``locked`` has an ACL for bob alone and group ``closed`` a DENY for everyone. Then:
    producing to ``orders`` works and to ``locked`` is TOPIC_AUTHORIZATION_FAILED (nothing is
    appended); ``locked`` is missing from the topic list; consuming ``pub-news`` works,
    ``pub-secret`` fails with TOPIC_AUTHORIZATION_FAILED (deny wins over the prefix), and a
    consumer in group ``closed`` fails with GROUP_AUTHORIZATION_FAILED; an idempotent producer
    is allowed (Write on a topic implies IdempotentWrite, KIP-679); deleting ``orders`` without
    Delete is TOPIC_AUTHORIZATION_FAILED."""
    broker = kafka_broker_factory(**ACL_ON, allow_everyone_if_no_acl_found="true")
    bootstrap = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics(
        [NewTopic(t, 1, 1) for t in ("orders", "locked", "pub-news", "pub-secret")]
    ).values():
        fut.result(TIMEOUT_S)
    assert _produce(bootstrap, "pub-news") is None
    assert _produce(bootstrap, "pub-secret") is None
    create(
        admin,
        [
            binding(ResourceType.TOPIC, "orders", ME, AclOperation.WRITE),
            binding(ResourceType.TOPIC, "orders", "User:bob", AclOperation.DELETE),
            binding(ResourceType.TOPIC, "locked", "User:bob", AclOperation.ALL),
            binding(
                ResourceType.TOPIC,
                "pub-",
                ME,
                AclOperation.READ,
                pattern=ResourcePatternType.PREFIXED,
            ),
            binding(
                ResourceType.TOPIC, "pub-secret", ME, AclOperation.READ, AclPermissionType.DENY
            ),
            binding(
                ResourceType.GROUP, "closed", "User:*", AclOperation.READ, AclPermissionType.DENY
            ),
        ],
    )
    assert _produce(bootstrap, "orders") is None
    assert _produce(bootstrap, "orders", **{"enable.idempotence": True}) is None
    refused = _produce(bootstrap, "locked")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    listed = admin.list_topics(timeout=TIMEOUT_S).topics
    assert {"orders", "pub-news", "pub-secret"} <= set(listed) and "locked" not in listed

    group = f"g-{uuid.uuid4().hex[:8]}"
    assert _consume_error(bootstrap, "pub-news", group) is None
    secret = _consume_error(bootstrap, "pub-secret", group + "-2")
    assert secret is not None and secret.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    closed = _consume_error(bootstrap, "pub-news", "closed")
    assert closed is not None and closed.code() == KafkaError.GROUP_AUTHORIZATION_FAILED

    deleted = admin.delete_topics(["orders"], request_timeout=TIMEOUT_S)["orders"]
    with pytest.raises(KafkaException) as info:
        deleted.result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert "orders" in admin.list_topics(timeout=TIMEOUT_S).topics


def test_authorizer_settings_are_read_or_refused(kafka_broker_factory, tmp_path):
    """Kafka's own authorizer class names turn ACLs on (existing server.properties keep
    working); a class edplog does not have and a malformed super.users are refused at
    start, naming the property."""
    from edplog.broker.config import BrokerConfig

    for name in (
        "kafka.security.authorizer.AclAuthorizer",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    ):
        cfg = BrokerConfig.from_properties({"authorizer.class.name": name})
        assert cfg.authorizer_enabled
    with pytest.raises(InvalidConfigError, match="authorizer.class.name"):
        BrokerConfig.from_properties({"authorizer.class.name": "com.example.MyAuthorizer"})
    with pytest.raises(InvalidConfigError, match="super.users"):
        BrokerConfig.from_properties(
            {
                "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                "super.users": "bob",
            }
        )
    clustered = BrokerConfig.from_properties(  # ACLs in ZooKeeper: tests/cluster
        {
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "zookeeper.connect": "127.0.0.1:2181",
        }
    )
    assert clustered.authorizer_enabled and clustered.clustered
