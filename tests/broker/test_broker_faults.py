"""Faults stay where they happen (DESIGN.md §5), through a real broker process and real clients:
hostile records, internal topics, restarts under idempotent producers, damaged and missing
files, and a disk that fills up. Each test says what was tried and what must survive."""

from __future__ import annotations

import os
import subprocess
import time

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

from edplog import _native
from edplog.broker import BackgroundBroker, BrokerConfig
from edplog.codecs import codec_id, compress
from edplog.errors import ErrorCode
from edplog.records import build_batch, decode_batches
from edplog.storage.segments import file_names

PRODUCE, FETCH, METADATA, INIT_PRODUCER_ID = 0, 1, 3, 22
FIND_COORDINATOR, OFFSET_COMMIT, OFFSET_FETCH = 10, 8, 9


def _produce(c: RawClient, topic: str, records: bytes, partition: int = 0, acks: int = -1):
    resp = c.call(PRODUCE, 9, produce_body(topic, partition, records, acks=acks))
    return resp["responses"][0]["partition_responses"][0]


def _fetch(c: RawClient, topic: str, partition: int = 0, offset: int = 0) -> dict:
    body = fetch_body(topic, partition, offset, max_bytes=64 << 20, partition_max_bytes=64 << 20)
    return c.call(FETCH, 12, body)["responses"][0]["partitions"][0]


def _values(part: dict) -> list[bytes | None]:
    data = part["records"]
    return [r.value for b in decode_batches(bytes(data)) for r in b.records] if data else []


def _all_values(c: RawClient, topic: str, partition: int = 0) -> list[bytes | None]:
    """Every record value up to the high watermark (a fetch returns one segment at most)."""
    out: list[bytes | None] = []
    offset = 0
    for _ in range(10_000):
        part = _fetch(c, topic, partition, offset)
        assert part["error_code"] == 0, part
        data = part["records"]
        if not data:
            break
        batches = decode_batches(bytes(data))
        out += [r.value for b in batches for r in b.records]
        offset = batches[-1].last_offset + 1
        if offset >= part["high_watermark"]:
            break
    return out


def _with_records_section(good: bytes, section: bytes) -> bytes:
    """A batch whose records section is replaced, its length and CRC made valid again: what
    a buggy or hostile producer sends."""
    out = bytearray(good[:61] + section)
    out[8:12] = (len(out) - 12).to_bytes(4, "big")
    out[17:21] = _native.crc32c(bytes(out[21:])).to_bytes(4, "big")
    return bytes(out)


# ---- hostile records --------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_garbage_inside_a_compressed_batch_is_corrupt_message(kafka_broker, codec) -> None:
    """A compressed batch with a correct CRC but garbage records: CORRUPT_MESSAGE, nothing
    stored; the next good batch is offset 0 and a consumer reads it (no stall)."""
    good = build_batch([(b"k", b"v")] * 2, compression=codec)
    bad = _with_records_section(good, compress(codec_id(codec), os.urandom(64) + bytes(100)))
    with RawClient(kafka_broker) as c:
        create_topic(c, "hostile")
        assert _produce(c, "hostile", bad)["error_code"] == ErrorCode.CORRUPT_MESSAGE
        ok = _produce(c, "hostile", good)
        assert (ok["error_code"], ok["base_offset"]) == (0, 0)
        assert _values(_fetch(c, "hostile")) == [b"v", b"v"]


def test_the_record_walk_can_be_switched_off_for_benchmarks(tmp_path) -> None:
    """BrokerConfig.validate_compressed_records=False (a benchmark switch, not a property)
    reaches the partitions: the same garbage batch is then stored, and only the CRC guards."""
    good = build_batch([(b"k", b"v")] * 2, compression="lz4")
    bad = _with_records_section(good, compress(codec_id("lz4"), os.urandom(64) + bytes(100)))
    config = BrokerConfig(data_dir=str(tmp_path), port=0, validate_compressed_records=False)
    with BackgroundBroker(config) as broker, RawClient(broker.bootstrap) as c:
        create_topic(c, "unchecked")
        assert _produce(c, "unchecked", bad)["error_code"] == 0
        crc_broken = bytearray(good)
        crc_broken[-1] ^= 0xFF
        assert (
            _produce(c, "unchecked", bytes(crc_broken))["error_code"] == ErrorCode.CORRUPT_MESSAGE
        )


