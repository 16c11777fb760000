"""OffsetFetch v10 (topics named by id) and ListOffsets v11 (EARLIEST_PENDING_UPLOAD, KIP-1023)
against the real broker over real sockets, in explicit versions with our raw client."""

from __future__ import annotations

import uuid

from broker_helpers import RawClient, batch, create_topic, produce_body

from edplog.errors import ErrorCode

LIST_OFFSETS, OFFSET_COMMIT, OFFSET_FETCH, METADATA, DELETE_TOPICS = 2, 8, 9, 3, 20


def _topic_id(c: RawClient, name: str) -> uuid.UUID:
    body = {"topics": [{"topic_id": None, "name": name}], "allow_auto_topic_creation": False}
    topic_id: uuid.UUID = c.call(METADATA, 12, body)["topics"][0]["topic_id"]
    assert topic_id is not None and topic_id.int != 0
    return topic_id


def _commit(c: RawClient, group: str, topic: str, offsets: dict[int, int]) -> None:
    parts = [
        {"partition_index": p, "committed_offset": o, "committed_metadata": f"m{p}"}
        for p, o in offsets.items()
    ]
    body = {
        "group_id": group,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "topics": [{"name": topic, "partitions": parts}],
    }
    got = c.call(OFFSET_COMMIT, 9, body)["topics"][0]["partitions"]
    assert [p["error_code"] for p in got] == [ErrorCode.NONE] * len(offsets)


def _fetch(c: RawClient, version: int, group: str, topics: list[dict] | None) -> dict:
    body = {
        "groups": [{"group_id": group, "member_id": None, "member_epoch": -1, "topics": topics}],
        "require_stable": False,
    }
    (answer,) = c.call(OFFSET_FETCH, version, body)["groups"]
    assert answer["group_id"] == group
    return answer


def _rows(topic: dict) -> list[tuple[int, int, str, int]]:
    return [
        (p["partition_index"], p["committed_offset"], p["metadata"], p["error_code"])
        for p in topic["partitions"]
    ]


def test_offset_fetch_v10_reads_committed_offsets_by_topic_id(kafka_broker: str) -> None:
    """Offsets committed by name to two partitions are read back with OffsetFetch v10 naming
    the topic by the id Metadata gives: the answer carries that id and the committed offsets
    and metadata; a partition never committed is -1 with no error; a random id is
    UNKNOWN_TOPIC_ID on every partition asked, next to the known topic in the same request."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "f10", partitions=3)
        topic_id = _topic_id(c, "f10")
        _commit(c, "g10", "f10", {0: 5, 1: 9})
        stranger = uuid.uuid4()
        got = _fetch(
            c,
            10,
            "g10",
            [
                {"topic_id": topic_id, "partition_indexes": [0, 1, 2]},
                {"topic_id": stranger, "partition_indexes": [0, 4]},
            ],
        )
        assert got["error_code"] == ErrorCode.NONE
        known, unknown = got["topics"]
        assert known["topic_id"] == topic_id
        assert _rows(known) == [
            (0, 5, "m0", ErrorCode.NONE),
            (1, 9, "m1", ErrorCode.NONE),
            (2, -1, "", ErrorCode.NONE),
        ]
        assert unknown["topic_id"] == stranger
        assert [
            (p["partition_index"], p["committed_offset"], p["error_code"])
            for p in unknown["partitions"]
        ] == [
            (0, -1, ErrorCode.UNKNOWN_TOPIC_ID),
            (4, -1, ErrorCode.UNKNOWN_TOPIC_ID),
        ]
        # v9 still names the same offsets by name
        (by_name,) = _fetch(c, 9, "g10", [{"name": "f10", "partition_indexes": [1]}])["topics"]
        assert by_name["name"] == "f10" and _rows(by_name) == [(1, 9, "m1", ErrorCode.NONE)]


def test_offset_fetch_v10_all_topics_answers_ids_and_leaves_out_deleted_topics(
    kafka_broker: str,
) -> None:
    """A group commits to two topics, then one is deleted. OffsetFetch v10 for all topics
    (topics null) names the remaining one by its id with its offset and leaves the deleted one
    out; asking for the deleted topic's old id answers UNKNOWN_TOPIC_ID."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "keep10")
        create_topic(c, "gone10")
        keep_id, gone_id = _topic_id(c, "keep10"), _topic_id(c, "gone10")
        _commit(c, "gall", "keep10", {0: 3})
        _commit(c, "gall", "gone10", {0: 4})
        before = _fetch(c, 10, "gall", None)["topics"]
        assert {t["topic_id"]: _rows(t) for t in before} == {
            keep_id: [(0, 3, "m0", ErrorCode.NONE)],
            gone_id: [(0, 4, "m0", ErrorCode.NONE)],
        }
        deleted = c.call(DELETE_TOPICS, 4, {"topic_names": ["gone10"], "timeout_ms": 5000})
        assert deleted["responses"][0]["error_code"] == ErrorCode.NONE
        after = _fetch(c, 10, "gall", None)
        assert after["error_code"] == ErrorCode.NONE
        assert [(t["topic_id"], _rows(t)) for t in after["topics"]] == [
            (keep_id, [(0, 3, "m0", ErrorCode.NONE)])
        ]
        (old,) = _fetch(c, 10, "gall", [{"topic_id": gone_id, "partition_indexes": [0]}])["topics"]
        assert old["topic_id"] == gone_id
        assert old["partitions"][0]["error_code"] == ErrorCode.UNKNOWN_TOPIC_ID
        assert old["partitions"][0]["committed_offset"] == -1


