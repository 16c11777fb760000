"""Broker connections over real sockets: memory bounded by configuration, not by what clients
claim; idle closing; connection limits; request order past the in-flight limit; states."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import select
import socket
import struct
import threading
from pathlib import Path

import pytest
from broker_helpers import (
    BrokerProcess,
    RawClient,
    batch,
    create_topic,
    fetch_body,
    produce_body,
    wait_until,
)
from docs_examples import run_example

from edplog.broker.config import BrokerConfig
from edplog.broker.connection import MAX_IN_FLIGHT, Connection, State
from edplog.broker.transport import PlainTransport
from edplog.client import Client
from edplog.errors import InvalidConfigError
from edplog.protocol import encode_request
from edplog.testing import start_broker

API_VERSIONS, PRODUCE, FETCH, METADATA = 18, 0, 1, 3
MIB = 1024 * 1024
DOC = Path(__file__).resolve().parents[2] / "docs" / "broker.md"


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def _connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


class _SocketClient(RawClient):
    """RawClient over a socket made elsewhere (one end of a socketpair)."""

    def __init__(self, sock: socket.socket) -> None:
        Client.__init__(self, "socketpair", client_id="edplog-test", timeout_s=10, sock=sock)


def _still_open(sock: socket.socket) -> bool:
    """Open and silent: nothing to read and no end of stream."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


