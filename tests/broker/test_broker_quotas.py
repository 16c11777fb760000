"""Client quotas (DescribeClientQuotas, AlterClientQuotas) and their enforcement, against a
real broker with real clients: kafka-python for the configuration APIs, confluent-kafka
(librdkafka) for throttled producers and consumers, and a raw socket for a client that
ignores throttle_time_ms."""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

import pytest
from broker_helpers import RawClient, batch, produce_body

from edplog.broker.config import BrokerConfig
from edplog.errors import InvalidConfigError

pytestmark = pytest.mark.clients

kafka_admin = pytest.importorskip("kafka.admin")
from kafka.protocol.admin import (  # noqa: E402
    AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
)

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, Producer  # noqa: E402

PRODUCE = 0
FETCH_KEY = 1
METADATA = 3
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
MIB = 1 << 20


async def _send(admin: Any, request: Any) -> Any:
    return await admin._manager.send(request)


class Quotas:
    """kafka-python's admin client sending the two quota requests."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = kafka_admin.KafkaAdminClient(bootstrap_servers=bootstrap)

    def close(self) -> None:
        self.admin.close()

    def alter(self, entries: list[tuple[dict, dict]], validate_only: bool = False) -> list:
        """entries: ({entity_type: name | None}, {key: value | None (remove)})."""
        request = AlterClientQuotasRequest(
            entries=[
                (
                    list(entity.items()),
                    [(k, 0.0 if v is None else float(v), v is None) for k, v in ops.items()],
                )
                for entity, ops in entries
            ],
            validate_only=validate_only,
        )
        response = self.admin._manager.run(_send, self.admin, request)
        return [
            (e.error_code, e.error_message, {x.entity_type: x.entity_name for x in e.entity})
            for e in response.entries
        ]

    def describe(self, components: list[tuple[str, int, str | None]], strict: bool = False):
        request = DescribeClientQuotasRequest(components=components, strict=strict)
        response = self.admin._manager.run(_send, self.admin, request)
        if response.error_code:
            return response.error_code, response.error_message
        return sorted(
            (
                tuple(sorted((x.entity_type, x.entity_name or "<default>") for x in e.entity)),
                {v.key: v.value for v in e.values},
            )
            for e in response.entries
        )


@pytest.fixture
def quotas(kafka_broker_factory, tmp_path):
    broker = kafka_broker_factory(tmp_path)
    q = Quotas(broker.bootstrap)
    try:
        yield broker, q
    finally:
        q.close()


def test_alter_and_describe_client_quotas_with_kafka_python(quotas) -> None:
    """Quotas set on named and default users and client ids are described back by filters
    with Kafka's matching: exact, default and any name; strict excludes entities with other
    types; removing the last key removes the entity."""
    _, q = quotas
    results = q.alter(
        [
            ({"user": "alice"}, {"producer_byte_rate": 1024, "request_percentage": 50.5}),
            ({"user": "alice", "client-id": "x"}, {"consumer_byte_rate": 2048}),
            ({"client-id": None}, {"producer_byte_rate": 4096}),
            ({"user": None}, {"consumer_byte_rate": 8192}),
            ({"ip": "10.0.0.1"}, {"connection_creation_rate": 5}),
        ]
    )
    assert [r[0] for r in results] == [0, 0, 0, 0, 0]
    alice = (("user", "alice"),)
    alice_x = (("client-id", "x"), ("user", "alice"))
    assert q.describe([("user", 0, "alice")]) == [
        (alice_x, {"consumer_byte_rate": 2048.0}),
        (alice, {"producer_byte_rate": 1024.0, "request_percentage": 50.5}),
    ]
    assert q.describe([("user", 0, "alice")], strict=True) == [
        (alice, {"producer_byte_rate": 1024.0, "request_percentage": 50.5})
    ]
    assert q.describe([("client-id", 1, None)]) == [
        ((("client-id", "<default>"),), {"producer_byte_rate": 4096.0})
    ]
    assert [e[0] for e in q.describe([("user", 2, None)])] == [
        alice_x,
        (("user", "<default>"),),
        alice,
    ]
    assert q.describe([("ip", 2, None)]) == [
        ((("ip", "10.0.0.1"),), {"connection_creation_rate": 5.0})
    ]
    assert len(q.describe([])) == 5
    assert q.describe([], strict=True) == []
    q.alter([({"user": "alice", "client-id": "x"}, {"consumer_byte_rate": None})])
    assert q.describe([("client-id", 0, "x")]) == []


def test_bad_quota_alterations_are_refused_with_a_message(quotas) -> None:
    """Unknown keys, keys of another entity kind, bad values and bad entities fail their
    entry with INVALID_REQUEST and a message; valid entries of the same request apply;
    validate_only changes nothing; a bad describe filter is INVALID_REQUEST, and one on an
    entity type Kafka does not have UNSUPPORTED_VERSION (as Kafka answers)."""
    _, q = quotas
    results = q.alter(
        [
            ({"user": "bob"}, {"no_such_rate": 1}),
            ({"user": "bob"}, {"connection_creation_rate": 1}),
            ({"ip": "not-an-ip"}, {"connection_creation_rate": 1}),
            ({"ip": "10.0.0.2", "user": "bob"}, {"connection_creation_rate": 1}),
            ({"group": "g"}, {"producer_byte_rate": 1}),
            ({"user": "bob"}, {"producer_byte_rate": 1.5}),
            ({"user": "bob"}, {"producer_byte_rate": -1}),
            ({"user": "carol"}, {"producer_byte_rate": 1000}),
        ]
    )
    codes = [r[0] for r in results]
    assert codes == [INVALID_REQUEST] * 7 + [0]
    assert "no_such_rate" in results[0][1]
    assert all(r[1] for r in results[:7])
    assert q.describe([("user", 0, "bob")]) == []
    assert q.describe([("user", 0, "carol")]) == [
        ((("user", "carol"),), {"producer_byte_rate": 1000.0})
    ]
    assert q.alter([({"user": "dave"}, {"producer_byte_rate": 5})], validate_only=True)[0][0] == 0
    assert q.describe([("user", 0, "dave")]) == []
    code, message = q.describe([("user", 0, None)])
    assert code == INVALID_REQUEST and message
    code, message = q.describe([("ip", 2, None), ("user", 2, None)])
    assert code == INVALID_REQUEST and message
    code, message = q.describe([("group", 0, "g")])
    assert code == UNSUPPORTED_VERSION and "group" in message


def test_client_quotas_survive_a_restart(kafka_broker_factory, tmp_path) -> None:
    """Quotas altered on one broker are described by the next one started on the same data
    directory (quotas.json, replaced atomically with the previous version kept), and are
    enforced there: a 120 kB produce under a 10 kB/s quota set before the restart is
    throttled after it."""
    broker = kafka_broker_factory(tmp_path)
    q = Quotas(broker.bootstrap)
    q.alter([({"user": "erin", "client-id": None}, {"producer_byte_rate": 12345})])
    q.alter([({"user": "erin", "client-id": None}, {"consumer_byte_rate": 999})])
    q.alter([({"client-id": "edplog-test"}, {"producer_byte_rate": 10000})])
    q.close()
    broker.stop()
    stored = json.loads((tmp_path / "quotas.json").read_text())
    values = [e["values"] for e in stored["quotas"]]
    assert {"consumer_byte_rate": 999, "producer_byte_rate": 12345} in values
    assert (tmp_path / "quotas.json.prev").exists()
    again = kafka_broker_factory(tmp_path)
    q = Quotas(again.bootstrap)
    try:
        assert q.describe([("user", 0, "erin")]) == [
            (
                (("client-id", "<default>"), ("user", "erin")),
                {"consumer_byte_rate": 999.0, "producer_byte_rate": 12345.0},
            )
        ]
    finally:
        q.close()
    with RawClient(again.bootstrap) as c:
        c.call(METADATA, 9, {"topics": [{"name": "kept"}], "allow_auto_topic_creation": True})
        produced = c.call(PRODUCE, 7, produce_body("kept", 0, batch([b"k" * 1000] * 120)))
    assert produced["throttle_time_ms"] > 0


def test_quota_properties_are_read_and_a_quota_callback_is_refused() -> None:
    """quota.window.num and quota.window.size.seconds configure the measurement;
    client.quota.callback.class (a custom quota plugin) stops the start with a message."""
    cfg = BrokerConfig.from_properties({"quota.window.num": "5", "quota.window.size.seconds": "2"})
    assert (cfg.quota_window_num, cfg.quota_window_size_seconds) == (5, 2)
    assert cfg.unknown_properties == []
    with pytest.raises(InvalidConfigError, match="client.quota.callback.class"):
        BrokerConfig.from_properties({"client.quota.callback.class": "com.example.Quota"})
    with pytest.raises(InvalidConfigError, match="quota.window.num"):
        BrokerConfig.from_properties({"quota.window.num": "0"})


# The enforcement tests measure over quota.window.num=2 one-second samples: a fresh
# measurement lets through up to (num - 1) windows' worth at once (Kafka's Rate pads a young
# window to num - 1 samples), which over 10 s is 10 % of the total with 2 samples and would
# be the whole 10 s worth with Kafka's default of 11. Small batches keep each request's
# bytes well under a second's quota.
WINDOWS = {"quota_window_num": 2}
# Kafka's throttle time is the wait until the rate is back at the quota if no sample left the
# window meanwhile; with only two samples one does leave during most waits, so a consumer
# (throttled after each small fetch) waits too long and got a steady 0.85 of its quota.
# Three samples: 0.95.
CONSUMER_WINDOWS = {"quota_window_num": 3}
SMALL_BATCHES = {"batch.size": 65536, "linger.ms": 5, "queue.buffering.max.kbytes": 4096}


def _throttle_stats(seen: list) -> Any:
    def stats(text: str) -> None:
        for b in json.loads(text).get("brokers", {}).values():
            if b.get("throttle", {}).get("max", 0) > 0:
                seen.append(b["throttle"]["max"])

    return stats


def _produce_for(bootstrap: str, topic: str, seconds: float, client_id: str) -> tuple:
    """Produce 10 KiB values as fast as librdkafka will: (bytes acked over ``seconds``
    after a one-second warm-up, the measured seconds, the broker throttle times seen)."""
    acked = [0]
    throttles: list = []

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked[0] += len(msg.value())

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "statistics.interval.ms": 500,
            "stats_cb": _throttle_stats(throttles),
            **SMALL_BATCHES,
        }
    )
    value = b"v" * 10240
    start = time.monotonic()
    begin = start + 1.0
    base = None
    while time.monotonic() - begin < seconds:
        if base is None and time.monotonic() >= begin:
            base = acked[0]
        try:
            p.produce(topic, value=value, on_delivery=delivered)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    elapsed = time.monotonic() - begin
    done = acked[0] - (base or 0)
    p.flush(30)
    return done, elapsed, throttles


def test_producer_over_its_byte_rate_is_throttled_to_the_quota(kafka_broker_factory) -> None:
    """A confluent-kafka producer (client.id=q) producing as fast as it can under a
    producer_byte_rate quota of 1 MiB/s on client-id q gets within 20 % of 1 MiB/s over
    10 s (after a one-second warm-up), and librdkafka reports the broker's throttle time."""
    broker = kafka_broker_factory(**WINDOWS)
    q = Quotas(broker.bootstrap)
    try:
        assert q.alter([({"client-id": "q"}, {"producer_byte_rate": MIB})])[0][0] == 0
    finally:
        q.close()
    acked, elapsed, throttles = _produce_for(broker.bootstrap, "quota-in", 10.0, "q")
    rate = acked / elapsed
    assert 0.8 * MIB <= rate <= 1.2 * MIB, rate / MIB
    assert throttles and max(throttles) > 0


