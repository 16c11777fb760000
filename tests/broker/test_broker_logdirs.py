"""Several log dirs (``log.dirs``) through a real broker, real files and real clients:
placement, DescribeLogDirs, meta.properties checks, and a log dir whose disk fails (a real
ext4 filesystem on a loop device, shut down with EXT4_IOC_SHUTDOWN so every write returns
EIO, as a dying disk does)."""

from __future__ import annotations

import fcntl
import os
import struct
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
from docs_examples import example, run_example
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, NoError

from edplog.errors import ErrorCode
from edplog.records import decode_batches
from edplog.testing import start_broker

PRODUCE, FETCH, METADATA, DESCRIBE_LOG_DIRS = 0, 1, 3, 35
EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_LOGFLUSH = 1


def _produce(c: RawClient, topic: str, partition: int, values: list[bytes]) -> dict:
    resp = c.call(PRODUCE, 7, produce_body(topic, partition, batch(values), acks=-1))
    return resp["responses"][0]["partition_responses"][0]


def _values(c: RawClient, topic: str, partition: int) -> list[bytes | None]:
    resp = c.call(FETCH, 11, fetch_body(topic, partition, 0))
    part = resp["responses"][0]["partitions"][0]
    assert part["error_code"] == 0, part
    return [r.value for b in decode_batches(bytes(part["records"] or b"")) for r in b.records]


def _describe(c: RawClient, version: int = 4, topics: list | None = None) -> dict:
    return c.call(DESCRIBE_LOG_DIRS, version, {"topics": topics})


def _placement(dirs: list[str], topic: str, partitions: int) -> dict[int, str]:
    where: dict[int, str] = {}
    for d in dirs:
        for p in range(partitions):
            if os.path.isdir(os.path.join(d, f"{topic}-{p}")):
                assert p not in where, f"{topic}-{p} is in {where[p]} and {d}"
                where[p] = d
    return where


def test_partitions_spread_over_three_dirs_and_come_back_after_a_restart(tmp_path) -> None:
    """Create 6 partitions over 3 log dirs: each dir gets 2 (the fewest-partitions rule),
    each partition lives in exactly one dir, every dir has a meta.properties naming this
    broker; after a restart every record produced is served from where it was."""
    dirs = [str(tmp_path / n) for n in ("a", "b", "c")]
    broker = start_broker(",".join(dirs))
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "spread", partitions=6)
            for p in range(6):
                assert _produce(c, "spread", p, [b"v%d" % p])["error_code"] == 0
    finally:
        broker.stop()
    where = _placement(dirs, "spread", 6)
    assert sorted(where) == list(range(6))
    assert sorted(list(where.values()).count(d) for d in dirs) == [2, 2, 2]
    for d in dirs:
        with open(os.path.join(d, "meta.properties")) as f:
            text = f.read()
        assert "broker.id=0" in text and "cluster.id=" in text
    broker = start_broker(",".join(dirs))
    try:
        with RawClient(broker.bootstrap) as c:
            for p in range(6):
                assert _values(c, "spread", p) == [b"v%d" % p]
    finally:
        broker.stop()
    assert _placement(dirs, "spread", 6) == where


