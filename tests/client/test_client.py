"""edplog.client against a real in-process broker: versions on the wire, produce/fetch round
trips, followers, long polls, pipelining, errors and the asyncio flavour."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import uuid
from typing import Any

import pytest

from edplog.client import (
    EARLIEST,
    LATEST,
    AsyncClient,
    BrokerConnectionError,
    Client,
    ClientError,
    ConnectionClosedError,
    FetchPosition,
    KafkaError,
    ReceiveBuffer,
    RequestTimeoutError,
    scan_records,
)
from edplog.client.calls import FETCH_REPLICA_STATE_FROM, fetch_call
from edplog.errors import EdplogError, kafka_code_of
from edplog.protocol import (
    SUPPORTED,
    UnsupportedVersionError,
    decode_request,
    read_request_header,
)
from edplog.records import build_batch, decode_batches

API_VERSIONS, PRODUCE, FETCH, LIST_OFFSETS, METADATA, EPOCH = 18, 0, 1, 2, 3, 23
UNKNOWN_TOPIC_OR_PARTITION = 3
IO_TIMEOUT_S = 30.0


class WireTap:
    """A TCP relay between one client and the broker that decodes every request it passes.

    The client connects to ``address``; ``requests`` collects ``(api_key, api_version, body)``
    as the bytes go by, so a test sees which versions really went on the wire.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(IO_TIMEOUT_S)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[tuple[int, int, dict[str, Any]]] = []
        self._socks: list[socket.socket] = [self.listener]
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def versions(self, api_key: int) -> list[int]:
        return [v for k, v, _ in self.requests if k == api_key]

    def _serve(self) -> None:
        try:
            down, _ = self.listener.accept()
        except OSError:
            return
        up = socket.create_connection(self.target, timeout=IO_TIMEOUT_S)
        down.settimeout(IO_TIMEOUT_S)
        self._socks += [down, up]
        back = threading.Thread(target=self._pump, args=(up, down, False), daemon=True)
        self._threads.append(back)
        back.start()
        self._pump(down, up, True)

    def _pump(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        pending = bytearray()
        try:
            while chunk := src.recv(65536):
                if requests:
                    pending += chunk
                    self._cut(pending)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _cut(self, pending: bytearray) -> None:
        while len(pending) >= 4:
            (size,) = struct.unpack_from(">i", pending, 0)
            if len(pending) < 4 + size:
                return
            frame = memoryview(bytes(pending[4 : 4 + size]))
            del pending[: 4 + size]
            header = read_request_header(frame)
            body = decode_request(header.api_key, header.api_version, frame, header.body_offset)
            self.requests.append((header.api_key, header.api_version, body))

    def close(self) -> None:
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in recv
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(IO_TIMEOUT_S)


@pytest.fixture
def tap(kafka_broker: str) -> Any:
    t = WireTap(kafka_broker)
    try:
        yield t
    finally:
        t.close()


def _values(records: Any) -> list[bytes | None]:
    return [r.value for b in decode_batches(records) for r in b.records]


def _topic(client: Client, name: str) -> None:
    """Create ``name`` through Metadata's auto-creation (the broker's default)."""
    meta = client.metadata([name], allow_auto_topic_creation=True)
    assert meta.topics[name].error_code == 0
    assert meta.topics[name].partitions


def test_negotiation_sends_api_versions_first_then_highest_common_versions(
    tap: WireTap,
) -> None:
    with Client(tap.address, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "neg")
        c.produce("neg", 0, build_batch([(None, b"a")]))
        c.fetch([("neg", 0, 0)], max_wait_ms=0)
        c.list_offsets("neg", 0, LATEST)
        c.offset_for_leader_epoch("neg", 0, 0)
        # typed fetches name topics, so they stop at v12 (v13+ names them by id only)
        assert c.version_for("Fetch") == min(SUPPORTED[FETCH][1], 12)
    assert tap.requests[0][0] == API_VERSIONS
    assert tap.requests[0][1] == SUPPORTED[API_VERSIONS][1]
    for key in (METADATA, LIST_OFFSETS, EPOCH):
        assert tap.versions(key) == [SUPPORTED[key][1]], key
    # Produce v13 and Fetch v13+ name topics by id, which typed calls do not send: v12.
    assert tap.versions(PRODUCE) == [min(SUPPORTED[PRODUCE][1], 12)]
    assert tap.versions(FETCH) == [12]


def test_capped_maximum_version_is_the_one_sent(tap: WireTap) -> None:
    caps = {"Fetch": 4, "Produce": 3, METADATA: 1, "ApiVersions": 2}
    with Client(tap.address, max_versions=caps, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "capped")
        assert c.produce("capped", 0, build_batch([(None, b"old")])) == 0
        got = c.fetch([("capped", 0, 0)], max_wait_ms=0)[0]
    assert _values(got.records) == [b"old"]
    assert tap.versions(API_VERSIONS) == [2]
    assert tap.versions(METADATA) == [1]
    assert tap.versions(PRODUCE) == [3]
    assert tap.versions(FETCH) == [4]


def test_no_common_version_is_refused_before_sending(tap: WireTap) -> None:
    # Fetch v0-3 predate RecordBatch v2 (Kafka 4 removed them): capping at 3 leaves nothing.
    with Client(tap.address, max_versions={"Fetch": 3}, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "nover")
        with pytest.raises(UnsupportedVersionError, match="Fetch: no common version") as info:
            c.fetch([("nover", 0, 0)])
        assert isinstance(info.value, EdplogError)
        assert c.metadata(["nover"]).topics["nover"].error_code == 0  # still usable
    assert tap.versions(FETCH) == []


def test_produce_then_fetch_round_trips_records(kafka_broker: str) -> None:
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "rt")
        assert c.produce("rt", 0, build_batch([(b"k", b"v1"), (None, b"v2")])) == 0
        assert c.produce("rt", 0, build_batch([(None, b"v3")], compression="lz4"), acks=1) == 2
        got = c.fetch([FetchPosition("rt", 0, 0)], max_wait_ms=0)
    assert len(got) == 1
    part = got[0].raise_for_error()
    assert (part.topic, part.partition, part.error_code) == ("rt", 0, 0)
    assert part.high_watermark == part.last_stable_offset == 3
    assert part.log_start_offset == 0
    assert isinstance(part.records, memoryview)
    assert _values(part.records) == [b"v1", b"v2", b"v3"]
    assert part.next_offset() == 3


