"""A consumer of many partitions: sessionless Fetch v12 beside KIP-227 incremental Fetch v16.

One ``python -m edplog broker`` child process serves a topic of ``--partitions`` partitions
(one batch each, written before it starts). Per step a producer connection appends one small
batch to ``--hot`` partitions (round robin), then the consumer connection sends one Fetch
(max_wait 0) and moves its positions past what it got. Only the fetch round trips are timed.

- sessionless v12: every Fetch names every partition; every response lists every partition;
- incremental v16: one full fetch (epoch 0) opens a session, then each Fetch names only the
  partitions whose position moved and each response lists only the partitions with news.

The two modes alternate run by run (same broker, same process), so machine noise hits both;
each run stops at a time cap. Reported: request and response bytes per fetch, fetches/s and
the incremental/sessionless ratios.

Run: python bench/bench_fetch_sessions.py [--partitions 200] [--hot 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

from bench_broker_fetch import start_broker

TOPIC = "sessions"
FETCH, METADATA = 1, 3
PARTITION_MAX_BYTES = 1 << 20


def write_topic(data_dir: str, partitions: int) -> None:
    from edplog._native import BatchBuilder
    from edplog.storage import Store

    store = Store(data_dir)
    try:
        store.create_topic(TOPIC, partitions)
        for p in range(partitions):
            builder = BatchBuilder()
            builder.append(b"x" * 100)
            store.log(TOPIC, p).append_batches(builder.build())
        store.flush()
    finally:
        store.close()


class Consumer:
    """One connection sending hand-built Fetch frames, counting the bytes both ways."""

    def __init__(self, port: int, partitions: int, incremental: bool) -> None:
        from edplog.client import Client

        self.client = Client(f"127.0.0.1:{port}", client_id="bench-sessions")
        self.client.api_versions()
        self.incremental = incremental
        self.version = 16 if incremental else 12
        self.topic_id = self._topic_id()
        self.offsets = dict.fromkeys(range(partitions), 0)
        self.moved: set[int] = set(range(partitions))
        self.session_id = 0
        self.epoch = 0 if incremental else -1
        self.cid = 0
        self.request_bytes = self.response_bytes = self.fetches = 0
        self.seconds = 0.0

    def _topic_id(self) -> uuid.UUID:
        body = {
            "topics": [{"name": TOPIC, "topic_id": uuid.UUID(int=0)}],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        }
        topic_id: uuid.UUID = self.client.call(METADATA, 12, body)["topics"][0]["topic_id"]
        return topic_id

    def _body(self) -> dict[str, Any]:
        wanted = self.moved if self.incremental and self.epoch > 0 else self.offsets
        parts = [
            {
                "partition": p,
                "fetch_offset": self.offsets[p],
                "partition_max_bytes": PARTITION_MAX_BYTES,
            }
            for p in sorted(wanted)
        ]
        topic = {"topic_id": self.topic_id} if self.incremental else {"topic": TOPIC}
        return {
            "replica_id": -1,
            "max_wait_ms": 0,
            "min_bytes": 1,
            "max_bytes": 50 << 20,
            "isolation_level": 0,
            "session_id": self.session_id,
            "session_epoch": self.epoch,
            "topics": [{**topic, "partitions": parts}] if parts else [],
            "forgotten_topics_data": [],
            "rack_id": "",
        }

    def fetch(self) -> None:
        from edplog.client import scan_records
        from edplog.protocol import decode_response, encode_request

        self.cid += 1
        frame = encode_request(FETCH, self.version, self.cid, "bench-sessions", self._body())
        start = time.perf_counter()
        self.client.send_raw(frame)
        reply = self.client.read_frame()
        self.seconds += time.perf_counter() - start
        _, body = decode_response(FETCH, self.version, memoryview(reply))
        if body["error_code"]:
            raise RuntimeError(f"fetch error {body['error_code']}")
        self.request_bytes += len(frame)
        self.response_bytes += len(reply) + 4
        self.fetches += 1
        self.moved = set()
        for t in body["responses"]:
            for p in t["partitions"]:
                if p["error_code"]:
                    raise RuntimeError(f"partition error {p['error_code']}")
                last = scan_records(p["records"] or b"").last_offset
                if last >= self.offsets[p["partition_index"]]:
                    self.offsets[p["partition_index"]] = last + 1
                    self.moved.add(p["partition_index"])
        if self.incremental:
            self.session_id = body["session_id"]
            if not self.session_id:
                raise RuntimeError("the broker opened no session")
            self.epoch = self.epoch + 1

    def close(self) -> None:
        self.client.close()


def run(consumer: Consumer, producer: Any, partitions: int, hot: int, seconds: float) -> None:
    from edplog._native import BatchBuilder

    builder = BatchBuilder()
    builder.append(b"y" * 100)
    batch = builder.build()
    deadline = time.perf_counter() + seconds
    step = 0
    while time.perf_counter() < deadline:
        for i in range(hot):
            producer.produce(TOPIC, (step * hot + i) % partitions, batch)
        consumer.fetch()
        step += 1


def main() -> int:
    from edplog.client import Client

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=200)
    ap.add_argument("--hot", type=int, default=2, help="partitions written between fetches")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="time cap of one run")
    args = ap.parse_args()
    results: dict[bool, list[Consumer]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="edplog-bench-sessions-") as data_dir:
        write_topic(data_dir, args.partitions)
        proc, port = start_broker(data_dir)
        try:
            with Client(f"127.0.0.1:{port}", client_id="bench-producer") as producer:
                for i in range(args.runs + 1):  # the first pair warms up
                    for incremental in (False, True):
                        c = Consumer(port, args.partitions, incremental)
                        try:
                            c.fetch()  # the first, full fetch (and the session) untimed
                            c.request_bytes = c.response_bytes = c.fetches = 0
                            c.seconds = 0.0
                            run(c, producer, args.partitions, args.hot, args.seconds)
                        finally:
                            c.close()
                        if i:
                            results[incremental].append(c)
        finally:
            proc.terminate()
            proc.wait(30)

    def stats(cs: list[Consumer]) -> tuple[float, float, float]:
        rate = statistics.median(c.fetches / c.seconds for c in cs)
        req = statistics.median(c.request_bytes / c.fetches for c in cs)
        resp = statistics.median(c.response_bytes / c.fetches for c in cs)
        return rate, req, resp

    plain, inc = stats(results[False]), stats(results[True])
    print(f"{args.partitions} partitions, {args.hot} written between fetches, {args.runs} runs")
    for name, (rate, req, resp) in (("sessionless v12", plain), ("incremental v16", inc)):
        print(f"{name}: {rate:8.0f} fetches/s, request {req:7.0f} B, response {resp:7.0f} B")
    print(
        f"incremental/sessionless: fetches/s {inc[0] / plain[0]:.2f}x, "
        f"request bytes {inc[1] / plain[1]:.3f}x, response bytes {inc[2] / plain[2]:.3f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
