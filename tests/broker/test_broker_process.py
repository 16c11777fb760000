"""``edplog broker`` as a process: the ready line, signals, restarts, crash durability; the
client commands; kcat from Debian."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from broker_helpers import BrokerProcess, RawClient, batch, fetch_body, produce_body

pytestmark = pytest.mark.clients
CLI_TIMEOUT_S = 60


def _edplog(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edplog", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def test_sigterm_shuts_down_cleanly_and_data_survives(tmp_path) -> None:
    broker = BrokerProcess(str(tmp_path))
    try:
        assert broker.ready_line.startswith("edplog broker ready on 127.0.0.1:")
        with RawClient(broker.bootstrap) as c:
            resp = c.call(0, 9, produce_body("persist", 0, batch([b"x", b"y"]), acks=1))
            # unknown topic without auto-creation on Produce: Kafka's answer
            assert resp["responses"][0]["partition_responses"][0]["error_code"] == 3
        assert (
            _edplog(
                "topics", "create", "persist", "--partitions", "2", "-b", broker.bootstrap
            ).returncode
            == 0
        )
        with RawClient(broker.bootstrap) as c:
            c.call(0, 9, produce_body("persist", 1, batch([b"x", b"y"]), acks=1))
        assert broker.terminate() == 0
    finally:
        broker.stop()
    broker = BrokerProcess(str(tmp_path))
    try:
        with RawClient(broker.bootstrap) as c:
            part = c.call(1, 12, fetch_body("persist", 1, 0))["responses"][0]["partitions"][0]
            assert part["high_watermark"] == 2
    finally:
        broker.stop()


def test_sigkill_loses_no_acks_all_record_and_offsets_survive(tmp_path) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    broker = BrokerProcess(str(tmp_path))
    try:
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2})
        acked: list[int] = []
        for i in range(200):
            p.produce(
                "durable",
                value=b"%d" % i,
                on_delivery=lambda err, msg: err is None and acked.append(msg.offset()),
            )
        assert p.flush(30) == 0
        c = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "dur",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
            }
        )
        c.commit(offsets=[TopicPartition("durable", 0, 123)], asynchronous=False)
        c.close()
        broker.kill()
    finally:
        broker.stop()
    assert len(acked) == 200
    broker = BrokerProcess(str(tmp_path))
    try:
        with RawClient(broker.bootstrap) as raw:
            part = raw.call(1, 12, fetch_body("durable", 0, 0))["responses"][0]["partitions"][0]
            assert part["high_watermark"] >= max(acked) + 1
        c = Consumer(
            {"bootstrap.servers": broker.bootstrap, "group.id": "dur", "session.timeout.ms": 6000}
        )
        assert c.committed([TopicPartition("durable", 0)], timeout=15)[0].offset == 123
        c.close()
    finally:
        broker.stop()


def test_cli_produce_consume_topics_groups(tmp_path) -> None:
    broker = BrokerProcess(str(tmp_path))
    try:
        b = broker.bootstrap
        assert _edplog("topics", "create", "cli", "--partitions", "1", "-b", b).returncode == 0
        out = _edplog("produce", "cli", "-K", ":", "-b", b, stdin="k1:v1\nk2:v2\nplain\n")
        assert out.returncode == 0, out.stderr
        out = _edplog(
            "consume",
            "cli",
            "--from-beginning",
            "--max",
            "3",
            "-K",
            "=",
            "--group",
            "cli-g",
            "-b",
            b,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["k1=v1", "k2=v2", "=plain"]
        assert "cli" in _edplog("topics", "list", "-b", b).stdout.split()
        assert "PartitionCount: 1" in _edplog("topics", "describe", "cli", "-b", b).stdout
        assert "cli-g" in _edplog("groups", "list", "-b", b).stdout
        desc = _edplog("groups", "describe", "cli-g", "-b", b)
        assert "cli-0\t3" in desc.stdout, desc.stdout + desc.stderr
        assert _edplog("topics", "delete", "cli", "-b", b).returncode == 0
        assert "cli" not in _edplog("topics", "list", "-b", b).stdout.split()
    finally:
        broker.stop()


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_produce_consume_metadata(kafka_broker: str) -> None:
    def kcat(*args: str, stdin: str | None = None) -> str:
        out = subprocess.run(
            ["kcat", "-b", kafka_broker, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        kcat("-P", "-t", "kc", "-K", ":", "-z", codec, stdin=f"k-{codec}:v-{codec}\n")
    lines = kcat("-C", "-t", "kc", "-e", "-K", ":", "-o", "beginning").splitlines()
    assert lines == [f"k-{c}:v-{c}" for c in ("none", "gzip", "snappy", "lz4", "zstd")]
    assert 'topic "kc" with 1 partitions' in kcat("-L", "-t", "kc")


def test_perf_produce_then_raw_and_client_consume(kafka_broker: str) -> None:
    b = kafka_broker
    out = _edplog("perf", "produce", "-b", b, "--topic", "pf", "--records", "2000")
    assert out.returncode == 0, out.stderr
    assert "2,000 records" in out.stdout and "failed 0" in out.stdout
    for extra in ([], ["--raw"]):
        out = _edplog("perf", "consume", "-b", b, "--topic", "pf", "--records", "2000", *extra)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.startswith("2,000 records")