def test_producer_without_a_quota_is_not_throttled(kafka_broker_factory) -> None:
    """The same producer under a quota for another client id is not held: it goes far past
    1 MiB/s (the quota applies to the matched entity only)."""
    broker = kafka_broker_factory(**WINDOWS)
    q = Quotas(broker.bootstrap)
    try:
        q.alter([({"client-id": "someone-else"}, {"producer_byte_rate": MIB})])
    finally:
        q.close()
    acked, elapsed, throttles = _produce_for(broker.bootstrap, "quota-free", 2.0, "q")
    assert acked / elapsed > 3 * MIB
    assert not throttles


def test_consumer_over_its_byte_rate_is_throttled_to_the_quota(kafka_broker_factory) -> None:
    """A confluent-kafka consumer (client.id=c) reading a 20 MiB backlog under a
    consumer_byte_rate quota of 1 MiB/s on client-id c receives within 20 % of 1 MiB/s over
    10 s (after a one-second warm-up), and librdkafka reports the broker's throttle time."""
    broker = kafka_broker_factory(**CONSUMER_WINDOWS)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    value = b"c" * 10240
    for _ in range(20 * 102):
        while True:
            try:
                p.produce("quota-out", value=value)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    q = Quotas(broker.bootstrap)
    try:
        assert q.alter([({"client-id": "c"}, {"consumer_byte_rate": MIB})])[0][0] == 0
    finally:
        q.close()
    throttles: list = []
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "quota-group",
            "client.id": "c",
            "auto.offset.reset": "earliest",
            "statistics.interval.ms": 500,
            "stats_cb": _throttle_stats(throttles),
            "fetch.max.bytes": 1048576,
            "message.max.bytes": 1048576,
            "max.partition.fetch.bytes": 65536,
        }
    )
    c.subscribe(["quota-out"])
    got = 0

    def poll() -> None:
        nonlocal got
        msg = c.poll(0.05)
        if msg is not None and msg.error() is None:
            got += len(msg.value())

    try:
        deadline = time.monotonic() + 30
        while got == 0 and time.monotonic() < deadline:
            poll()
        warm = time.monotonic() + 1.0
        while time.monotonic() < warm:
            poll()
        got = 0
        start = time.monotonic()
        while time.monotonic() - start < 10.0:
            poll()
        elapsed = time.monotonic() - start
    finally:
        c.close()
    rate = got / elapsed
    assert 0.8 * MIB <= rate <= 1.2 * MIB, rate / MIB
    assert throttles