def test_produce_with_acks_zero_gets_no_response_and_the_next_call_still_matches(
    kafka_broker: str,
) -> None:
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "fire")
        assert c.produce("fire", 0, build_batch([(None, b"x")]), acks=0) == -1
        assert c.list_offsets("fire", 0, LATEST).offset == 1


def test_fetch_reads_several_partitions_in_one_request(kafka_broker_factory: Any) -> None:
    broker = kafka_broker_factory(num_partitions=3)
    with Client(broker.bootstrap, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "multi")
        for p in range(3):
            c.produce("multi", p, build_batch([(None, b"p%d" % p)] * (p + 1)))
        got = c.fetch([("multi", p, 0) for p in range(3)], max_wait_ms=0)
    assert sorted((g.partition, _values(g.records)) for g in got) == [
        (0, [b"p0"]),
        (1, [b"p1"] * 2),
        (2, [b"p2"] * 3),
    ]


def test_fetch_as_follower_reaches_the_log_end(tap: WireTap) -> None:
    with Client(tap.address, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "follow")
        for i in range(20):
            c.produce("follow", 0, build_batch([(None, b"%d" % i)] * 50))
        end = c.list_offsets("follow", 0, LATEST).offset
        epoch = c.list_offsets("follow", 0, EARLIEST).leader_epoch
        offset, seen = 0, []
        for _ in range(100):  # bounded: 1000 records in small fetches
            if offset >= end:
                break
            pos = FetchPosition("follow", 0, offset, current_leader_epoch=epoch)
            pos = pos._replace(partition_max_bytes=1000)
            part = c.fetch([pos], replica_id=0, max_wait_ms=0, max_bytes=1000)[0]
            part.raise_for_error()
            seen += _values(part.records)
            offset = part.next_offset()
    assert offset == end == 1000
    assert seen == [b"%d" % i for i in range(20) for _ in range(50)]
    fetches = [body for key, _, body in tap.requests if key == FETCH]
    assert fetches and all(b["replica_id"] == 0 for b in fetches)


def test_follower_id_goes_in_replica_state_from_fetch_v15() -> None:
    call = fetch_call(
        [FetchPosition("t", 0, 5)],
        max_wait_ms=0,
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        replica_id=2,
        replica_epoch=7,
    )
    old = call.build(FETCH_REPLICA_STATE_FROM - 1)
    assert old["replica_id"] == 2 and "replica_state" not in old
    new = call.build(FETCH_REPLICA_STATE_FROM)
    assert new["replica_id"] == -1
    assert new["replica_state"] == {"replica_id": 2, "replica_epoch": 7}