def test_describe_log_dirs_with_kafka_python_and_a_raw_request(tmp_path) -> None:
    """kafka-python's describe_log_dirs() and a raw DescribeLogDirs v1-v4 list every log dir
    with its partitions and their sizes (the bytes of their files on disk); v4 carries the
    filesystem's total and usable bytes (statvfs); naming one partition lists only it."""
    dirs = [str(tmp_path / n) for n in ("a", "b")]
    broker = start_broker(",".join(dirs))
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "dl", partitions=2)
            assert _produce(c, "dl", 0, [bytes(5000)])["error_code"] == 0
            admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
            try:
                described = admin.describe_log_dirs()
            finally:
                admin.close()
            text = repr(described)
            assert all(d in text for d in dirs), text
            for version in (1, 2, 3, 4):
                resp = _describe(c, version)
                results = {r["log_dir"]: r for r in resp["results"]}
                assert set(results) == set(dirs)
                sizes = {}
                for d, r in results.items():
                    assert r["error_code"] == 0
                    for t in r["topics"]:
                        for p in t["partitions"]:
                            assert p["offset_lag"] == 0 and p["is_future_key"] is False
                            path = os.path.join(d, f"{t['name']}-{p['partition_index']}")
                            on_disk = sum(
                                os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)
                            )
                            assert p["partition_size"] == on_disk
                            sizes[(t["name"], p["partition_index"])] = p["partition_size"]
                assert sizes[("dl", 0)] > 5000 and ("dl", 1) in sizes
                if version >= 4:
                    st = os.statvfs(dirs[0])
                    r = results[dirs[0]]
                    assert r["total_bytes"] == st.f_blocks * st.f_frsize
                    assert 0 < r["usable_bytes"] <= r["total_bytes"]
            only = _describe(c, 4, [{"topic": "dl", "partitions": [1]}])
            listed = [
                (t["name"], p["partition_index"])
                for r in only["results"]
                for t in r["topics"]
                for p in t["partitions"]
            ]
            assert listed == [("dl", 1)]
    finally:
        broker.stop()


def test_a_log_dir_of_another_broker_is_refused(tmp_path) -> None:
    """A log dir whose meta.properties names another broker (a disk mounted on the wrong
    machine) stops the start with a message naming the file; nothing is served from it."""
    dirs = [str(tmp_path / n) for n in ("a", "b")]
    broker = start_broker(",".join(dirs))
    broker.stop()
    with open(os.path.join(dirs[1], "meta.properties"), "w") as f:
        f.write("version=0\nbroker.id=7\ncluster.id=other\n")
    with pytest.raises(RuntimeError) as info:
        start_broker(",".join(dirs))
    assert "meta.properties" in str(info.value.__cause__)
    assert "broker 7" in str(info.value.__cause__)


# ---- a failing disk ------------------------------------------------------------------------


