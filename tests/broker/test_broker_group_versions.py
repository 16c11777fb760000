"""The current group and offset API versions with real clients against the real broker:
FindCoordinator's batched keys, OffsetFetch batches of groups, OffsetDelete, and
transactional producers failing at once (transactions are not served yet)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest
from broker_helpers import RawClient, wait_until

from edplog.errors import ErrorCode

FIND_COORDINATOR, OFFSET_COMMIT = 10, 8
METADATA_LOGGER = "edplog.broker.api.metadata"
FAIL_FAST_S = 15.0  # generous: the clients retried for their whole timeout before


def _admin(bootstrap: str) -> Any:
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)


def test_find_coordinator_v4_to_v6_answer_each_key_with_its_own_error(kafka_broker: str) -> None:
    """FindCoordinator v4-6 with a batch of group ids (one empty) and a batch of
    transactional ids: each group key gets this node or its own error, each transactional key
    a fatal error with a message naming the cause; an unknown key type is INVALID_REQUEST."""
    with RawClient(kafka_broker) as c:
        port = int(kafka_broker.rsplit(":", 1)[1])
        for version in (4, 5, 6):
            body = {"key_type": 0, "coordinator_keys": ["g1", "", "g2"]}
            got = c.call(FIND_COORDINATOR, version, body)["coordinators"]
            assert [(k["key"], k["error_code"]) for k in got] == [
                ("g1", ErrorCode.NONE),
                ("", ErrorCode.COORDINATOR_NOT_AVAILABLE),
                ("g2", ErrorCode.NONE),
            ]
            assert got[0]["port"] == port and got[0]["node_id"] >= 0
            txn = c.call(FIND_COORDINATOR, version, {"key_type": 1, "coordinator_keys": ["t"]})
            (entry,) = txn["coordinators"]
            assert entry["error_code"] == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            assert "not supported" in entry["error_message"] and entry["node_id"] == -1
            share = c.call(FIND_COORDINATOR, version, {"key_type": 2, "coordinator_keys": ["s"]})
            assert share["coordinators"][0]["error_code"] == ErrorCode.INVALID_REQUEST
        old = c.call(FIND_COORDINATOR, 3, {"key": "t", "key_type": 1})
        assert old["error_code"] == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert "transactional.id 't'" in old["error_message"]


def test_offset_commit_v10_names_topics_by_id(kafka_broker: str) -> None:
    """OffsetCommit v10 with a topic's real id and a random one: the first is committed (an
    admin client reads it back by name), the second is UNKNOWN_TOPIC_ID."""
    from kafka import TopicPartition
    from kafka.admin import NewTopic

    admin = _admin(kafka_broker)
    try:
        admin.create_topics([NewTopic("byid", 1, 1)])
        topic_id = admin.describe_topics(["byid"])[0]["topic_id"]
        with RawClient(kafka_broker) as c:
            part = {"partition_index": 0, "committed_offset": 11, "committed_metadata": "m"}
            body = {
                "group_id": "ids",
                "generation_id_or_member_epoch": -1,
                "member_id": "",
                "topics": [
                    {"topic_id": uuid.UUID(str(topic_id)), "partitions": [part]},
                    {"topic_id": uuid.uuid4(), "partitions": [part]},
                ],
            }
            got = c.call(OFFSET_COMMIT, 10, body)["topics"]
        assert [t["partitions"][0]["error_code"] for t in got] == [
            ErrorCode.NONE,
            ErrorCode.UNKNOWN_TOPIC_ID,
        ]
        committed = admin.list_group_offsets({"ids": None})["ids"]
        assert committed[TopicPartition("byid", 0)].offset == 11
    finally:
        admin.close()


def test_offset_delete_with_kafka_python_admin_survives_restart(
    kafka_broker_factory: Any, tmp_path: Any
) -> None:
    """kafka-python's KafkaAdminClient sets offsets of an empty group on topics a and b, a
    consumer joins subscribed to a; deleting a-0 and b-0 then deletes only b-0 (a-0 is
    GROUP_SUBSCRIBED_TO_TOPIC); once the consumer left, a-0 goes too; an unknown group is
    GroupIdNotFound. One batched OffsetFetch (v8+) lists both groups; after a restart on the
    same data directory only a-1 is still committed."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import GroupIdNotFoundError, GroupSubscribedToTopicError, NoError
    from kafka.structs import OffsetAndMetadata

    a0, a1, b0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
    broker = kafka_broker_factory(tmp_path)
    admin = _admin(broker.bootstrap)
    try:
        admin.create_topics([NewTopic("a", 2, 1), NewTopic("b", 1, 1)])
        offsets = {tp: OffsetAndMetadata(5 + i, "", -1) for i, tp in enumerate((a0, a1, b0))}
        assert set(admin.alter_group_offsets("og", offsets).values()) == {NoError}
        admin.alter_group_offsets("other", {b0: OffsetAndMetadata(3, "", -1)})
        consumer = KafkaConsumer(
            "a",
            bootstrap_servers=broker.bootstrap,
            group_id="og",
            enable_auto_commit=False,
            session_timeout_ms=10000,
        )
        try:
            assert wait_until(lambda: consumer.poll(100) is not None and consumer.assignment())
            result = admin.delete_group_offsets("og", [a0, b0])
            assert result == {a0: GroupSubscribedToTopicError, b0: NoError}
        finally:
            consumer.close()
        assert admin.delete_group_offsets("og", [a0]) == {a0: NoError}
        with pytest.raises(GroupIdNotFoundError):
            admin.delete_group_offsets("never-seen", [a0])
        both = admin.list_group_offsets({"og": None, "other": None})
        assert {tp: m.offset for tp, m in both["og"].items()} == {a1: 6}
        assert {tp: m.offset for tp, m in both["other"].items()} == {b0: 3}
    finally:
        admin.close()
    broker.stop()
    broker = kafka_broker_factory(tmp_path)
    admin = _admin(broker.bootstrap)
    try:
        after = admin.list_group_offsets({"og": None})["og"]
        assert {tp: m.offset for tp, m in after.items()} == {a1: 6}
    finally:
        admin.close()