@pytest.mark.clients
def test_clients_claiming_100_mib_requests_cost_little_and_others_are_served(tmp_path) -> None:
    """200 connections each send a 100 MiB size prefix and 2 bytes; the broker must not hold
    anything near what they claim, keep them open (their frames are valid so far), and serve
    a confluent-kafka producer and consumer meanwhile."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    broker = BrokerProcess(str(tmp_path))
    claimers: list[socket.socket] = []
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "normal")
        for _ in range(200):
            s = _connect(broker.bootstrap)
            s.sendall(struct.pack(">i", 100 * MIB) + b"\x00\x12")
            claimers.append(s)
        with RawClient(broker.bootstrap) as c:  # accepted after all of them: they were read
            assert c.call(API_VERSIONS, 0, {})["error_code"] == 0
        samples = [_rss_mib(broker.proc.pid)]
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for i in range(500):
            p.produce("normal", value=b"v%d" % i)
        assert p.flush(30) == 0
        samples.append(_rss_mib(broker.proc.pid))
        consumer = Consumer(
            {"bootstrap.servers": broker.bootstrap, "group.id": "g", "fetch.wait.max.ms": 100}
        )
        consumer.assign([TopicPartition("normal", 0, 0)])
        values = []
        for _ in range(100):  # bounded: at most 100 rounds of 0.2 s
            for msg in consumer.consume(500, 0.2):
                assert msg.error() is None, msg.error()
                values.append(msg.value())
            if len(values) >= 500:
                break
        consumer.close()
        samples.append(_rss_mib(broker.proc.pid))
        assert values == [b"v%d" % i for i in range(500)]
        assert max(samples) < 150, samples  # the claims add up to 20,000 MiB
        assert all(_still_open(s) for s in claimers)
    finally:
        for s in claimers:
            s.close()
        broker.stop()


def test_idle_connections_cost_a_few_kib_each(tmp_path) -> None:
    broker = BrokerProcess(str(tmp_path))
    idle: list[socket.socket] = []
    try:
        with RawClient(broker.bootstrap) as c:
            assert c.call(API_VERSIONS, 0, {})["error_code"] == 0
        before = _rss_mib(broker.proc.pid)
        for _ in range(1000):
            idle.append(_connect(broker.bootstrap))
        with RawClient(broker.bootstrap) as c:  # accepted after all of them
            assert c.call(API_VERSIONS, 0, {})["error_code"] == 0
        per_connection_kib = (_rss_mib(broker.proc.pid) - before) * 1024 / len(idle)
        assert per_connection_kib < 16, per_connection_kib  # it was 268 KiB with a buffer each
        assert all(_still_open(s) for s in idle)
    finally:
        for s in idle:
            s.close()
        broker.stop()


def test_small_queued_max_request_bytes_pauses_reading_and_every_client_is_answered(
    kafka_broker_factory, caplog: pytest.LogCaptureFixture
) -> None:
    """12 clients send a 1.5 MiB produce request each, at once, to a broker that may hold
    1 MiB of requests: reading pauses and resumes (the first waiter is let past the limit
    when only unfinished frames hold it), nothing deadlocks and every record is stored."""
    caplog.set_level(logging.DEBUG, logger="edplog.broker")
    broker = kafka_broker_factory(
        queued_max_request_bytes=MIB, message_max_bytes=4 * MIB, socket_request_max_bytes=8 * MIB
    )
    with RawClient(broker.bootstrap) as c:
        create_topic(c, "big")
    clients, per_batch = 12, 1500
    payloads = [batch([os.urandom(1000) for _ in range(per_batch)]) for _ in range(clients)]
    assert all(len(p) > 1.4 * MIB for p in payloads)
    start = threading.Barrier(clients)
    results: list[object] = [None] * clients

    def produce(i: int) -> None:
        try:
            with RawClient(broker.bootstrap, timeout_s=60) as c:
                start.wait(30)
                results[i] = c.call(PRODUCE, 9, produce_body("big", 0, payloads[i]))
        except Exception as exc:  # reported below, with the others
            results[i] = exc

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    parts = [r["responses"][0]["partition_responses"][0] for r in results]  # type: ignore[index]
    assert [p["error_code"] for p in parts] == [0] * clients, results
    assert sorted(p["base_offset"] for p in parts) == [i * per_batch for i in range(clients)]
    assert any("waits for request memory" in r.getMessage() for r in caplog.records)
    with RawClient(broker.bootstrap) as c:
        body = fetch_body("big", 0, clients * per_batch)
        part = c.call(FETCH, 12, body)["responses"][0]["partitions"][0]
        assert part["high_watermark"] == clients * per_batch
    server = broker.broker.server if broker.broker is not None else None
    memory = server.memory if server is not None else None
    assert memory is not None
    # every request gave its bytes back once handled
    assert wait_until(lambda: memory.used_bytes == 0 and memory.running_bytes == 0)


def test_idle_connections_close_but_a_waiting_long_poll_does_not(kafka_broker_factory) -> None:
    broker = kafka_broker_factory(connections_max_idle_ms=500)
    b = broker.bootstrap
    with RawClient(b) as idle, RawClient(b) as half, RawClient(b) as waiting:
        create_topic(waiting, "quiet")
        half.send_raw(struct.pack(">i", 100) + b"\x00\x12")  # a frame that never finishes
        # The long poll lasts four idle limits; the connection must survive it, answered.
        cid = waiting.send(FETCH, 12, fetch_body("quiet", 0, 0, max_wait_ms=2000))
        assert idle.is_closed_by_peer()
        assert half.is_closed_by_peer()
        got, resp = waiting.recv(FETCH, 12)
        assert got == cid and resp["responses"][0]["partitions"][0]["error_code"] == 0
        assert waiting.call(API_VERSIONS, 0, {})["error_code"] == 0
        assert waiting.is_closed_by_peer()  # and once idle itself, it goes too


def test_a_frame_above_socket_request_max_bytes_closes_the_connection_at_once(
    kafka_broker_factory,
) -> None:
    broker = kafka_broker_factory(socket_request_max_bytes=2048)
    with RawClient(broker.bootstrap) as bad, RawClient(broker.bootstrap) as good:
        bad.send_raw(struct.pack(">i", 2049))  # the size alone: no body is waited for
        assert bad.is_closed_by_peer()
        assert good.call(API_VERSIONS, 0, {})["error_code"] == 0


def test_max_connections_per_ip_override_closes_the_extra_connection(
    kafka_broker_factory,
) -> None:
    broker = kafka_broker_factory(
        max_connections_per_ip=100, max_connections_per_ip_overrides="127.0.0.1:2"
    )
    first, second = RawClient(broker.bootstrap), RawClient(broker.bootstrap)
    try:
        assert first.call(API_VERSIONS, 0, {})["error_code"] == 0
        assert second.call(API_VERSIONS, 0, {})["error_code"] == 0
        with RawClient(broker.bootstrap) as third:
            assert third.is_closed_by_peer()
        first.close()

        def a_new_one_is_served() -> bool:
            with RawClient(broker.bootstrap) as c:
                try:
                    return c.call(API_VERSIONS, 0, {})["error_code"] == 0
                except ConnectionError:
                    return False  # the broker had not seen the first one go yet

        assert wait_until(a_new_one_is_served)
    finally:
        first.close()
        second.close()


def test_max_connections_makes_new_connections_wait_for_a_free_slot(
    kafka_broker_factory,
) -> None:
    broker = kafka_broker_factory(max_connections=2)
    first, second = RawClient(broker.bootstrap), RawClient(broker.bootstrap)
    try:
        assert first.call(API_VERSIONS, 0, {})["error_code"] == 0
        assert second.call(API_VERSIONS, 0, {})["error_code"] == 0
        with RawClient(broker.bootstrap) as third:  # in the listen backlog, not accepted
            cid = third.send(API_VERSIONS, 0, {})
            readable, _, _ = select.select([third.sock], [], [], 0.3)
            assert not readable
            first.close()
            assert third.recv(API_VERSIONS, 0)[0] == cid
    finally:
        first.close()
        second.close()


def test_requests_beyond_the_in_flight_limit_behind_a_long_poll_answer_in_order(
    kafka_broker: str,
) -> None:
    with RawClient(kafka_broker) as c:
        create_topic(c, "line")
        poll = encode_request(FETCH, 12, 1, "t", fetch_body("line", 0, 0, max_wait_ms=300))
        rest = b"".join(
            encode_request(API_VERSIONS, 0, cid, "t", {}) for cid in range(2, 3 * MAX_IN_FLIGHT + 2)
        )
        c.send_raw(poll + rest)  # one write: the broker stops reading at the limit
        assert c.recv(FETCH, 12)[0] == 1
        for cid in range(2, 3 * MAX_IN_FLIGHT + 2):
            assert c.recv(API_VERSIONS, 0)[0] == cid
        resp = c.call(PRODUCE, 9, produce_body("line", 0, batch([b"after"])))
        assert resp["responses"][0]["partition_responses"][0]["error_code"] == 0


def test_an_authenticating_connection_accepts_only_the_authentication_apis(tmp_path) -> None:
    """The AUTHENTICATING state a SASL listener will start connections in: ApiVersions is
    answered, anything outside ApiVersions/SaslHandshake/SaslAuthenticate closes it."""
    background = start_broker(tmp_path)
    ours, theirs = socket.socketpair()
    try:
        broker, loop = background.broker, background._loop
        assert broker is not None and broker.server is not None and loop is not None
        server = broker.server

        async def attach() -> None:
            ours.setblocking(False)
            transport = PlainTransport(ours, server.senders)
            Connection(server, transport, ("127.0.0.1", 0), state=State.AUTHENTICATING).start()

        asyncio.run_coroutine_threadsafe(attach(), loop).result(10)
        theirs.settimeout(10)
        client = _SocketClient(theirs)
        assert client.call(API_VERSIONS, 3, {})["error_code"] == 0
        client.send(METADATA, 12, {"topics": None, "allow_auto_topic_creation": False})
        assert client.is_closed_by_peer()
    finally:
        theirs.close()
        background.stop()


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("queued.max.request.bytes", "0"),
        ("queued.max.request.bytes", "-2"),
        ("queued.max.request.bytes", "lots"),
        ("max.connections", "-1"),
        ("max.connections.per.ip", "-5"),
        ("max.connections.per.ip.overrides", "broker.example:5"),
        ("max.connections.per.ip.overrides", "127.0.0.1"),
        ("connections.max.idle.ms", "soon"),
    ],
)
def test_connection_properties_refuse_values_they_cannot_honour(prop: str, value: str) -> None:
    with pytest.raises(InvalidConfigError, match=prop.replace(".", r"\.")):
        BrokerConfig.from_properties({prop: value})


def test_connection_properties_are_read_with_kafka_names() -> None:
    cfg = BrokerConfig.from_properties(
        {
            "queued.max.request.bytes": "-1",
            "connections.max.idle.ms": "-1",
            "max.connections": "7",
            "max.connections.per.ip": "3",
            "max.connections.per.ip.overrides": "10.0.0.1:5, [::1]:0",
        }
    )
    assert (cfg.queued_max_request_bytes, cfg.connections_max_idle_ms) == (-1, -1)
    assert (cfg.max_connections, cfg.max_connections_per_ip) == (7, 3)
    assert cfg.max_connections_from("10.0.0.1") == 5
    assert cfg.max_connections_from("::1") == 0
    assert cfg.max_connections_from("10.0.0.2") == 3
    default = BrokerConfig()
    assert default.queued_max_request_bytes >= default.socket_request_max_bytes
    assert "queued.max.request.bytes" not in default.extra


def test_connections_example_in_docs_runs() -> None:
    section = DOC.read_text().split("### Connections and memory", 1)[1]
    section = re.split(r"\n##+ ", section, maxsplit=1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    run_example(code, str(DOC))
