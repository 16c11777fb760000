"""Redis Streams, the peer most users would reach for first: XADD and XREAD on loopback.

XADD is driven by Redis's own C load generator, ``redis-benchmark``, pipelined with 8
connections x 64 commands as in perf.md B6, so the Python side never limits Redis. Two
servers: no persistence (``--save '' --appendonly no``) and ``appendfsync always`` (an fsync
per event-loop batch, Redis's durable setting). XREAD throughput uses a small raw-RESP loop
that walks the stream 1,000 entries per call and locates the last entry id without decoding
each entry, the way the raw Fetch loop treats edplog.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from functools import partial

from . import data
from .model import Budget, Context, Sample, Spec
from .procs import Server, free_port

XADD_RATE_GUESS = {"aof-off": 800_000, "aof-always": 300_000}  # sizes -n to the time budget
XREAD_COUNT = 1000
_ENTRY_MARK = b"\r\n*2\r\n$1\r\np\r\n$"  # between an entry's id and its field value


def redis_server_argv(port: int, datadir: str, durability: str) -> list[str]:
    argv = [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        datadir,
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    if durability == "aof-always":
        argv += ["--appendonly", "yes", "--appendfsync", "always"]
    else:
        argv += ["--appendonly", "no"]
    return argv


def xadd_benchmark(port: int, key: str, size: int, durability: str, budget: Budget) -> Sample:
    """``redis-benchmark -c 8 -P 64 XADD key * p <payload>``; count sized to the time cap."""
    # at least 1 s of load (tiny mode aside): shorter runs are mostly connection ramp-up
    seconds = budget.seconds if budget.seconds < 0.1 else max(1.0, budget.seconds)
    n = int(min(budget.records(size), XADD_RATE_GUESS[durability] * seconds))
    n = max(n, 8 * 64 * 4)
    payload = data.payloads(size)[0].decode()
    argv = [
        "redis-benchmark",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        "8",
        "-P",
        "64",
        "-n",
        str(n),
        "--csv",
        "XADD",
        key,
        "*",
        "p",
        payload,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=30 + budget.seconds * 40, check=True
    )
    # The first CSV column echoes the command (payload included, quotes unescaped), so read
    # the seven numeric columns from the end: rps, avg, min, p50, p95, p99, max.
    rows = [line.split(",")[-7:] for line in out.stdout.splitlines() if line.startswith('"XADD')]
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no result: {out.stderr.strip()[-200:]}")
    row = [float(x.strip('"')) for x in rows[-1]]
    rps = row[0]
    latency = {"p50": row[3], "p99": row[5]}
    return Sample(n, n * size, n / rps, latency_ms=latency)


def _resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def _read_reply(sock: socket.socket, buf: bytearray, view: memoryview) -> int:
    """Read one XREAD reply into buf (through view); its entry count (0 for a null reply)."""
    buf.clear()
    expected = -1
    while True:
        n = sock.recv_into(view)
        if not n:
            raise ConnectionError("redis closed the connection")
        buf += view[:n]
        if expected < 0:
            if buf.startswith(b"*-1\r\n") or buf.startswith(b"_\r\n"):
                return 0
            if buf.startswith(b"-"):
                raise RuntimeError(bytes(buf[:200]).decode(errors="replace"))
            # *1 *2 $klen key *N: N follows the key
            head_end = buf.find(b"\r\n", buf.find(b"\r\n*", 8) + 3)
            star = buf.find(b"\r\n*", 8)
            if star < 0 or head_end < 0:
                continue
            expected = int(buf[star + 3 : head_end])
        if buf.endswith(b"\r\n") and buf.count(_ENTRY_MARK) >= expected:
            last = buf.rfind(_ENTRY_MARK)
            tail = buf.find(b"\r\n", last + len(_ENTRY_MARK))
            if tail > 0:
                vlen = int(buf[last + len(_ENTRY_MARK) : tail])
                if len(buf) >= tail + 2 + vlen + 2:
                    return expected


def xread_walk(port: int, key: str, size: int, total: int, budget: Budget) -> Sample:
    """Walk the stream from its start with XREAD COUNT 1000, one call in flight."""
    cap = min(total, budget.records(size))
    buf = bytearray()
    view = memoryview(bytearray(1 << 20))
    last = b"0-0"
    n = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        deadline = start + budget.seconds
        count = str(XREAD_COUNT).encode()
        while n < cap and time.perf_counter() < deadline:
            sock.sendall(_resp(b"XREAD", b"COUNT", count, b"STREAMS", key.encode(), last))
            got = _read_reply(sock, buf, view)
            if got == 0:
                break
            mark = buf.rfind(_ENTRY_MARK)
            last = bytes(buf[buf.rfind(b"\r\n", 0, mark) + 2 : mark])
            n += got
        elapsed = time.perf_counter() - start
    return Sample(n, n * size, elapsed)


def _xlen(port: int, key: str) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_resp(b"XLEN", key.encode()))
        reply = sock.recv(64)
    return int(reply[1 : reply.index(b"\r\n")])


def run(ctx: Context) -> None:
    """Two servers (AOF off, AOF always); XADD at each size, then XREAD on the first."""
    modes = (
        ("aof-off", "no persistence (--save '' --appendonly no)"),
        ("aof-always", "AOF appendfsync always"),
    )
    missing = [exe for exe in ("redis-server", "redis-benchmark") if shutil.which(exe) is None]
    for durability, label in modes:
        specs = [
            Spec(
                f"redis.xadd.{durability}",
                "redis",
                "XADD",
                size,
                "8 conns x pipeline 64",
                label,
                "redis-benchmark",
            )
            for size in ctx.record_sizes
        ]
        read_specs = [
            Spec(
                "redis.xread",
                "redis",
                "XREAD",
                size,
                "COUNT 1000, 1 in flight",
                label,
                "raw RESP socket",
            )
            for size in ctx.record_sizes
        ]
        if durability != "aof-off":
            read_specs = []
        if missing:
            reason = (
                f"{' and '.join(missing)} not installed (apt-get install redis-server "
                "redis-tools, or pass --install-peers)"
            )
            for spec in specs + read_specs:
                ctx.skip(spec, reason)
            continue
        port = free_port()
        datadir = os.path.join(ctx.workdir, f"redis-{durability}")
        os.makedirs(datadir, exist_ok=True)
        try:
            server = Server(
                redis_server_argv(port, datadir, durability), "redis-server", ready_port=port
            )
            with server:
                ctx.server_pids.append(server.pid)
                try:
                    for spec in specs:
                        key = f"s{spec.record_size}"
                        ctx.measure(
                            spec, partial(xadd_benchmark, port, key, spec.record_size, durability)
                        )
                    for spec in read_specs:
                        key = f"s{spec.record_size}"
                        total = _xlen(port, key)
                        ctx.measure(spec, partial(xread_walk, port, key, spec.record_size, total))
                finally:
                    ctx.server_pids.remove(server.pid)
        except (OSError, RuntimeError) as exc:
            for spec in specs + read_specs:
                if ctx.find(spec.id) is None:
                    ctx.skip(spec, f"redis-server failed: {exc}")
        shutil.rmtree(datadir, ignore_errors=True)
