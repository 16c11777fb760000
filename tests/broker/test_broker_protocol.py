"""The broker over raw sockets: ApiVersions exactness, bad input, ordering, produce/fetch."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from broker_helpers import RawClient, batch, create_topic, fetch_body, produce_body
from kafka.record import MemoryRecords

from edplog.protocol import SUPPORTED, encode_request

API_VERSIONS, PRODUCE, FETCH, LIST_OFFSETS, METADATA = 18, 0, 1, 2, 3


def _records(resp: dict) -> list:
    """Decode the records of the first partition with kafka-python (an independent reader)."""
    data = resp["responses"][0]["partitions"][0]["records"]
    out, recs = [], MemoryRecords(bytes(data or b""))
    while (b := recs.next_batch()) is not None:
        out.extend(b)
    return out


@pytest.mark.parametrize("version", range(0, 5))
def test_api_versions_advertises_exactly_supported(kafka_broker: str, version: int) -> None:
    with RawClient(kafka_broker) as c:
        resp = c.call(
            API_VERSIONS, version, {"client_software_name": "t", "client_software_version": "1"}
        )
    assert resp["error_code"] == 0
    got = {k["api_key"]: (k["min_version"], k["max_version"]) for k in resp["api_keys"]}
    assert got == SUPPORTED


def test_api_versions_unsupported_version_gets_v0_error_body(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        # v9 is flexible-looking but unknown: Kafka parses the header as v2 and answers in v0.
        frame = bytearray(struct.pack(">hhih", 18, 9, 77, 1) + b"x" + b"\x00")
        c.send_raw(struct.pack(">i", len(frame)) + bytes(frame))
        cid, resp = c.recv(API_VERSIONS, 0)
        assert cid == 77
        assert resp["error_code"] == 35
        assert resp["api_keys"] == [
            {"api_key": 18, "min_version": SUPPORTED[18][0], "max_version": SUPPORTED[18][1]}
        ]
        # The connection stays usable, as with Kafka: the client retries with a lower version.
        assert (
            c.call(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})[
                "error_code"
            ]
            == 0
        )


def test_rejected_produce_version_answers_unsupported_version(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "old")
        resp = c.call(PRODUCE, 2, produce_body("old", 0, batch([b"x"])))
        assert resp["responses"][0]["partition_responses"][0]["error_code"] == 35


def test_unknown_api_key_closes_only_that_connection(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as bad, RawClient(kafka_broker) as good:
        frame = struct.pack(">hhih", 999, 0, 1, -1)
        bad.send_raw(struct.pack(">i", len(frame)) + frame)
        assert bad.is_closed_by_peer()
        assert good.call(API_VERSIONS, 0, {})["error_code"] == 0


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack(">i", 200 * 1024 * 1024),  # size prefix over socket.request.max.bytes
        struct.pack(">i", -5),  # negative size
        struct.pack(">i", 3) + b"\x00\x12\x00",  # header shorter than its fixed part
        b"\xff" * 64,  # garbage
    ],
    ids=["oversized", "negative", "truncated-header", "garbage"],
)
def test_bad_frames_close_the_connection_and_spare_others(
    kafka_broker: str, payload: bytes
) -> None:
    with RawClient(kafka_broker) as bad, RawClient(kafka_broker) as good:
        bad.send_raw(payload)
        assert bad.is_closed_by_peer()
        assert good.call(API_VERSIONS, 0, {})["error_code"] == 0


def test_truncated_body_closes_connection(kafka_broker: str) -> None:
    full = encode_request(
        METADATA,
        12,
        1,
        "t",
        {
            "topics": [{"topic_id": None, "name": "abc"}],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    body = full[4:-3]  # drop the last bytes of the body but announce the shorter size
    with RawClient(kafka_broker) as bad, RawClient(kafka_broker) as good:
        bad.send_raw(struct.pack(">i", len(body)) + body)
        assert bad.is_closed_by_peer()
        assert good.call(API_VERSIONS, 0, {})["error_code"] == 0


def test_responses_keep_request_order_behind_a_long_poll(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "order")
        first = c.send(FETCH, 12, fetch_body("order", 0, 0, max_wait_ms=300, min_bytes=1))
        second = c.send(API_VERSIONS, 0, {})
        assert c.recv(FETCH, 12)[0] == first
        assert c.recv(API_VERSIONS, 0)[0] == second


def test_pipelined_mixed_requests_keep_append_and_response_order(kafka_broker: str) -> None:
    """acks=-1 waits for a flush, acks=1/0 and immediate fetches do not: pipelined on one
    connection they still append in request order and answer in request order."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "mixed")
        sent = []
        for i in range(20):
            acks = (-1, 1, 0)[i % 3]
            cid = c.send(PRODUCE, 9, produce_body("mixed", 0, batch([b"%d" % i]), acks=acks))
            if acks:
                sent.append((PRODUCE, 9, cid, i))
            if i % 4 == 0:
                sent.append((API_VERSIONS, 0, c.send(API_VERSIONS, 0, {}), None))
            if i % 5 == 0:
                sent.append((FETCH, 12, c.send(FETCH, 12, fetch_body("mixed", 0, 0)), None))
        for key, version, cid, i in sent:
            got, resp = c.recv(key, version)
            assert got == cid
            if key == PRODUCE:
                part = resp["responses"][0]["partition_responses"][0]
                assert (part["error_code"], part["base_offset"]) == (0, i)
        values = [r.value for r in _records(c.call(FETCH, 12, fetch_body("mixed", 0, 0)))]
        assert values == [b"%d" % i for i in range(20)]