@pytest.fixture
def ext4_mount(tmp_path):
    """A small ext4 filesystem on a loop device (root only), mounted at tmp_path/mnt."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    image, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make an ext4 image: {made.stderr.decode().strip()}")

    def mount() -> None:
        done = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a loop device: {done.stderr.decode().strip()}")

    mount()
    try:
        yield mnt, mount
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fail_disk(mnt) -> None:
    """Shut the filesystem down: from now on every write and fsync under it returns EIO."""
    fd = os.open(mnt, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_LOGFLUSH))
    finally:
        os.close(fd)


def test_a_failed_log_dir_goes_offline_and_the_others_keep_serving(
    tmp_path, ext4_mount, caplog
) -> None:
    """Two log dirs, one on a disk that then fails (EIO): produces to its partitions answer
    KAFKA_STORAGE_ERROR, Metadata lists them offline, DescribeLogDirs reports the dir with
    KAFKA_STORAGE_ERROR, and the partitions of the good dir keep accepting and serving every
    record; one log line names the dir. A restart with the disk back serves every record
    acknowledged before the failure."""
    mnt, mount = ext4_mount
    good, bad = str(tmp_path / "good"), str(mnt / "logs")
    broker = start_broker(f"{good},{bad}")
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "jb", partitions=4)
            where = _placement([good, bad], "jb", 4)
            on_bad = sorted(p for p, d in where.items() if d == bad)
            on_good = sorted(p for p, d in where.items() if d == good)
            assert len(on_bad) == 2 and len(on_good) == 2
            for p in range(4):
                assert _produce(c, "jb", p, [b"before-%d" % p])["error_code"] == 0
            _fail_disk(mnt)
            codes = {p: _produce(c, "jb", p, [b"after-%d" % p])["error_code"] for p in on_bad}
            assert set(codes.values()) == {ErrorCode.KAFKA_STORAGE_ERROR}, codes
            for p in on_bad:  # offline now: answered at once, nothing touches the disk
                assert _produce(c, "jb", p, [b"x"])["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
            for p in on_good:
                for i in range(20):
                    assert _produce(c, "jb", p, [b"more-%d" % i])["error_code"] == 0
                assert _values(c, "jb", p) == [b"before-%d" % p] + [
                    b"more-%d" % i for i in range(20)
                ]
            meta = c.call(METADATA, 9, {"topics": [{"name": "jb"}]})
            parts = {q["partition_index"]: q for q in meta["topics"][0]["partitions"]}
            for p in on_bad:
                assert parts[p]["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
                assert parts[p]["offline_replicas"] == [0]
            for p in on_good:
                assert parts[p]["error_code"] == 0 and parts[p]["offline_replicas"] == []
            results = {r["log_dir"]: r for r in _describe(c)["results"]}
            assert results[bad]["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
            assert results[bad]["topics"] == []
            assert results[good]["error_code"] == 0
    finally:
        broker.stop()
    lines = [r.getMessage() for r in caplog.records if "log dir" in r.getMessage()]
    assert sum(f"log dir {bad} is offline" in m for m in lines) == 1, lines
    subprocess.run(["umount", str(mnt)], check=True)
    mount()
    broker = start_broker(f"{good},{bad}")
    try:
        with RawClient(broker.bootstrap) as c:
            for p in on_bad:
                assert _values(c, "jb", p) == [b"before-%d" % p]
                assert _produce(c, "jb", p, [b"back"])["error_code"] == 0
            for p in on_good:
                assert len(_values(c, "jb", p)) == 21
    finally:
        broker.stop()


def test_a_log_dir_unusable_at_start_is_offline_and_the_broker_starts(tmp_path, ext4_mount) -> None:
    """A log dir whose disk fails while the broker is down: the broker starts without it;
    its partitions are offline (never recreated empty elsewhere) and the others serve. With
    that dir as the only one, the start fails with a message naming it."""
    mnt, _ = ext4_mount
    good, bad = str(tmp_path / "good"), str(mnt / "logs")
    broker = start_broker(f"{good},{bad}")
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "st", partitions=2)
            for p in range(2):
                assert _produce(c, "st", p, [b"v%d" % p])["error_code"] == 0
    finally:
        broker.stop()
    where = _placement([good, bad], "st", 2)
    _fail_disk(mnt)
    broker = start_broker(f"{good},{bad}")
    try:
        with RawClient(broker.bootstrap) as c:
            for p, d in where.items():
                if d == good:
                    assert _values(c, "st", p) == [b"v%d" % p]
                else:
                    got = _produce(c, "st", p, [b"x"])["error_code"]
                    assert got == ErrorCode.KAFKA_STORAGE_ERROR
                    assert not os.path.exists(os.path.join(good, f"st-{p}"))
    finally:
        broker.stop()
    with pytest.raises(RuntimeError) as info:
        start_broker(bad)
    assert bad in str(info.value.__cause__)


def test_the_broker_stops_when_its_last_log_dir_fails(ext4_mount) -> None:
    """One log dir, and its disk fails under a producer: the produce answers
    KAFKA_STORAGE_ERROR and the broker shuts itself down (Kafka does) instead of serving
    nothing."""
    mnt, _ = ext4_mount
    broker = start_broker(str(mnt / "logs"))
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "last", partitions=1)
            assert _produce(c, "last", 0, [b"v"])["error_code"] == 0
            _fail_disk(mnt)
            got = _produce(c, "last", 0, [b"w"])["error_code"]
            assert got == ErrorCode.KAFKA_STORAGE_ERROR
        assert broker._thread is not None
        assert wait_until(lambda: not broker._thread.is_alive(), timeout_s=20)
    finally:
        broker.stop()


# ---- moving a partition between log dirs (AlterReplicaLogDirs) ------------------------------

ALTER_REPLICA_LOG_DIRS = 34


def _move(c: RawClient, topic: str, partition: int, path: str, version: int = 2) -> int:
    body = {"dirs": [{"path": path, "topics": [{"name": topic, "partitions": [partition]}]}]}
    resp = c.call(ALTER_REPLICA_LOG_DIRS, version, body)
    return resp["results"][0]["partitions"][0]["error_code"]


def _produce_retrying(c: RawClient, topic: str, value: bytes, attempts: int = 200) -> None:
    """Produce like a client: KAFKA_STORAGE_ERROR (the brief swap of a move) is retried."""
    for _ in range(attempts):
        code = _produce(c, topic, 0, [value])["error_code"]
        if code == 0:
            return
        assert code == ErrorCode.KAFKA_STORAGE_ERROR, code
        time.sleep(0.01)
    raise AssertionError(f"{value!r} was never acknowledged")


def test_alter_replica_log_dirs_moves_a_partition_under_load_and_loses_nothing(
    tmp_path,
) -> None:
    """Fill a partition over several segments, ask (AlterReplicaLogDirs v1 and v2) to move it
    to the other log dir while a producer keeps writing: every acknowledged record is
    served, in order, from the new dir; the old dir no longer holds it and DescribeLogDirs
    lists it there. Unknown dirs answer LOG_DIR_NOT_FOUND; unknown partitions
    UNKNOWN_TOPIC_OR_PARTITION; a move to the dir it is in is a no-op."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    broker = start_broker(f"{a},{b}", log_segment_bytes=65536)
    acked: list[bytes] = []
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "mv", partitions=1)
            src = _placement([a, b], "mv", 1)[0]
            dst = b if src == a else a
            for i in range(300):
                value = b"%06d" % i + bytes(1000)
                _produce_retrying(c, "mv", value)
                acked.append(value)
            assert _move(c, "mv", 0, str(tmp_path / "nowhere")) == ErrorCode.LOG_DIR_NOT_FOUND
            assert _move(c, "nope", 0, dst) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            assert _move(c, "mv", 0, src, version=1) == 0
            assert _move(c, "mv", 0, dst) == 0
            i = len(acked)
            deadline = time.monotonic() + 60
            while not _placement([a, b], "mv", 1)[0] == dst or os.path.exists(
                os.path.join(dst, "mv-0-future")
            ):
                assert time.monotonic() < deadline, "the move never finished"
                value = b"%06d" % i + bytes(1000)
                _produce_retrying(c, "mv", value)
                acked.append(value)
                i += 1
            for j in range(i, i + 50):
                value = b"%06d" % j + bytes(1000)
                _produce_retrying(c, "mv", value)
                acked.append(value)
            served: list[bytes | None] = []
            while len(served) < len(acked):
                resp = c.call(FETCH, 11, fetch_body("mv", 0, len(served)))
                part = resp["responses"][0]["partitions"][0]
                assert part["error_code"] == 0, part
                got = [
                    r.value
                    for bt in decode_batches(bytes(part["records"] or b""))
                    for r in bt.records
                ]
                assert got, "fetch returned nothing before the end"
                served.extend(got)
            assert served == acked
            assert not os.path.exists(os.path.join(src, "mv-0"))
            results = {r["log_dir"]: r for r in _describe(c)["results"]}
            assert "mv" in [t["name"] for t in results[dst]["topics"]]
            assert all(t["name"] != "mv" for t in results[src]["topics"])
    finally:
        broker.stop()