def test_a_fetch_by_topic_id_goes_at_v15_plus_with_the_followers_broker_epoch(
    tap: WireTap,
) -> None:
    """Positions that carry the topic's id (from Metadata v12) let the typed fetch go past
    v12: on the wire it is v15+ with the topic by id and ReplicaState holding the follower's
    id and broker epoch (KIP-903); the answer is read back under the topic's name."""
    with Client(tap.address, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "byid")
        c.produce("byid", 0, build_batch([(None, b"a"), (None, b"b")]))
        meta = c.call(
            METADATA,
            12,
            {
                "topics": [{"topic_id": uuid.UUID(int=0), "name": "byid"}],
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False,
            },
        )
        topic_id = meta["topics"][0]["topic_id"]
        assert topic_id != uuid.UUID(int=0)
        pos = FetchPosition("byid", 0, 0, topic_id=topic_id)
        (part,) = c.fetch([pos], replica_id=0, replica_epoch=41, max_wait_ms=0)
    part.raise_for_error()
    assert (part.topic, _values(part.records)) == ("byid", [b"a", b"b"])
    (version, body) = next((v, b) for key, v, b in tap.requests if key == FETCH)
    assert version >= FETCH_REPLICA_STATE_FROM
    assert body["topics"][0]["topic_id"] == topic_id
    assert body["replica_state"] == {"replica_id": 0, "replica_epoch": 41}


def test_long_poll_returns_when_another_client_produces(kafka_broker: str) -> None:
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as producer:
        _topic(producer, "wake")
        result: list[Any] = []
        with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as consumer:
            consumer.metadata(["wake"])  # negotiated before the thread starts

            def poll() -> None:
                result.append(consumer.fetch([("wake", 0, 0)], max_wait_ms=120_000))

            t = threading.Thread(target=poll, daemon=True)
            t.start()
            producer.produce("wake", 0, build_batch([(None, b"hello")]))
            # Far below max_wait: only the append can have answered the long poll.
            t.join(IO_TIMEOUT_S)
            assert not t.is_alive()
    assert _values(result[0][0].records) == [b"hello"]


def test_pipelined_requests_come_back_in_order(kafka_broker: str) -> None:
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "pipe")
        fetch = fetch_call(
            [FetchPosition("pipe", 0, 0)],
            max_wait_ms=300,
            min_bytes=1,
            max_bytes=1 << 20,
            isolation_level=0,
            replica_id=-1,
            replica_epoch=-1,
        )
        version = c.version_for(FETCH)
        sent = [
            (FETCH, c.send(FETCH, version, fetch.build(version), wait_ms=300)),
            (METADATA, c.send(METADATA, None, {"topics": None})),
            (API_VERSIONS, c.send(API_VERSIONS, 0, {})),
            (PRODUCE, c.send(PRODUCE, None, _produce_body("pipe", b"late"))),
        ]
        with pytest.raises(ClientError, match="pipelined"):
            c.list_offsets("pipe", 0, LATEST)
        got = [c.receive() for _ in sent]
        assert [(r.api_key, r.correlation_id) for r in got] == sent
        assert got[0].body["responses"][0]["partitions"][0]["error_code"] == 0
        assert got[3].body["responses"][0]["partition_responses"][0]["base_offset"] == 0
        assert c.list_offsets("pipe", 0, LATEST).offset == 1


def _produce_body(topic: str, value: bytes) -> dict[str, Any]:
    return {
        "transactional_id": None,
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [
            {
                "name": topic,
                "partition_data": [{"index": 0, "records": build_batch([(None, value)])}],
            }
        ],
    }


def test_unknown_topic_raises_unknown_topic_or_partition(kafka_broker: str) -> None:
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
        with pytest.raises(KafkaError) as info:
            c.produce("nowhere", 0, build_batch([(None, b"x")]))
        err = info.value
        assert err.error_code == UNKNOWN_TOPIC_OR_PARTITION
        assert err.name == "UNKNOWN_TOPIC_OR_PARTITION"
        assert (err.topic, err.partition) == ("nowhere", 0)
        assert kafka_code_of(err) == UNKNOWN_TOPIC_OR_PARTITION
        assert "nowhere-0" in str(err)
        with pytest.raises(KafkaError) as info:
            c.list_offsets("nowhere", 0, EARLIEST)
        assert info.value.error_code == UNKNOWN_TOPIC_OR_PARTITION
        part = c.fetch([("nowhere", 0, 0)], max_wait_ms=0)[0]
        assert part.error_code == UNKNOWN_TOPIC_OR_PARTITION
        with pytest.raises(KafkaError, match="UNKNOWN_TOPIC_OR_PARTITION"):
            part.raise_for_error()
        assert c.metadata(["nowhere"]).topics["nowhere"].error_code == UNKNOWN_TOPIC_OR_PARTITION


