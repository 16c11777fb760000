"""Test helpers: a blocking raw-socket Kafka client and record batch builders.

The raw client encodes requests with edplog.protocol and reads frames off a real socket, so
protocol tests see exactly what a client would, including closed connections.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any

from edplog._native import BatchBuilder
from edplog.protocol import decode_response, encode_request

IO_TIMEOUT_S = 10.0


class RawClient:
    """One connection; ``call`` sends a request and returns the decoded response body."""

    def __init__(self, bootstrap: str, timeout_s: float = IO_TIMEOUT_S) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self._cid = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, api_key: int, version: int, body: dict[str, Any]) -> int:
        self._cid += 1
        self.sock.sendall(encode_request(api_key, version, self._cid, "edplog-test", body))
        return self._cid

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exact(4))[0]
        return self._read_exact(size)

    def recv(self, api_key: int, version: int) -> tuple[int, dict[str, Any]]:
        return decode_response(api_key, version, memoryview(self.read_frame()))

    def call(self, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any]:
        cid = self.send(api_key, version, body)
        got, resp = self.recv(api_key, version)
        assert got == cid
        return resp

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("closed by the broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def is_closed_by_peer(self) -> bool:
        """True once the broker has closed this connection (bounded by the socket timeout)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def batch(
    values: list[bytes | None],
    *,
    keys: list[bytes | None] | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    compression: str | None = None,
) -> bytes:
    """One RecordBatch v2 as a producer would send it."""
    b = BatchBuilder()
    for i, value in enumerate(values):
        b.append(value, key=keys[i] if keys else None)
    return b.build(
        compression=compression,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )


def produce_body(topic: str, partition: int, records: bytes | None, acks: int = 1) -> dict:
    return {
        "transactional_id": None,
        "acks": acks,
        "timeout_ms": 5000,
        "topic_data": [
            {"name": topic, "partition_data": [{"index": partition, "records": records}]}
        ],
    }


def fetch_body(
    topic: str,
    partition: int,
    offset: int,
    *,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    max_bytes: int = 1 << 20,
    partition_max_bytes: int = 1 << 20,
) -> dict:
    return {
        "replica_id": -1,
        "max_wait_ms": max_wait_ms,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": partition,
                        "current_leader_epoch": -1,
                        "fetch_offset": offset,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": partition_max_bytes,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }


def create_topic(client: RawClient, name: str, partitions: int = 1) -> None:
    resp = client.call(
        19,
        4,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [],
                }
            ],
            "timeout_ms": 5000,
            "validate_only": False,
        },
    )
    assert resp["topics"][0]["error_code"] == 0, resp


class BrokerProcess:
    """``edplog broker`` as a child process: started, waited for, stopped by its own pid."""

    def __init__(self, data_dir: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edplog",
                "broker",
                "--data-dir",
                data_dir,
                "--listen",
                "127.0.0.1:0",
                "--override",
                "group.initial.rebalance.delay.ms=0",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the ready line, or "" if the broker died
        if "ready on" not in line:
            self.proc.kill()
            raise RuntimeError(f"broker did not start: {line!r} {self.proc.stderr.read()}")
        self.ready_line = line
        self.bootstrap = line.split("ready on ", 1)[1].split()[0]

    def terminate(self, timeout_s: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def wait_until(predicate: Any, timeout_s: float = 15.0, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or the time is up (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