def test_produce_to_an_internal_topic_is_refused(kafka_broker) -> None:
    """Kafka's rule: clients never write __consumer_offsets (one garbage batch there would
    otherwise break every later start). INVALID_TOPIC_EXCEPTION, and groups still work."""
    from confluent_kafka import Consumer, TopicPartition

    with RawClient(kafka_broker) as c:
        create_topic(c, "t")
        consumer = Consumer({"bootstrap.servers": kafka_broker, "group.id": "g"})
        consumer.commit(offsets=[TopicPartition("t", 0, 7)], asynchronous=False)
        for codec in (None, "zstd"):
            got = _produce(c, "__consumer_offsets", build_batch([(b"x", b"y")], compression=codec))
            assert got["error_code"] == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert consumer.committed([TopicPartition("t", 0)], timeout=10)[0].offset == 7
        consumer.close()


# ---- restarts under idempotent producers ------------------------------------------------


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_an_idempotent_retry_after_a_restart_is_a_duplicate(tmp_path, stop) -> None:
    """A producer's last batch, sent again after the broker restarted (clean, or SIGKILLed
    mid-stream), is answered as a success with its original offset (as Kafka answers a
    duplicate), and the stream goes on at the next sequence: no second copy."""
    broker = BrokerProcess(str(tmp_path))
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "idem")
            init = c.call(
                INIT_PRODUCER_ID,
                4,
                {
                    "transactional_id": None,
                    "transaction_timeout_ms": 0,
                    "producer_id": -1,
                    "producer_epoch": -1,
                },
            )
            pid, epoch = init["producer_id"], init["producer_epoch"]
            first = batch(
                [b"a", b"b", b"c"], producer_id=pid, producer_epoch=epoch, base_sequence=0
            )
            last = batch([b"d", b"e"], producer_id=pid, producer_epoch=epoch, base_sequence=3)
            assert _produce(c, "idem", first)["base_offset"] == 0
            assert _produce(c, "idem", last)["base_offset"] == 3
        if stop == "sigterm":
            assert broker.terminate() == 0
        else:
            broker.kill()
    finally:
        broker.stop()
    broker = BrokerProcess(str(tmp_path))
    try:
        with RawClient(broker.bootstrap) as c:
            dup = _produce(c, "idem", last)
            assert (dup["error_code"], dup["base_offset"]) == (ErrorCode.NONE, 3)
            nxt = batch([b"f"], producer_id=pid, producer_epoch=epoch, base_sequence=5)
            assert _produce(c, "idem", nxt)["base_offset"] == 5
            assert _values(_fetch(c, "idem")) == [b"a", b"b", b"c", b"d", b"e", b"f"]
            # A second InitProducerId gets a new id: ids never repeat across restarts.
            again = c.call(
                INIT_PRODUCER_ID,
                4,
                {
                    "transactional_id": None,
                    "transaction_timeout_ms": 0,
                    "producer_id": -1,
                    "producer_epoch": -1,
                },
            )
            assert again["producer_id"] != pid
    finally:
        broker.stop()


# ---- damaged and missing files ----------------------------------------------------------


def _flip(path: str, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x5A]))


def _fill(c: RawClient, topic: str, partition: int, batches: int, size: int = 2000) -> None:
    for i in range(batches):
        records = batch([b"%06d" % i + bytes(size)])
        assert _produce(c, topic, records, partition)["error_code"] == 0


