"""A follower's copy loop (Fetch, then ``Log.append_as_follower``) beside its physical limits.

The replica fetcher's work without the cluster around it: an asyncio client fetches a
partition from a ``python -m edplog broker`` child process (max_wait 0, one fetch in flight,
``--chunk`` bytes per partition) and appends every response to a new log before it sends the
next fetch, as a follower must (the fetch offset tells the leader what the follower holds).
Two variants of that loop, and two limits, run in turn run by run, so machine noise hits all:

- ``fresh buffer``: every response read into a new bytearray (the asyncio client's default);
- ``reused buffer``: every response read into one ``ReceiveBuffer``;
- ``by topic id``: the same, with positions that carry the topic id, so the fetch goes at
  v17 by id with ReplicaState, as the replica fetcher's does (KIP-903);
- ``os.sendfile``: the segment files sent to a loopback socket drained by a thread (nothing
  written: the network side alone);
- ``os.write``: the same bytes written to a new file in 1 MiB calls (the page-cache write a
  follower cannot avoid; on a VM whose new memory faults slowly this is the lower bound).

Each run copies the whole log (``--mib``) into a new directory, deleted afterwards.

Run: python bench/bench_follower_fetch.py [--size 1024] [--mib 256] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench_broker_fetch import TOPIC, segment_files, sendfile_run, start_broker, write_log


def copy_run(port: int, chunk: int, target: str, reuse: bool, by_id: bool = False) -> float:
    """Bytes/s of fetching the partition from offset 0 to its end into a new log (``by_id``:
    positions carry the topic id, so the fetch is v17 by id, as the replica fetcher's)."""
    from edplog.client import AsyncClient, FetchPosition, ReceiveBuffer
    from edplog.storage import Log

    async def copy() -> float:
        buffer = ReceiveBuffer(chunk + 65536) if reuse else None
        log = Log(target)
        moved = offset = 0
        try:
            async with await AsyncClient.connect(f"127.0.0.1:{port}") as client:
                await client.api_versions()
                topic_id = await _topic_id(client) if by_id else None
                start = time.perf_counter()
                while True:
                    (part,) = await client.fetch(
                        [
                            FetchPosition(
                                TOPIC, 0, offset, partition_max_bytes=chunk, topic_id=topic_id
                            )
                        ],
                        max_wait_ms=0,
                        max_bytes=chunk,
                        buffer=buffer,
                    )
                    if part.error_code:
                        raise RuntimeError(f"fetch error {part.error_code} at offset {offset}")
                    if not len(part.records):
                        break
                    _, last = log.append_as_follower(part.records)
                    moved += len(part.records)
                    offset = last + 1
                    if offset >= part.high_watermark:
                        break
                return moved / (time.perf_counter() - start)
        finally:
            log.close()

    try:
        return asyncio.run(copy())
    finally:
        shutil.rmtree(target, ignore_errors=True)


async def _topic_id(client: Any) -> uuid.UUID:
    """The bench topic's id, from Metadata v12."""
    meta = await client.call(
        3,
        12,
        {
            "topics": [{"topic_id": uuid.UUID(int=0), "name": TOPIC}],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    return meta["topics"][0]["topic_id"]


def write_run(files: list[str], target: str) -> float:
    """Bytes/s of os.write of the segment files' bytes, 1 MiB a call, into a new file."""
    chunks = []
    for name in files:
        with open(name, "rb") as f:
            while block := f.read(1 << 20):
                chunks.append(block)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        start = time.perf_counter()
        for block in chunks:
            os.write(fd, block)
        return sum(map(len, chunks)) / (time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(target)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="record size in bytes")
    ap.add_argument("--mib", type=int, default=256, help="log size to write and copy")
    ap.add_argument("--chunk", type=int, default=1 << 20, help="replica.fetch.max.bytes")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edplog-bench-follower-") as work:
        data_dir = os.path.join(work, "leader")
        total = write_log(data_dir, args.size, args.mib << 20)
        files = segment_files(data_dir)
        proc, port = start_broker(data_dir)
        target = os.path.join(work, "copy")
        variants: dict[str, Callable[[], float]] = {
            "fresh buffer": lambda: copy_run(port, args.chunk, target, reuse=False),
            "reused buffer": lambda: copy_run(port, args.chunk, target, reuse=True),
            "by topic id": lambda: copy_run(port, args.chunk, target, reuse=True, by_id=True),
            "os.sendfile": lambda: sendfile_run(files, args.chunk, max(0.5, total / 2e9)),
            "os.write": lambda: write_run(files, target),
        }
        rates: dict[str, list[float]] = {name: [] for name in variants}
        try:
            for run in variants.values():  # warm-up: page cache, imports, connections
                run()
            for _ in range(args.runs):
                for name, run in variants.items():
                    rates[name].append(run())
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"records {args.size} B, log {args.mib} MiB, {args.chunk >> 10} KiB per fetch")
    for name, values in rates.items():
        print(
            f"{name:14s}: {statistics.median(values) / 1e6:7.0f} MB/s "
            f"({min(values) / 1e6:.0f}-{max(values) / 1e6:.0f})"
        )
    for top, name in (
        ("reused buffer", "fresh buffer"),
        ("reused buffer", "os.sendfile"),
        ("reused buffer", "os.write"),
        ("by topic id", "reused buffer"),
    ):
        ratios = [r / b for r, b in zip(rates[top], rates[name], strict=True)]
        print(
            f"{top} / {name:12s}: {statistics.median(ratios):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f}, run pairs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