def test_long_poll_is_woken_by_an_append(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as consumer, RawClient(kafka_broker) as producer:
        create_topic(producer, "wake")
        cid = consumer.send(FETCH, 12, fetch_body("wake", 0, 0, max_wait_ms=20_000))
        producer.call(PRODUCE, 9, produce_body("wake", 0, batch([b"hello"])))
        consumer.sock.settimeout(10)  # far below max_wait: only the append can answer it
        got, resp = consumer.recv(FETCH, 12)
        assert got == cid
        assert [r.value for r in _records(resp)] == [b"hello"]


def test_long_poll_is_woken_by_an_acks_zero_append(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as consumer, RawClient(kafka_broker) as producer:
        create_topic(producer, "wake0")
        cid = consumer.send(FETCH, 12, fetch_body("wake0", 0, 0, max_wait_ms=20_000))
        producer.send(PRODUCE, 9, produce_body("wake0", 0, batch([b"quiet"]), acks=0))
        consumer.sock.settimeout(10)  # far below max_wait: only the append can answer it
        got, resp = consumer.recv(FETCH, 12)
        assert got == cid
        assert [r.value for r in _records(resp)] == [b"quiet"]


def test_append_right_behind_a_parked_fetch_wakes_it(kafka_broker: str) -> None:
    """A fetch and an append pipelined in one write: the append is handled before the long
    poll's task first runs, and must still wake it."""
    with RawClient(kafka_broker) as c:
        create_topic(c, "behind")
        fetch = encode_request(FETCH, 12, 1, "t", fetch_body("behind", 0, 0, max_wait_ms=20_000))
        append = encode_request(
            PRODUCE, 9, 2, "t", produce_body("behind", 0, batch([b"now"]), acks=0)
        )
        c.send_raw(fetch + append)
        c.sock.settimeout(10)  # far below max_wait: only the append can answer it
        got, resp = c.recv(FETCH, 12)
        assert got == 1
        assert [r.value for r in _records(resp)] == [b"now"]


def _fill(c: RawClient, topic: str, batches: int, per_batch: int = 900) -> int:
    """Append ``batches`` batches of 1000-byte records; returns the record count."""
    for i in range(batches):
        values = [bytes([i % 251]) * 1000] * per_batch
        assert (
            c.call(PRODUCE, 9, produce_body(topic, 0, batch(values)))["responses"][0][
                "partition_responses"
            ][0]["error_code"]
            == 0
        )
    return batches * per_batch


def test_large_fetch_arrives_whole_through_a_stalled_reader(
    kafka_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response far above the socket buffer, read only after a pause: the sender thread
    gives up on the stalled socket, the loop finishes the send, and every byte is right."""
    from edplog.broker import transport

    monkeypatch.setattr(transport, "SENDER_STALL_MS", 20)
    with RawClient(kafka_broker) as c:
        create_topic(c, "big")
        count = _fill(c, "big", 8)
        body = fetch_body("big", 0, 0, max_bytes=16 << 20, partition_max_bytes=16 << 20)
        cid = c.send(FETCH, 12, body)
        time.sleep(0.3)  # let the broker fill the socket and stall (no timing is asserted)
        got, resp = c.recv(FETCH, 12)
        assert got == cid
        records = _records(resp)
        assert len(records) == count
        assert [r.offset for r in records] == list(range(count))
        assert records[-1].value == bytes([7]) * 1000
        for _ in range(3):  # and the connection keeps serving large fetches in order
            assert len(_records(c.call(FETCH, 12, body))) == count


def test_client_closing_during_a_large_fetch_spares_the_broker(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "gone")
        _fill(c, "gone", 8)
    body = fetch_body("gone", 0, 0, max_bytes=16 << 20, partition_max_bytes=16 << 20)
    for _ in range(5):
        with RawClient(kafka_broker) as quitter:
            quitter.send(FETCH, 12, body)
            quitter.sock.recv(4096)  # the response has started; hang up in the middle
    with RawClient(kafka_broker) as c:
        assert c.call(API_VERSIONS, 0, {})["error_code"] == 0
        assert len(_records(c.call(FETCH, 12, body))) == 8 * 900


def test_acks_zero_sends_no_response(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "fire")
        c.send(PRODUCE, 9, produce_body("fire", 0, batch([b"a"]), acks=0))
        cid = c.send(API_VERSIONS, 0, {})
        assert c.recv(API_VERSIONS, 0)[0] == cid  # the next frame is ApiVersions' answer
        resp = c.call(FETCH, 12, fetch_body("fire", 0, 0))
        assert [r.value for r in _records(resp)] == [b"a"]


def test_produce_then_fetch_returns_offsets_and_values(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "rt")
        r1 = c.call(
            PRODUCE, 9, produce_body("rt", 0, batch([b"a", None, b"c"], keys=[b"k", None, b"z"]))
        )
        r2 = c.call(PRODUCE, 7, produce_body("rt", 0, batch([b"d"], compression="lz4"), acks=-1))
        assert r1["responses"][0]["partition_responses"][0]["base_offset"] == 0
        assert r2["responses"][0]["partition_responses"][0]["base_offset"] == 3
        for version in (4, 11, 12):
            resp = c.call(FETCH, version, fetch_body("rt", 0, 0))
            part = resp["responses"][0]["partitions"][0]
            assert part["error_code"] == 0 and part["high_watermark"] == 4
            recs = _records(resp)
            assert [(r.offset, r.key, r.value) for r in recs] == [
                (0, b"k", b"a"),
                (1, None, None),
                (2, b"z", b"c"),
                (3, None, b"d"),
            ]


def test_fetch_returns_one_whole_batch_above_partition_limit(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "big")
        c.call(PRODUCE, 9, produce_body("big", 0, batch([b"x" * 5000])))
        c.call(PRODUCE, 9, produce_body("big", 0, batch([b"y" * 5000])))
        resp = c.call(FETCH, 12, fetch_body("big", 0, 0, max_bytes=100, partition_max_bytes=100))
        assert [r.offset for r in _records(resp)] == [0]


def test_fetch_out_of_range_offset(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "oor")
        resp = c.call(FETCH, 12, fetch_body("oor", 0, 5))
        assert resp["responses"][0]["partitions"][0]["error_code"] == 1


def test_corrupt_batch_is_refused_and_log_is_intact(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "crc")
        good = batch([b"ok"])
        bad = bytearray(good)
        bad[-1] ^= 0xFF  # breaks the CRC
        resp = c.call(PRODUCE, 9, produce_body("crc", 0, bytes(bad)))
        assert resp["responses"][0]["partition_responses"][0]["error_code"] == 2
        resp = c.call(PRODUCE, 9, produce_body("crc", 0, good))
        assert resp["responses"][0]["partition_responses"][0]["base_offset"] == 0
        assert [r.value for r in _records(c.call(FETCH, 12, fetch_body("crc", 0, 0)))] == [b"ok"]


def test_message_too_large(kafka_broker_factory) -> None:
    broker = kafka_broker_factory(message_max_bytes=2000)
    with RawClient(broker.bootstrap) as c:
        create_topic(c, "large")
        resp = c.call(PRODUCE, 9, produce_body("large", 0, batch([b"z" * 4000])))
        assert resp["responses"][0]["partition_responses"][0]["error_code"] == 10


def test_idempotent_sequences(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "idem")
        init = c.call(
            22,
            4,
            {
                "transactional_id": None,
                "transaction_timeout_ms": 60000,
                "producer_id": -1,
                "producer_epoch": -1,
            },
        )
        pid, epoch = init["producer_id"], init["producer_epoch"]
        assert init["error_code"] == 0 and pid >= 0 and epoch == 0

        def send(seq: int, values: list[bytes], ep: int = epoch) -> dict:
            body = produce_body(
                "idem",
                0,
                batch(values, producer_id=pid, producer_epoch=ep, base_sequence=seq),
                acks=-1,
            )
            return c.call(PRODUCE, 9, body)["responses"][0]["partition_responses"][0]

        assert send(0, [b"a", b"b"])["base_offset"] == 0
        assert send(2, [b"c"])["base_offset"] == 2
        dup = send(0, [b"a", b"b"])
        assert (dup["error_code"], dup["base_offset"]) == (0, 0)  # as Kafka answers a duplicate
        assert send(5, [b"gap"])["error_code"] == 45
        assert send(0, [b"new epoch"], ep=epoch + 1)["base_offset"] == 3
        assert send(3, [b"old epoch"], ep=epoch)["error_code"] == 47
        resp = c.call(FETCH, 12, fetch_body("idem", 0, 0))
        assert [r.value for r in _records(resp)] == [b"a", b"b", b"c", b"new epoch"]


def test_list_offsets_earliest_latest(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "lo")
        c.call(PRODUCE, 9, produce_body("lo", 0, batch([b"1", b"2", b"3"])))
        for ts, expected in ((-1, 3), (-2, 0), (0, 0)):
            resp = c.call(
                LIST_OFFSETS,
                7,
                {
                    "replica_id": -1,
                    "isolation_level": 0,
                    "topics": [
                        {
                            "name": "lo",
                            "partitions": [
                                {"partition_index": 0, "current_leader_epoch": -1, "timestamp": ts}
                            ],
                        }
                    ],
                },
            )
            part = resp["topics"][0]["partitions"][0]
            assert (part["error_code"], part["offset"]) == (0, expected)


def test_metadata_reports_controller_and_auto_creates(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        resp = c.call(
            METADATA,
            12,
            {
                "topics": [{"topic_id": None, "name": "auto"}],
                "allow_auto_topic_creation": True,
                "include_topic_authorized_operations": False,
            },
        )
        port = int(kafka_broker.rsplit(":", 1)[1])
        assert resp["brokers"][0]["port"] == port
        assert resp["controller_id"] == resp["brokers"][0]["node_id"]
        assert resp["cluster_id"]
        topic = resp["topics"][0]
        assert topic["error_code"] == 0 and len(topic["partitions"]) == 1
        assert topic["partitions"][0]["leader_epoch"] == 0
        resp = c.call(
            METADATA,
            12,
            {
                "topics": [{"topic_id": None, "name": "nope"}],
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False,
            },
        )
        assert resp["topics"][0]["error_code"] == 3


def test_metadata_marks_internal_topics(kafka_broker: str) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "plain")
        resp = c.call(
            METADATA,
            12,
            {
                "topics": None,
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False,
            },
        )
        internal = {t["name"]: t["is_internal"] for t in resp["topics"]}
        assert internal["__consumer_offsets"] is True
        assert internal["plain"] is False


def test_many_connections_one_misbehaving(kafka_broker: str) -> None:
    """A client that sends half a frame and stalls does not hold up anyone else."""
    host, port = kafka_broker.rsplit(":", 1)
    stalled = socket.create_connection((host, int(port)), timeout=5)
    try:
        stalled.sendall(struct.pack(">i", 1000) + b"\x00\x03")
        for _ in range(5):
            with RawClient(kafka_broker) as c:
                assert c.call(API_VERSIONS, 0, {})["error_code"] == 0
    finally:
        stalled.close()
