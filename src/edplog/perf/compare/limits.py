"""What the machine itself can do: the ceilings edplog's figures are divided by.

Three measurements from perf.md part B, taken again in the same run as everything else so
ratios do not mix a quiet hour with a busy one:

- ``os.write`` of the very batch buffer edplog appends, to a new file (page cache, no fsync);
- ``os.sendfile`` of a page-cached file to a loopback TCP socket drained by a receiving thread
  (the path the broker's Fetch uses);
- 64 KiB ``os.write`` + ``os.fdatasync`` (the cost floor of durable produce).
"""

from __future__ import annotations

import os
import socket
import threading
import time

from . import data
from .model import Budget, Context, Sample, Spec

CHUNK = 1 << 20
SYNC_CHUNK = 64 << 10
SENDFILE_FILE_BYTES = 64 << 20


def _records(nbytes: int, size: int) -> int:
    """Records that ``nbytes`` of the batch buffer hold, so raw limits read in records/s too."""
    buf, count = data.batch_buffer(size)
    return nbytes * count // len(buf)


def write_new_file(workdir: str, size: int, budget: Budget, keep: str | None = None) -> Sample:
    """Append the batch buffer to a new file until the byte or time cap.

    The file is removed at the end, unless ``keep`` names it: the caller removes it then, after
    whatever must not reuse its page-cache memory meanwhile."""
    buf, _ = data.batch_buffer(size)
    path = keep or os.path.join(workdir, "limits-write.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = 0
    try:
        start = time.perf_counter()
        deadline = start + budget.seconds
        while written < budget.max_bytes and time.perf_counter() < deadline:
            written += os.write(fd, buf)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        if keep is None:
            os.unlink(path)
    return Sample(_records(written, size), written, elapsed)


def fdatasync_64k(workdir: str, size: int, budget: Budget) -> Sample:
    """64 KiB writes, each followed by fdatasync, until the byte or time cap."""
    buf, _ = data.batch_buffer(size)
    chunk = memoryview(buf)[:SYNC_CHUNK]
    path = os.path.join(workdir, "limits-sync.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = 0
    try:
        start = time.perf_counter()
        deadline = start + budget.seconds
        while written < budget.max_bytes and time.perf_counter() < deadline:
            written += os.write(fd, chunk)
            os.fdatasync(fd)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        os.unlink(path)
    return Sample(_records(written, size), written, elapsed)


class SendfileBench:
    """A page-cached file and a loopback connection whose receiver discards what it reads."""

    def __init__(self, workdir: str, size: int) -> None:
        buf, _ = data.batch_buffer(size)
        self.size = size
        self.path = os.path.join(workdir, f"limits-sendfile-{size}.bin")
        with open(self.path, "wb") as f:
            for _ in range(max(1, SENDFILE_FILE_BYTES // len(buf))):
                f.write(buf)
        self.file_bytes = os.path.getsize(self.path)
        with open(self.path, "rb") as f:  # pull it into the page cache
            while f.read(CHUNK):
                pass

    def run(self, budget: Budget) -> Sample:
        target = min(budget.max_bytes, 1 << 40)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        received = [0]

        def drain() -> None:
            conn, _ = listener.accept()
            view = memoryview(bytearray(CHUNK))
            with conn:
                while True:
                    n = conn.recv_into(view)
                    if not n:
                        return
                    received[0] += n

        thread = threading.Thread(target=drain, name="sendfile-receiver", daemon=True)
        thread.start()
        sent = 0
        with socket.create_connection(("127.0.0.1", port)) as sock, open(self.path, "rb") as f:
            fd = f.fileno()
            start = time.perf_counter()
            deadline = start + budget.seconds
            pos = 0
            while sent < target and time.perf_counter() < deadline:
                n = os.sendfile(sock.fileno(), fd, pos, min(CHUNK, self.file_bytes - pos))
                sent += n
                pos = (pos + n) % self.file_bytes
            sock.shutdown(socket.SHUT_WR)
            thread.join(30)
            elapsed = time.perf_counter() - start
        listener.close()
        return Sample(_records(received[0], self.size), received[0], elapsed)

    def close(self) -> None:
        os.unlink(self.path)


def run(ctx: Context) -> None:
    """Measure the three machine limits at each record size."""
    for size in ctx.record_sizes:
        ctx.measure(
            Spec(
                "limits.write",
                "limits",
                "os.write to a new file",
                size,
                "1 MiB writes of v2 batches",
                "page cache, no fsync",
                "os.write",
            ),
            lambda b, s=size: write_new_file(ctx.workdir, s, b),
        )
        bench = SendfileBench(ctx.workdir, size)
        try:
            ctx.measure(
                Spec(
                    "limits.sendfile",
                    "limits",
                    "os.sendfile to loopback",
                    size,
                    "1 MiB sendfile calls",
                    "page-cached file",
                    "recv_into thread",
                ),
                bench.run,
            )
        finally:
            bench.close()
        ctx.measure(
            Spec(
                "limits.fdatasync",
                "limits",
                "write + fdatasync",
                size,
                "64 KiB writes",
                "fdatasync every 64 KiB",
                "os.fdatasync",
            ),
            lambda b, s=size: fdatasync_64k(ctx.workdir, s, b),
        )