def test_damaged_flushed_data_takes_only_its_partition_offline(tmp_path) -> None:
    """SIGKILL, then a flipped byte in fsynced data of partition 1's active segment: the
    broker starts, partition 1 answers KAFKA_STORAGE_ERROR (metadata, produce, fetch) and
    partition 0 keeps serving."""
    broker = BrokerProcess(str(tmp_path))
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "two", 2)
            for p in (0, 1):
                _fill(c, "two", p, 5)
        broker.kill()
    finally:
        broker.stop()
    _flip(file_names(str(tmp_path / "two-1"), 0)[0], 200)
    broker = BrokerProcess(str(tmp_path))
    try:
        with RawClient(broker.bootstrap) as c:
            meta = c.call(
                METADATA,
                12,
                {
                    "topics": [{"name": "two", "topic_id": None}],
                    "allow_auto_topic_creation": False,
                    "include_topic_authorized_operations": False,
                },
            )
            parts = {p["partition_index"]: p for p in meta["topics"][0]["partitions"]}
            assert parts[1]["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
            assert parts[0]["error_code"] == 0
            assert (
                _produce(c, "two", batch([b"x"]), 1)["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
            )
            assert _fetch(c, "two", 1)["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
            assert _produce(c, "two", batch([b"x"]), 0)["base_offset"] == 5
            assert len(_values(_fetch(c, "two", 0))) == 6
    finally:
        broker.stop()
    assert "partition two-1 is offline" in broker.proc.stderr.read()


def test_a_sealed_segment_with_a_bad_crc_is_never_served(tmp_path) -> None:
    """After a clean shutdown segments are trusted on load; a byte flipped in a sealed one
    is found by the CRC check the fetch path makes before sending: the partition goes
    offline and the damaged records never reach a client that skips CRC checks."""
    from confluent_kafka import Consumer, TopicPartition

    broker = BrokerProcess(str(tmp_path), "--override", "log.segment.bytes=16384")
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "sealed")
            _fill(c, "sealed", 0, 30)
        assert broker.terminate() == 0
    finally:
        broker.stop()
    first = file_names(str(tmp_path / "sealed-0"), 0)[0]
    _flip(first, 4200)  # inside the third batch of the first (sealed) segment
    broker = BrokerProcess(str(tmp_path), "--override", "log.segment.bytes=16384")
    try:
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "x",
                "check.crcs": False,
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition("sealed", 0, 0)])
        got, deadline = [], time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        consumer.close()
        # Nothing from the damaged region or after it was handed out unchecked.
        assert all(v[6:] == bytes(2000) for v in got)
        assert len(got) < 30
        with RawClient(broker.bootstrap) as c:
            assert _fetch(c, "sealed", 0, 0)["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
    finally:
        broker.stop()
    assert "damaged data" in broker.proc.stderr.read()


def test_a_missing_sealed_segment_is_refused_unless_accepted(tmp_path) -> None:
    broker = BrokerProcess(str(tmp_path), "--override", "log.segment.bytes=16384")
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "holes")
            _fill(c, "holes", 0, 30)
        assert broker.terminate() == 0
    finally:
        broker.stop()
    bases = sorted(int(n[:20]) for n in os.listdir(tmp_path / "holes-0") if n.endswith(".log"))
    assert len(bases) >= 3
    for name in file_names(str(tmp_path / "holes-0"), bases[1]):
        os.unlink(name)
    broker = BrokerProcess(str(tmp_path), "--override", "log.segment.bytes=16384")
    try:
        with RawClient(broker.bootstrap) as c:
            assert _fetch(c, "holes", 0, bases[2])["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
        assert broker.terminate() == 0
    finally:
        broker.stop()
    assert f"offsets [{bases[1]}, {bases[2]})" in broker.proc.stderr.read()
    broker = BrokerProcess(
        str(tmp_path),
        "--override",
        "log.segment.bytes=16384",
        "--override",
        "log.accept.missing.segments=true",
    )
    try:
        with RawClient(broker.bootstrap) as c:
            part = _fetch(c, "holes", 0, bases[2])
            assert part["error_code"] == 0 and _values(part)
    finally:
        broker.stop()


def test_a_damaged_offsets_partition_keeps_the_broker_up(tmp_path) -> None:
    """A batch with a valid CRC but garbage records in one partition of __consumer_offsets
    (on disk: clients cannot write there): the broker starts, groups placed in that partition
    get COORDINATOR_NOT_AVAILABLE (also per key and per group in batched FindCoordinator and
    OffsetFetch), groups placed in the other keep their offsets."""
    from edplog.group.offsets import java_string_hash

    args = ("--override", "offsets.topic.num.partitions=2")
    groups = {}
    for n in range(20):
        g = f"group-{n}"
        groups.setdefault((java_string_hash(g) & 0x7FFFFFFF) % 2, g)
        if len(groups) == 2:
            break
    broker = BrokerProcess(str(tmp_path), *args)
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "t")
            for g in groups.values():
                _commit(c, g, 11)
        assert broker.terminate() == 0
    finally:
        broker.stop()
    damaged = tmp_path / "__consumer_offsets-0"
    good = build_batch([(b"\x00\x01", b"x" * 40)] * 3, compression="zstd")
    bad = bytearray(_with_records_section(good, compress(codec_id("zstd"), os.urandom(120))))
    seg = file_names(str(damaged), 0)[0]
    end = sum(b.last_offset + 1 - b.base_offset for b in decode_batches(open(seg, "rb").read()))
    bad[0:8] = end.to_bytes(8, "big")  # the next offset: a well-formed place in the log
    with open(seg, "ab") as f:
        f.write(bad)
    os.unlink(damaged / ".clean-shutdown")  # recovery runs (and keeps the CRC-valid batch)
    broker = BrokerProcess(str(tmp_path), *args)
    try:
        with RawClient(broker.bootstrap) as c:
            codes = {}
            for p, g in groups.items():
                found = c.call(FIND_COORDINATOR, 3, {"key": g, "key_type": 0})
                codes[p] = found["error_code"]
            assert codes == {0: ErrorCode.COORDINATOR_NOT_AVAILABLE, 1: 0}
            assert _fetched(c, groups[1]) == 11
            batched = c.call(
                FIND_COORDINATOR, 6, {"key_type": 0, "coordinator_keys": [groups[0], groups[1]]}
            )
            assert [k["error_code"] for k in batched["coordinators"]] == [
                ErrorCode.COORDINATOR_NOT_AVAILABLE,
                0,
            ]
            both = c.call(
                OFFSET_FETCH,
                9,
                {"groups": [{"group_id": groups[p], "topics": None} for p in (0, 1)]},
            )["groups"]
            assert [g["error_code"] for g in both] == [ErrorCode.COORDINATOR_NOT_AVAILABLE, 0]
            assert both[1]["topics"][0]["partitions"][0]["committed_offset"] == 11
    finally:
        broker.stop()
    assert "__consumer_offsets-0 cannot be replayed" in broker.proc.stderr.read()


