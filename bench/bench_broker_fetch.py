"""Raw Fetch of already-written data beside a plain ``os.sendfile`` of the same segment file.

Both sides move the same bytes over loopback TCP into one reused receive buffer, alternating
run by run so that machine noise hits both: the limit is ``os.sendfile`` of the partition's
segment file in ``--chunk``-sized calls to a connected socket (a receiver thread drains it);
the broker side is a ``python -m edplog broker`` child process answering Fetch v4 requests
from :mod:`edplog.client` (max_wait 0, one in flight, ``--chunk`` bytes per partition, one
reused receive buffer) whose records are never decoded (a native scan of the batch headers
finds the next offset). Every run stops at a time cap.

Run: python bench/bench_broker_fetch.py [--size 100] [--mib 256] [--runs 5]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOPIC = "bench"
BATCH_BYTES = 256 << 10


def write_log(data_dir: str, size: int, total_bytes: int) -> int:
    """Append ``total_bytes`` of uncompressed v2 batches of ``size``-byte records."""
    from edplog._native import BatchBuilder
    from edplog.storage import Store

    payload = os.urandom(size // 2).hex().encode()[:size].ljust(size, b"x")
    parts: list[bytes] = []
    built = 0
    while built < 4 << 20:
        builder = BatchBuilder()
        while builder.size_bytes < BATCH_BYTES:
            builder.append(payload, timestamp_ms=1_700_000_000_000)
        batch = builder.build()
        parts.append(batch)
        built += len(batch)
    chunk = b"".join(parts)
    store = Store(data_dir)
    try:
        store.create_topic(TOPIC, 1)
        log = store.log(TOPIC, 0)
        written = 0
        while written < total_bytes:
            log.append_batches(chunk)
            written += len(chunk)
        store.flush()
    finally:
        store.close()
    return written


def segment_files(data_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(data_dir, "**", f"{TOPIC}-0", "*.log"), recursive=True))


def sendfile_run(files: list[str], chunk: int, seconds: float) -> float:
    """Bytes/s of os.sendfile(chunk) from the segment files to a loopback socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    out = socket.create_connection(("127.0.0.1", port))
    inp, _ = listener.accept()
    listener.close()
    received = [0]

    def drain() -> None:
        buf = memoryview(bytearray(chunk))
        while True:
            n = inp.recv_into(buf)
            if not n:
                return
            received[0] += n

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    fds = [os.open(f, os.O_RDONLY) for f in files]
    sizes = [os.fstat(fd).st_size for fd in fds]
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        while time.perf_counter() < deadline:
            for fd, size in zip(fds, sizes, strict=True):
                pos = 0
                while pos < size:
                    n = os.sendfile(out.fileno(), fd, pos, min(chunk, size - pos))
                    pos += n
                    sent += n
    finally:
        out.close()
        thread.join(10)
        inp.close()
        for fd in fds:
            os.close(fd)
    return received[0] / (time.perf_counter() - start)


def fetch_run(port: int, chunk: int, seconds: float) -> float:
    """Record bytes/s of Fetch v4 from offset 0 to the end, wrapping, one request in flight."""
    from edplog.client import Client, FetchPosition, ReceiveBuffer

    buffer = ReceiveBuffer(chunk + (1 << 20))
    moved = offset = 0
    position = FetchPosition(TOPIC, 0, 0, partition_max_bytes=chunk)
    with Client(f"127.0.0.1:{port}", client_id="bench", max_versions={"Fetch": 4}) as client:
        client.api_versions()  # before the clock starts
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            (part,) = client.fetch(
                [position._replace(offset=offset)],
                max_wait_ms=0,
                max_bytes=chunk,
                buffer=buffer,
            )
            if part.error_code:
                raise RuntimeError(f"fetch error {part.error_code} at offset {offset}")
            nxt = part.next_offset()
            if nxt == offset:
                raise RuntimeError(f"no complete batch at offset {offset}")
            moved += len(part.records)
            offset = 0 if nxt >= part.high_watermark else nxt
    return moved / (time.perf_counter() - start)


def start_broker(data_dir: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edplog",
            "broker",
            "--data-dir",
            data_dir,
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"ready on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"broker did not start: {line!r}")
    return proc, int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100, help="record size in bytes")
    ap.add_argument("--mib", type=int, default=256, help="log size to write and read")
    ap.add_argument("--chunk", type=int, default=8 << 20, help="bytes per sendfile / fetch")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="time cap of one run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edplog-bench-fetch-") as data_dir:
        write_log(data_dir, args.size, args.mib << 20)
        files = segment_files(data_dir)
        if not files:
            raise RuntimeError("no segment file was written")
        proc, port = start_broker(data_dir)
        try:
            fetch_run(port, args.chunk, 0.3)  # warm-up: page cache, codecs, connections
            sendfile_run(files, args.chunk, 0.3)
            limit, fetch = [], []
            for _ in range(args.runs):
                limit.append(sendfile_run(files, args.chunk, args.seconds))
                fetch.append(fetch_run(port, args.chunk, args.seconds))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    ratios = [f / s for f, s in zip(fetch, limit, strict=True)]
    print(f"records {args.size} B, log {args.mib} MiB, {args.chunk >> 20} MiB per call/fetch")
    print(
        f"os.sendfile limit : {statistics.median(limit) / 1e9:.2f} GB/s "
        f"({min(limit) / 1e9:.2f}-{max(limit) / 1e9:.2f})"
    )
    print(
        f"broker raw Fetch  : {statistics.median(fetch) / 1e9:.2f} GB/s "
        f"({min(fetch) / 1e9:.2f}-{max(fetch) / 1e9:.2f})"
    )
    print(
        f"ratio (run pairs) : {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}), goal >= 0.8x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