def test_a_sigkill_during_a_move_leaves_one_whole_log(tmp_path) -> None:
    """Kill -9 the broker while a move copies a partition of several MB: after a restart the
    partition is in exactly one dir, no half-made ``-future`` copy is left, and every
    acknowledged record is served."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    broker = BrokerProcess(f"{a},{b}", "--override", "log.segment.bytes=1048576")
    acked: list[bytes] = []
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "kill", partitions=1)
            src = _placement([a, b], "kill", 1)[0]
            dst = b if src == a else a
            for i in range(40):
                values = [b"%03d-%03d" % (i, k) + bytes(5000) for k in range(100)]
                assert _produce(c, "kill", 0, values)["error_code"] == 0
                acked.extend(values)
            assert _move(c, "kill", 0, dst) == 0
            assert wait_until(
                lambda: (
                    os.path.exists(os.path.join(dst, "kill-0-future"))
                    or os.path.exists(os.path.join(dst, "kill-0"))
                ),
                timeout_s=20,
                interval_s=0.001,
            )
        broker.kill()
    finally:
        broker.stop()
    broker = BrokerProcess(f"{a},{b}")
    try:
        with RawClient(broker.bootstrap) as c:
            where = _placement([a, b], "kill", 1)
            assert set(where) == {0}
            assert not os.path.exists(os.path.join(dst, "kill-0-future"))
            served: list[bytes | None] = []
            while len(served) < len(acked):
                resp = c.call(FETCH, 11, fetch_body("kill", 0, len(served)))
                part = resp["responses"][0]["partitions"][0]
                assert part["error_code"] == 0, part
                got = [
                    r.value
                    for bt in decode_batches(bytes(part["records"] or b""))
                    for r in bt.records
                ]
                assert got
                served.extend(got)
            assert served == acked
    finally:
        broker.stop()


def test_describe_log_dirs_example_in_docs_runs(tmp_path, capsys) -> None:
    """The DescribeLogDirs example in docs/broker.md runs as written against a broker with
    two log dirs and prints both."""
    code = example("broker.md", "describe_log_dirs")
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    broker = start_broker(",".join(dirs))
    try:
        run_example(code.replace("127.0.0.1:9092", broker.bootstrap), "docs/broker.md")
    finally:
        broker.stop()
    out = capsys.readouterr().out
    assert all(d in out for d in dirs), out


def test_a_move_onto_a_failed_disk_leaves_the_partition_serving_where_it_was(
    tmp_path, ext4_mount
) -> None:
    """Ask to move a partition onto a log dir whose disk has failed (EIO, not yet noticed):
    the move fails, that dir goes offline, and the partition keeps every record and keeps
    taking writes in its old dir; a second request for that dir gets KAFKA_STORAGE_ERROR."""
    mnt, _ = ext4_mount
    good, bad = str(tmp_path / "good"), str(mnt / "logs")
    broker = start_broker(f"{good},{bad}")
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "stay", partitions=2)
            p = next(q for q, d in _placement([good, bad], "stay", 2).items() if d == good)
            assert _produce(c, "stay", p, [b"one"])["error_code"] == 0
            _fail_disk(mnt)
            assert _move(c, "stay", p, bad) == 0  # accepted: the move runs in the background
            assert wait_until(
                lambda: _describe(c)["results"][1]["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
            )
            assert _move(c, "stay", p, bad) == ErrorCode.KAFKA_STORAGE_ERROR
            assert _produce(c, "stay", p, [b"two"])["error_code"] == 0
            assert _values(c, "stay", p) == [b"one", b"two"]
            assert os.path.isdir(os.path.join(good, f"stay-{p}"))
    finally:
        broker.stop()


def test_kafka_python_moves_a_partition_while_its_producer_writes(tmp_path) -> None:
    """kafka-python's alter_replica_log_dirs() moves a partition while a kafka-python producer
    (acks=all, retries on) keeps sending: every record the producer was told was written is
    consumed, in order, with nothing else, and the partition ends up in the new dir."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    broker = start_broker(f"{a},{b}", log_segment_bytes=65536)
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "kp", partitions=1)
        src = _placement([a, b], "kp", 1)[0]
        dst = b if src == a else a
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap,
            acks="all",
            retries=50,
            retry_backoff_ms=20,
            max_in_flight_requests_per_connection=1,
            linger_ms=2,
        )
        acked: list[bytes] = []
        failed: list[bytes] = []
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            for i in range(1500):
                value = b"%06d" % i + bytes(300)
                try:
                    producer.send("kp", value, partition=0).get(timeout=30)
                except KafkaError:
                    failed.append(value)
                    continue
                acked.append(value)
                if i == 500:
                    answer = admin.alter_replica_log_dirs({("kp", 0, 0): dst})
                    assert list(answer.values()) == [NoError]
        finally:
            producer.close()
            admin.close()
        assert wait_until(lambda: _placement([a, b], "kp", 1)[0] == dst, timeout_s=30)
        consumer = KafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        try:
            consumer.assign([TopicPartition("kp", 0)])
            consumed = [m.value for m in consumer]
        finally:
            consumer.close()
        assert consumed == acked
        assert len(acked) + len(failed) == 1500
    finally:
        broker.stop()