def _confluent_init(bootstrap: str) -> None:
    from confluent_kafka import Producer

    Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-ck"}).init_transactions(30)


def _kafka_python_init(bootstrap: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id="tx-kp", max_block_ms=30000
    )
    try:
        producer.init_transactions()
    finally:
        producer.close(timeout=5)


def _aiokafka_init(bootstrap: str) -> None:
    from aiokafka import AIOKafkaProducer

    async def main() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="tx-aio")
        try:
            await asyncio.wait_for(producer.start(), 30)
        finally:
            await asyncio.wait_for(producer.stop(), 10)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("init", "transactional_id", "shows_message"),
    [
        (_confluent_init, "tx-ck", True),
        (_kafka_python_init, "tx-kp", False),
        (_aiokafka_init, "tx-aio", False),
    ],
    ids=["confluent-kafka", "kafka-python", "aiokafka"],
)
def test_transactional_producers_fail_fast_naming_the_cause(
    kafka_broker: str,
    caplog: pytest.LogCaptureFixture,
    init: Any,
    transactional_id: str,
    shows_message: bool,
) -> None:
    """Each client's init_transactions() (aiokafka: start()) with a transactional id fails
    well within its 30 s timeout with the transactional-id error (a fatal one, not a
    retried COORDINATOR_NOT_AVAILABLE); librdkafka also shows the broker's message; the
    broker logs why, naming the id."""
    caplog.set_level(logging.WARNING, logger=METADATA_LOGGER)
    started = time.monotonic()
    with pytest.raises(Exception) as failure:
        init(kafka_broker)
    elapsed = time.monotonic() - started
    assert elapsed < FAIL_FAST_S, elapsed
    text = f"{type(failure.value).__name__} {failure.value}".lower().replace(" ", "")
    assert "transactionalid" in text and "authorization" in text, text
    if shows_message:
        assert "transactionsarenotsupported" in text, text
    lines = [r.getMessage() for r in caplog.records if r.name == METADATA_LOGGER]
    assert any(
        "transactions are not supported" in m and repr(transactional_id) in m for m in lines
    ), lines