def _commit(c: RawClient, group: str, offset: int) -> None:
    resp = c.call(
        OFFSET_COMMIT,
        8,
        {
            "group_id": group,
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "group_instance_id": None,
            "retention_time_ms": -1,
            "topics": [
                {
                    "name": "t",
                    "partitions": [
                        {
                            "partition_index": 0,
                            "committed_offset": offset,
                            "committed_leader_epoch": -1,
                            "committed_metadata": "",
                        }
                    ],
                }
            ],
        },
    )
    assert resp["topics"][0]["partitions"][0]["error_code"] == 0, resp


def _fetched(c: RawClient, group: str) -> int:
    resp = c.call(
        OFFSET_FETCH,
        7,
        {
            "group_id": group,
            "require_stable": False,
            "topics": [{"name": "t", "partition_indexes": [0]}],
        },
    )
    return int(resp["topics"][0]["partitions"][0]["committed_offset"])


# ---- a full disk ------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_fails_requests_loudly_serves_no_failed_record_and_recovers(
    small_tmpfs,
) -> None:
    """Fill the disk under acks=-1 producers: every failure is KAFKA_STORAGE_ERROR (never
    UNKNOWN_SERVER_ERROR), no record of a failed request is ever served, every acknowledged
    one is; once space is freed the partition takes writes again without a restart, and
    SIGTERM still exits 0."""
    data = small_tmpfs / "data"
    spare = small_tmpfs / "spare"
    broker = BrokerProcess(str(data), "--override", "log.segment.bytes=262144")
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "full")
            with open(spare, "wb") as f:
                f.write(bytes(1 << 20))
            acked, failed, codes = [], [], []
            for i in range(5000):
                value = b"%06d" % i + bytes(2000)
                got = _produce(c, "full", batch([value]))
                if got["error_code"] == 0:
                    acked.append(value)
                else:
                    failed.append(value)
                    codes.append(got["error_code"])
                    if len(failed) >= 5:
                        break
            assert failed, "the disk never filled"
            assert set(codes) == {ErrorCode.KAFKA_STORAGE_ERROR}, codes
            served = _all_values(c, "full")
            assert served == acked  # every acknowledged record, and nothing told failed
            os.unlink(spare)
            revived = wait_until(
                lambda: _produce(c, "full", batch([b"after"]))["error_code"] == 0, timeout_s=20
            )
            assert revived
            served = _all_values(c, "full")
            assert served[: len(acked)] == acked and served[-1] == b"after"
            assert not set(failed) & set(served)
        assert broker.terminate() == 0
    finally:
        broker.stop()
    log = broker.proc.stderr.read()
    assert "Traceback" not in log and "writable again" in log