def test_broker_closing_the_connection_raises_connection_error(kafka_broker: str) -> None:
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
        c.api_versions()
        # An API key nobody defined: the broker closes the connection, as Kafka does.
        c.send_raw(struct.pack(">ihhih", 10, 32000, 0, 1, -1))
        with pytest.raises(ConnectionError) as info:
            c.metadata()
        assert isinstance(info.value, ConnectionClosedError)
        assert c.closed
        with pytest.raises(ConnectionClosedError, match="closed"):
            c.list_offsets("t", 0, LATEST)


def test_broker_stopping_under_a_connected_client_raises_connection_error(
    kafka_broker_factory: Any,
) -> None:
    broker = kafka_broker_factory()
    c = Client(broker.bootstrap, timeout_s=IO_TIMEOUT_S)
    try:
        _topic(c, "gone")
        broker.stop()
        with pytest.raises(BrokerConnectionError):
            c.metadata()
    finally:
        c.close()


def test_connecting_to_a_closed_port_raises_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(BrokerConnectionError, match="cannot connect") as info:
        Client(f"127.0.0.1:{port}", connect_timeout_s=5)
    assert isinstance(info.value, ConnectionError)


def test_a_silent_peer_times_out_and_the_connection_ends() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        c = Client(f"127.0.0.1:{server.getsockname()[1]}", timeout_s=0.2)
        peer, _ = server.accept()
        try:
            with pytest.raises(RequestTimeoutError) as info:
                c.api_versions()
            assert isinstance(info.value, TimeoutError)
            assert c.closed
        finally:
            peer.close()
            c.close()


def test_list_offsets_earliest_latest_and_by_time(kafka_broker: str) -> None:
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "times")
        for ts in (1000, 2000, 3000):
            c.produce("times", 0, build_batch([{"value": b"t", "timestamp_ms": ts}] * 2))
        assert c.list_offsets("times", 0, EARLIEST).offset == 0
        assert c.list_offsets("times", 0, LATEST).offset == 6
        hit = c.list_offsets("times", 0, 1500)
        assert (hit.offset, hit.timestamp_ms) == (2, 2000)
        assert c.list_offsets("times", 0, 3000).offset == 4
        assert c.list_offsets("times", 0, 9999).offset == -1


def test_offset_for_leader_epoch_returns_the_end_of_the_epoch(kafka_broker: str) -> None:
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "epochs")
        c.produce("epochs", 0, build_batch([(None, b"e")] * 4))
        epoch = c.list_offsets("epochs", 0, LATEST).leader_epoch
        got = c.offset_for_leader_epoch("epochs", 0, epoch, replica_id=1)
        assert got.leader_epoch == epoch
        assert got.end_offset == 4
        with pytest.raises(KafkaError) as info:
            c.offset_for_leader_epoch("nowhere", 0, epoch)
        assert info.value.error_code == UNKNOWN_TOPIC_OR_PARTITION