def _frame_of(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        assert chunk, "connection closed"
        head += chunk
    (size,) = struct.unpack(">i", head)
    out = b""
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        assert chunk, "connection closed"
        out += chunk
    return out


def test_a_client_ignoring_throttle_time_is_muted(quotas) -> None:
    """A raw client over a 10 kB/s producer quota sends a 120 kB produce and, without
    waiting, a Metadata request: the produce's response carries a throttle time of about
    two seconds, and the Metadata answer comes no sooner than that throttle time after it
    (the broker stopped reading the connection), though the client ignored the field."""
    broker, q = quotas
    assert q.alter([({"client-id": "edplog-test"}, {"producer_byte_rate": 10000})])[0][0] == 0
    records = batch([b"x" * 1000 for _ in range(120)])
    with RawClient(broker.bootstrap) as c:
        c.call(METADATA, 9, {"topics": [{"name": "muted"}], "allow_auto_topic_creation": True})
        c.send(PRODUCE, 7, produce_body("muted", 0, records))
        c.send(METADATA, 9, {"topics": [{"name": "muted"}], "allow_auto_topic_creation": True})
        _, produced = c.recv(PRODUCE, 7)
        first = time.monotonic()
        throttle_ms = produced["throttle_time_ms"]
        assert produced["responses"][0]["partition_responses"][0]["error_code"] == 0
        assert 1000 <= throttle_ms <= 4000, throttle_ms
        c.recv(METADATA, 9)
        waited_ms = (time.monotonic() - first) * 1000
    assert waited_ms >= 0.8 * throttle_ms, (waited_ms, throttle_ms)


def test_connection_rate_quota_closes_connections_over_it(kafka_broker_factory, tmp_path) -> None:
    """With connection_creation_rate 1/s on the default IP, a second connection opened at
    once is closed without being answered, while the first is served."""
    broker = kafka_broker_factory(tmp_path, quota_window_num=2)
    q = Quotas(broker.bootstrap)
    try:
        assert q.alter([({"ip": None}, {"connection_creation_rate": 1})])[0][0] == 0
    finally:
        q.close()
    host, port = broker.bootstrap.split(":")
    api_versions = struct.pack(">hhih", 18, 0, 1, 1) + b"t"
    frame = struct.pack(">i", len(api_versions)) + api_versions
    first = socket.create_connection((host, int(port)), timeout=10)
    second = socket.create_connection((host, int(port)), timeout=10)
    try:
        first.sendall(frame)
        assert len(_frame_of(first)) > 8
        second.sendall(frame)
        with pytest.raises((AssertionError, ConnectionError)):  # closed, or reset (unread)
            _frame_of(second)
    finally:
        first.close()
        second.close()


def _throttle_count(broker: Any, quota_type: str) -> float:
    registry = broker.broker.metrics.registry
    value = registry.get_sample_value(
        "edplog_quota_throttle_seconds_count", {"quota_type": quota_type}
    )
    return value or 0.0


def test_user_quota_beats_client_id_quota_and_is_in_the_metrics(quotas) -> None:
    """With a generous quota on client-id=edplog-test and a 10 kB/s one on user ANONYMOUS
    (every connection's user today), a 120 kB produce is throttled: the user entity comes
    first in Kafka's order. The throttle is counted in edplog_quota_throttle_seconds."""
    broker, q = quotas
    results = q.alter(
        [
            ({"client-id": "edplog-test"}, {"producer_byte_rate": 10**9}),
            ({"user": "ANONYMOUS"}, {"producer_byte_rate": 10000}),
        ]
    )
    assert [r[0] for r in results] == [0, 0]
    assert _throttle_count(broker, "Produce") == 0
    with RawClient(broker.bootstrap) as c:
        c.call(METADATA, 9, {"topics": [{"name": "users"}], "allow_auto_topic_creation": True})
        produced = c.call(PRODUCE, 7, produce_body("users", 0, batch([b"u" * 1000] * 120)))
    assert produced["throttle_time_ms"] > 0
    assert _throttle_count(broker, "Produce") == 1


def test_fetch_over_its_byte_rate_is_answered_with_records_and_a_throttle(quotas) -> None:
    """A raw Fetch of 120 kB under a 10 kB/s consumer quota returns the records and a
    throttle time; with no quota the same fetch has throttle time 0."""
    broker, q = quotas
    with RawClient(broker.bootstrap) as c:
        c.call(METADATA, 9, {"topics": [{"name": "reads"}], "allow_auto_topic_creation": True})
        c.call(PRODUCE, 7, produce_body("reads", 0, batch([b"r" * 1000] * 120)))
        fetch = {
            "replica_id": -1,
            "max_wait_ms": 0,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "isolation_level": 0,
            "topics": [
                {
                    "topic": "reads",
                    "partitions": [
                        {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
                    ],
                }
            ],
        }
        free = c.call(FETCH_KEY, 4, fetch)
        assert free["throttle_time_ms"] == 0
        assert q.alter([({"client-id": "edplog-test"}, {"consumer_byte_rate": 10000})])[0][0] == 0
        held = c.call(FETCH_KEY, 4, fetch)
    assert held["throttle_time_ms"] > 0
    assert len(held["responses"][0]["partitions"][0]["records"]) > 100_000


def test_request_percentage_throttles_on_handler_time(kafka_broker_factory) -> None:
    """A request_percentage of 0.0001 (a microsecond of handler time per second) throttles
    a client's next requests, within the quota window (2 x 1 s here)."""
    broker = kafka_broker_factory(**WINDOWS)
    q = Quotas(broker.bootstrap)
    try:
        assert q.alter([({"client-id": "edplog-test"}, {"request_percentage": 0.0001})])[0][0] == 0
    finally:
        q.close()
    body = {"topics": [{"name": "time"}], "allow_auto_topic_creation": True}
    with RawClient(broker.bootstrap) as c:
        throttles = [c.call(METADATA, 9, body)["throttle_time_ms"] for _ in range(3)]
    assert max(throttles) > 0
    assert max(throttles) <= 2000
    assert _throttle_count(broker, "Request") >= 1


def test_request_percentage_leaves_long_poll_waits_out(kafka_broker_factory) -> None:
    """Under a request_percentage of 10 (a tenth of a thread), two Fetch long polls that each
    wait 400 ms on an empty partition are not throttled: the wait is not handler time (40 %
    of a second each would be far over the quota if it were)."""
    broker = kafka_broker_factory(**WINDOWS)
    q = Quotas(broker.bootstrap)
    try:
        assert q.alter([({"client-id": "edplog-test"}, {"request_percentage": 10})])[0][0] == 0
    finally:
        q.close()
    fetch = {
        "replica_id": -1,
        "max_wait_ms": 400,
        "min_bytes": 1,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "topics": [
            {
                "topic": "idle",
                "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}],
            }
        ],
    }
    with RawClient(broker.bootstrap) as c:
        c.call(METADATA, 9, {"topics": [{"name": "idle"}], "allow_auto_topic_creation": True})
        started = time.monotonic()
        throttles = [c.call(FETCH_KEY, 4, fetch)["throttle_time_ms"] for _ in range(2)]
        waited = time.monotonic() - started
    assert waited >= 0.7  # both polls really waited
    assert throttles == [0, 0]
