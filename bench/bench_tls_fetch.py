"""Fetch throughput over a PLAINTEXT listener (sendfile) beside an SSL listener (preadv into a
staging buffer, encrypted by OpenSSL) of the same broker: the same data, the same client.

One ``python -m edplog broker`` child process serves both listeners from one log written
before it starts. The client is :class:`edplog.client.Client` (Fetch v4, max_wait 0, one
request in flight, ``--chunk`` bytes per fetch, one reused receive buffer, records never
decoded) given a plain socket or an ``ssl.SSLSocket``, so the only difference between the two
sides is TLS: the broker encrypting (and the client decrypting) every byte. Runs alternate
side by side so that machine noise hits both; the ratio is of run pairs.

Beside the throughput, the broker process's CPU time (``/proc/<pid>/stat``) per GB served:
on a shared machine it says what each side costs the broker even when the client, not the
broker, sets the pace.

A further line is the TLS limit of this machine and this Python: a thread ``sendall``-ing one
256 KiB buffer through an ``ssl.SSLSocket`` to the same kind of client over loopback, no
broker, no disk. The broker's SSL figure is to be read against it.

Run: python bench/bench_tls_fetch.py [--size 1024] [--mib 256] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_broker_fetch import TOPIC, write_log

from edplog.perf.compare.security import make_certificate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(data_dir: str, config: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edplog", "broker", "--data-dir", data_dir, "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not re.search(r"ready on 127\.0\.0\.1:\d+", line):
        proc.kill()
        raise RuntimeError(f"broker did not start: {line!r}")
    return proc


def connect(port: int, tls: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return tls.wrap_socket(sock, server_hostname="127.0.0.1") if tls is not None else sock


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch_run(port: int, tls: ssl.SSLContext | None, chunk: int, seconds: float) -> float:
    """Record bytes/s of Fetch v4 from offset 0 to the end, wrapping, one request in flight."""
    from edplog.client import Client, FetchPosition, ReceiveBuffer

    buffer = ReceiveBuffer(chunk + (1 << 20))
    moved = offset = 0
    position = FetchPosition(TOPIC, 0, 0, partition_max_bytes=chunk)
    with Client(
        f"127.0.0.1:{port}",
        client_id="bench",
        max_versions={"Fetch": 4},
        sock=connect(port, tls),
    ) as client:
        client.api_versions()  # before the clock starts
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            (part,) = client.fetch(
                [position._replace(offset=offset)], max_wait_ms=0, max_bytes=chunk, buffer=buffer
            )
            if part.error_code:
                raise RuntimeError(f"fetch error {part.error_code} at offset {offset}")
            nxt = part.next_offset()
            if nxt == offset:
                raise RuntimeError(f"no complete batch at offset {offset}")
            moved += len(part.records)
            offset = 0 if nxt >= part.high_watermark else nxt
    return moved / (time.perf_counter() - start)


def tls_limit_run(keystore: Path, tls: ssl.SSLContext, chunk: int, seconds: float) -> float:
    """Bytes/s through Python's ssl over loopback from a sender thread, no broker."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(keystore))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def send() -> None:
        raw, _ = listener.accept()
        with server_ctx.wrap_socket(raw, server_side=True) as out:
            buf = memoryview(bytearray(256 << 10))
            try:
                while not stop.is_set():
                    out.sendall(buf)
            except OSError:
                pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    received = 0
    with connect(port, tls) as inp:
        view = memoryview(bytearray(chunk))
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            received += inp.recv_into(view)
        elapsed = time.perf_counter() - start
        stop.set()
    thread.join(10)
    listener.close()
    return received / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="record size in bytes")
    ap.add_argument("--mib", type=int, default=256, help="log size to write and read")
    ap.add_argument("--chunk", type=int, default=8 << 20, help="bytes per fetch")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="time cap of one run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edplog-bench-tls-") as tmp:
        data_dir = os.path.join(tmp, "data")
        write_log(data_dir, args.size, args.mib << 20)
        keystore, truststore = make_certificate(Path(tmp))
        plain_port, tls_port = free_port(), free_port()
        config = Path(tmp) / "server.properties"
        config.write_text(
            f"listeners=PLAINTEXT://127.0.0.1:{plain_port},SSL://127.0.0.1:{tls_port}\n"
            f"ssl.keystore.type=PEM\nssl.keystore.location={keystore}\n"
        )
        tls = ssl.create_default_context(cafile=str(truststore))
        proc = start_broker(data_dir, config)
        try:
            fetch_run(plain_port, None, args.chunk, 0.3)  # warm-up: page cache, connections
            fetch_run(tls_port, tls, args.chunk, 0.3)
            with connect(tls_port, tls) as probe:
                assert isinstance(probe, ssl.SSLSocket)
                session = f"{probe.version()} {(probe.cipher() or ('?',))[0]}"
            plain, over_tls, limit = [], [], []
            plain_cpu, tls_cpu = [], []
            for _ in range(args.runs):
                for side, cpu, port, context in (
                    (plain, plain_cpu, plain_port, None),
                    (over_tls, tls_cpu, tls_port, tls),
                ):
                    start_cpu, started = cpu_seconds(proc.pid), time.perf_counter()
                    rate = fetch_run(port, context, args.chunk, args.seconds)
                    elapsed = time.perf_counter() - started
                    side.append(rate)
                    cpu.append((cpu_seconds(proc.pid) - start_cpu) / (rate * elapsed / 1e9))
                limit.append(tls_limit_run(keystore, tls, args.chunk, args.seconds))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    ratios = [t / p for t, p in zip(over_tls, plain, strict=True)]
    print(
        f"records {args.size} B, log {args.mib} MiB, {args.chunk >> 20} MiB per fetch, "
        f"{session}, {ssl.OPENSSL_VERSION}"
    )
    for label, runs, cpu in (
        ("PLAINTEXT (sendfile)", plain, plain_cpu),
        ("SSL (preadv+OpenSSL)", over_tls, tls_cpu),
        ("Python ssl limit", limit, None),
    ):
        cost = f", broker {statistics.median(cpu):.2f} CPU-s/GB" if cpu else ""
        print(
            f"{label:21}: {statistics.median(runs) / 1e9:.2f} GB/s "
            f"({min(runs) / 1e9:.2f}-{max(runs) / 1e9:.2f}){cost}"
        )
    print(
        f"ratio SSL/PLAINTEXT  : {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}), goal >= 0.5x"
    )
    cost_ratio = statistics.median(tls_cpu) / statistics.median(plain_cpu)
    print(f"broker CPU per GB    : SSL {cost_ratio:.2f}x PLAINTEXT's")
    of_limit = [t / lim for t, lim in zip(over_tls, limit, strict=True)]
    print(
        f"SSL / Python ssl limit: {statistics.median(of_limit):.2f}x "
        f"({min(of_limit):.2f}-{max(of_limit):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