def test_fetch_into_a_receive_buffer_reuses_it_and_grows_it(kafka_broker: str) -> None:
    buf = ReceiveBuffer(64)
    first = buf.data
    with Client(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
        _topic(c, "buf")
        c.produce("buf", 0, build_batch([(None, b"x" * 1000)] * 4))
        part = c.fetch([("buf", 0, 0)], max_wait_ms=0, buffer=buf)[0]
        grown = buf.data
        assert grown is not first and len(grown) > 4000
        assert part.records.obj is grown  # the records are a view into the buffer, not a copy
        assert _values(part.records) == [b"x" * 1000] * 4
        del part
        again = c.fetch([("buf", 0, 2)], max_wait_ms=0, buffer=buf)[0]
        assert buf.data is grown and again.records.obj is grown
        assert again.next_offset() == 4


def test_async_fetch_into_a_receive_buffer_reuses_it(kafka_broker: str) -> None:
    """The asyncio client reads a fetch response into the buffer given: the records are views
    into it, the next fetch reuses it, and calls without a buffer in between get their own."""

    async def main() -> None:
        buf = ReceiveBuffer(64)
        async with await AsyncClient.connect(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
            await c.metadata(["abuf"], allow_auto_topic_creation=True)
            await c.produce("abuf", 0, build_batch([(None, b"y" * 1000)] * 4))
            part = (await c.fetch([("abuf", 0, 0)], max_wait_ms=0, buffer=buf))[0]
            grown = buf.data
            assert len(grown) > 4000 and part.records.obj is grown
            assert _values(part.records) == [b"y" * 1000] * 4
            own = (await c.fetch([("abuf", 0, 0)], max_wait_ms=0))[0]
            assert own.records.obj is not grown and _values(own.records) == _values(part.records)
            again = (await c.fetch([("abuf", 0, 3)], max_wait_ms=0, buffer=buf))[0]
            assert buf.data is grown and again.records.obj is grown
            assert again.next_offset() == 4

    asyncio.run(main())


def test_scan_records_leaves_out_a_partial_tail_batch() -> None:
    data = build_batch([(None, b"a")] * 3) + build_batch([(None, b"b")] * 2, base_offset=3)
    whole = scan_records(data)
    assert (whole.batches, whole.records, whole.last_offset) == (2, 5, 4)
    first_len = len(build_batch([(None, b"a")] * 3))
    for cut in (first_len, first_len + 1, first_len + 20, len(data) - 1):
        span = scan_records(memoryview(data)[:cut])
        assert (span.batches, span.last_offset, span.valid_bytes) == (1, 2, first_len), cut
    assert scan_records(memoryview(data)[: first_len - 1]).last_offset == -1


def test_async_client_round_trip_and_pipelined_calls(kafka_broker: str) -> None:
    async def main() -> None:
        async with await AsyncClient.connect(kafka_broker, timeout_s=IO_TIMEOUT_S) as c:
            meta = await c.metadata(["aio"], allow_auto_topic_creation=True)
            assert meta.topics["aio"].error_code == 0
            assert await c.produce("aio", 0, build_batch([(None, b"one")])) == 0
            # A long poll and a produce in flight on one connection at once: the produce is
            # answered after the fetch (responses come in order), and its data ends the poll.
            poll = asyncio.ensure_future(
                c.fetch([("aio", 0, 1)], max_wait_ms=120_000, replica_id=0)
            )
            base = await asyncio.wait_for(
                c.produce("aio", 0, build_batch([(None, b"two")])), IO_TIMEOUT_S
            )
            got = (await asyncio.wait_for(poll, IO_TIMEOUT_S))[0]
            assert base == 1
            assert _values(got.records) == [b"two"] and got.next_offset() == 2
            everything = (await c.fetch([("aio", 0, 0)], max_wait_ms=0))[0]
            assert _values(everything.records) == [b"one", b"two"]
            assert (await c.list_offsets("aio", 0, LATEST)).offset == 2
            assert (await c.offset_for_leader_epoch("aio", 0, 0)).end_offset == 2
            with pytest.raises(KafkaError) as info:
                await c.produce("nowhere", 0, build_batch([(None, b"x")]))
            assert info.value.error_code == UNKNOWN_TOPIC_OR_PARTITION

    asyncio.run(main())


def test_async_client_reports_a_closed_connection(kafka_broker_factory: Any) -> None:
    broker = kafka_broker_factory()

    async def main() -> None:
        c = await AsyncClient.connect(broker.bootstrap, timeout_s=IO_TIMEOUT_S)
        try:
            await c.metadata(["aio-gone"], allow_auto_topic_creation=True)
            poll = asyncio.ensure_future(c.fetch([("aio-gone", 0, 0)], max_wait_ms=120_000))
            await asyncio.sleep(0)  # the request is on the wire
            await asyncio.get_running_loop().run_in_executor(None, broker.stop)
            try:
                await asyncio.wait_for(poll, IO_TIMEOUT_S)
            except ConnectionClosedError:
                pass  # closed before the broker answered the parked poll
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(c.metadata(), IO_TIMEOUT_S)
            assert c.closed
        finally:
            await c.close()

    asyncio.run(main())


def test_async_connect_to_a_closed_port_raises_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]

    async def main() -> None:
        with pytest.raises(BrokerConnectionError, match="cannot connect"):
            await AsyncClient.connect(f"127.0.0.1:{port}", connect_timeout_s=5)

    asyncio.run(main())


def test_async_silent_peer_times_out() -> None:
    async def main() -> None:
        server = socket.create_server(("127.0.0.1", 0))
        server.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            connecting = asyncio.ensure_future(
                AsyncClient.connect(f"127.0.0.1:{server.getsockname()[1]}", timeout_s=0.2)
            )
            peer, _ = await loop.sock_accept(server)
            try:
                with pytest.raises(RequestTimeoutError):
                    await asyncio.wait_for(connecting, IO_TIMEOUT_S)
            finally:
                peer.close()
        finally:
            server.close()

    asyncio.run(main())