# ---- a move in progress, seen by DescribeLogDirs (its future replica) -----------------------

MOVE_RATE = 8 << 20  # replica.alter.log.dirs.io.max.bytes.per.second: 24 MB take about 3 s
DELETE_TOPICS = 20


def _fill(c: RawClient, topic: str, requests: int = 60) -> None:
    """24 MB in ``topic``-0: 60 produce requests of 100 records of 4 KB."""
    for r in range(requests):
        values = [b"%06d" % (r * 100 + i) + bytes(4090) for i in range(100)]
        assert _produce(c, topic, 0, values)["error_code"] == 0


def _listed(c: RawClient, topic: str) -> dict[tuple[str, bool], dict]:
    """(log dir, is_future_key) -> the partition entry of ``topic``-0, from DescribeLogDirs v4."""
    out = {}
    for r in _describe(c, 4)["results"]:
        assert r["error_code"] == 0, r
        for t in r["topics"]:
            for p in t["partitions"]:
                if t["name"] == topic and p["partition_index"] == 0:
                    out[(r["log_dir"], p["is_future_key"])] = p
    return out


def _delete_topic(c: RawClient, name: str) -> int:
    resp = c.call(DELETE_TOPICS, 4, {"topic_names": [name], "timeout_ms": 30000})
    return resp["responses"][0]["error_code"]