def test_offset_fetch_unknown_group_empty_group_id_and_v9_empty_name(kafka_broker: str) -> None:
    """v10 for a group that never committed answers -1 per asked partition with no error (as
    Kafka does); an empty group id is INVALID_GROUP_ID; and v9 asking for a topic by an empty
    name answers -1 with no error (UNKNOWN_TOPIC_ID belongs to v10's ids only)."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "nog10")
        topic_id = _topic_id(c, "nog10")
        asked = [{"topic_id": topic_id, "partition_indexes": [0]}]
        (topic,) = _fetch(c, 10, "never-committed", asked)["topics"]
        assert topic["topic_id"] == topic_id and _rows(topic) == [(0, -1, "", ErrorCode.NONE)]
        assert _fetch(c, 10, "", asked)["error_code"] == ErrorCode.INVALID_GROUP_ID
        (empty,) = _fetch(c, 9, "never-committed", [{"name": "", "partition_indexes": [0]}])[
            "topics"
        ]
        assert _rows(empty) == [(0, -1, "", ErrorCode.NONE)]


def _list_offsets(c: RawClient, version: int, topic: str, ts: int) -> dict:
    part = {"partition_index": 0, "current_leader_epoch": -1, "timestamp": ts}
    body = {
        "replica_id": -1,
        "isolation_level": 0,
        "topics": [{"name": topic, "partitions": [part]}],
        "timeout_ms": 1000,
    }
    answer: dict = c.call(LIST_OFFSETS, version, body)["topics"][0]["partitions"][0]
    return answer


def test_list_offsets_v11_every_spec(kafka_broker: str) -> None:
    """Five records in two batches, then ListOffsets v11 with each spec: EARLIEST_PENDING_UPLOAD
    (-6) answers offset -1, timestamp -1, epoch -1 without error (no remote storage, so
    nothing is pending upload, as KIP-1023 has it); latest (-1) is 5, earliest (-2) and
    earliest-local (-4) are 0, latest-tiered (-5) is -1, max-timestamp (-3) and a timestamp
    search find the records they should."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "lo11")
        for values in ([b"a", b"b"], [b"c", b"d", b"e"]):
            resp = c.call(0, 9, produce_body("lo11", 0, batch(values)))
            assert resp["responses"][0]["partition_responses"][0]["error_code"] == 0
        pending = _list_offsets(c, 11, "lo11", -6)
        assert (pending["error_code"], pending["offset"], pending["timestamp"]) == (0, -1, -1)
        assert pending["leader_epoch"] == -1
        assert (_list_offsets(c, 11, "lo11", -1)["offset"]) == 5
        assert _list_offsets(c, 11, "lo11", -2)["offset"] == 0
        assert _list_offsets(c, 11, "lo11", -4)["offset"] == 0
        tiered = _list_offsets(c, 11, "lo11", -5)
        assert (tiered["error_code"], tiered["offset"]) == (0, -1)
        newest = _list_offsets(c, 11, "lo11", -3)
        assert newest["error_code"] == 0 and 0 <= newest["offset"] < 5
        by_time = _list_offsets(c, 11, "lo11", 0)
        assert (by_time["error_code"], by_time["offset"]) == (0, 0)
        unknown = _list_offsets(c, 11, "no-such-topic-11", -6)
        assert unknown["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