def test_describe_log_dirs_shows_a_moving_partition_as_a_future_replica(tmp_path) -> None:
    """Move a 24 MB partition with its copy capped at 8 MB/s, polling DescribeLogDirs (raw v4
    and kafka-python's describe_log_dirs()): while it copies, the destination lists it with
    is_future_key true, a size that grows and an offset_lag that never grows and shrinks,
    and the source still lists it as the current replica; meanwhile creating and deleting
    another topic answers (bounded at 30 s) with the move still running. Afterwards only the
    destination lists it, is_future_key false, offset_lag 0, and every record is served."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    broker = start_broker(
        f"{a},{b}",
        log_segment_bytes=8 << 20,
        replica_alter_log_dirs_io_max_bytes_per_second=MOVE_RATE,
    )
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "fut", partitions=1)
            _fill(c, "fut")
            src = _placement([a, b], "fut", 1)[0]
            dst = b if src == a else a
            assert _move(c, "fut", 0, dst) == 0
            seen: list[dict] = []
            admin_done = kafka_python_saw = False
            for _ in range(400):
                listed = _listed(c, "fut")
                if (dst, True) not in listed:
                    if seen:
                        break  # the swap is done
                    time.sleep(0.02)
                    continue
                assert (src, False) in listed, listed
                seen.append(listed[(dst, True)])
                if not admin_done:
                    create_topic(c, "side", partitions=2)  # each answers: bounded by the client
                    assert _delete_topic(c, "side") == 0
                    admin_done = True
                    assert (dst, True) in _listed(c, "fut"), "the move ended before the admin"
                elif not kafka_python_saw:
                    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
                    try:
                        described = admin.describe_log_dirs()
                    finally:
                        admin.close()
                    kafka_python_saw = any(
                        d["log_dir"] == dst and p["is_future_key"] and p["offset_lag"] > 0
                        for node in described
                        for d in node["log_dirs"]
                        for t in d["topics"]
                        if t["name"] == "fut"
                        for p in t["partitions"]
                    )
                time.sleep(0.1)
            assert admin_done and kafka_python_saw
            assert len(seen) >= 3, seen
            lags = [p["offset_lag"] for p in seen]
            assert lags == sorted(lags, reverse=True) and lags[0] > lags[-1], lags
            assert max(p["partition_size"] for p in seen) > seen[0]["partition_size"]
            assert wait_until(lambda: set(_listed(c, "fut")) == {(dst, False)}, timeout_s=30)
            final = _listed(c, "fut")[(dst, False)]
            assert final["offset_lag"] == 0 and final["partition_size"] > 24_000_000
            assert not os.path.exists(os.path.join(dst, "fut-0-future"))
            assert _placement([a, b], "fut", 1)[0] == dst

            def first_fetch() -> dict:
                resp = c.call(FETCH, 11, fetch_body("fut", 0, 0))
                return resp["responses"][0]["partitions"][0]

            # The broker swaps in the new log just after the files moved: retried, as clients do.
            assert wait_until(lambda: first_fetch()["error_code"] == 0, timeout_s=20)
            got = _values(c, "fut", 0)
            assert got[0] == b"000000" + bytes(4090)
    finally:
        broker.stop()


def test_deleting_the_moving_topic_mid_copy_abandons_the_move(tmp_path) -> None:
    """Delete a topic through DeleteTopics while its 24 MB partition is being copied to the
    other dir (throttled): the delete succeeds, DescribeLogDirs lists the partition nowhere,
    no directory of it (nor its -future copy) is left in either dir, and a new topic of the
    same name can be created, written and read."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    broker = start_broker(
        f"{a},{b}",
        log_segment_bytes=8 << 20,
        replica_alter_log_dirs_io_max_bytes_per_second=MOVE_RATE,
    )
    try:
        with RawClient(broker.bootstrap) as c:
            create_topic(c, "doomed", partitions=1)
            _fill(c, "doomed")
            src = _placement([a, b], "doomed", 1)[0]
            dst = b if src == a else a
            assert _move(c, "doomed", 0, dst) == 0
            assert wait_until(lambda: (dst, True) in _listed(c, "doomed"), timeout_s=20)
            assert _delete_topic(c, "doomed") == 0
            assert wait_until(lambda: not _listed(c, "doomed"), timeout_s=20)

            def leftovers() -> list[str]:
                return [n for d in (a, b) for n in os.listdir(d) if n.startswith("doomed-")]

            assert wait_until(lambda: leftovers() == [], timeout_s=20), leftovers()
            create_topic(c, "doomed", partitions=1)
            assert wait_until(lambda: _produce(c, "doomed", 0, [b"again"])["error_code"] == 0)
            assert _values(c, "doomed", 0) == [b"again"]
    finally:
        broker.stop()


def test_the_move_throttle_property_is_honoured_and_other_replica_properties_refused() -> None:
    """replica.alter.log.dirs.io.max.bytes.per.second is read (a positive integer; 0 or text
    is refused with its name), while replica.* properties edplog does not implement are
    refused."""
    from edplog.broker.config import BrokerConfig
    from edplog.errors import InvalidConfigError

    base = {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": "/nonexistent-edplog"}
    name = "replica.alter.log.dirs.io.max.bytes.per.second"
    config = BrokerConfig.from_properties({**base, name: "1048576"})
    assert config.replica_alter_log_dirs_io_max_bytes_per_second == 1048576
    assert name not in config.unknown_properties
    for bad in ("0", "fast"):
        with pytest.raises(InvalidConfigError, match=name):
            BrokerConfig.from_properties({**base, name: bad})
    with pytest.raises(InvalidConfigError, match="replica.selector.class"):
        BrokerConfig.from_properties({**base, "replica.selector.class": "x.Selector"})
