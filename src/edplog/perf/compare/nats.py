"""NATS JetStream (file storage, one replica): a durable publish path and a pull consumer.

nats-py spends most of its time in Python per message (38 k msg/s in perf.md B6, a tenth of
what the server takes), so both clients here speak the text protocol on a plain socket:

- the publisher pipelines ``PUB subject reply len`` frames and counts every PubAck that comes
  back, never letting more than ``WINDOW`` messages be un-acknowledged (so the figure is the
  acknowledged, stored rate, not the rate at which bytes left the client);
- the consumer is an ephemeral *pull* consumer (ack policy none), kept two 1,000-message pull
  requests ahead, counting delivered messages without decoding them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time

from . import data
from .model import Budget, Context, Sample, Spec
from .procs import Server, free_port

WINDOW = 20_000  # un-acked messages in flight (perf.md B6: <= 20 k)
CHUNK_MSGS = 256  # messages per sendall
PULL_BATCH = 1000


class NatsConn:
    """A raw NATS client connection: CONNECT, SUB, and request/reply for the JetStream API."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self._line()  # INFO {...}
        self.sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
            b'"no_responders":true,"protocol":1}\r\nPING\r\n'
        )
        while not self._line().startswith(b"PONG"):
            pass

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("nats-server closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        if line.startswith(b"-ERR"):
            raise RuntimeError(line.decode(errors="replace"))
        return line

    def request(self, subject: str, body: dict[str, object], timeout_s: float = 10) -> dict:
        """One JetStream API call on a private inbox; raises on an API error reply."""
        inbox = f"_INBOX.api.{time.monotonic_ns()}"
        payload = json.dumps(body).encode()
        self.sock.sendall(
            f"SUB {inbox} 99\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode()
            + payload
            + b"\r\n"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self._line()
            if line.startswith((b"MSG ", b"HMSG ")):
                size = int(line.split()[-1])
                while len(self._buf) < size + 2:
                    self._buf += self.sock.recv(65536)
                body_bytes, self._buf = self._buf[:size], self._buf[size + 2 :]
                if line.startswith(b"HMSG"):
                    hdr_len = int(line.split()[-2])
                    body_bytes = body_bytes[hdr_len:]
                reply = json.loads(body_bytes or b"{}")
                self.sock.sendall(b"UNSUB 99\r\n")
                if "error" in reply:
                    raise RuntimeError(f"{subject}: {reply['error']}")
                return reply
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
        raise TimeoutError(f"no reply to {subject}")

    def close(self) -> None:
        self.sock.close()


class _AckCounter(threading.Thread):
    """Counts PubAck messages (and error replies) arriving on the publisher's socket."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(name="nats-acks", daemon=True)
        self.sock = sock
        self.acks = 0
        self.errors = 0
        self.stop = False

    def run(self) -> None:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        carry = b""
        while not self.stop:
            try:
                n = self.sock.recv_into(view)
            except OSError:
                return
            if not n:
                return
            chunk = carry + bytes(view[:n])
            self.acks += chunk.count(b"MSG ")
            self.errors += chunk.count(b'"error"')
            carry = chunk[-7:]
            # a pattern split across reads is counted once, in the chunk that completes it
            self.acks -= carry.count(b"MSG ")
            self.errors -= carry.count(b'"error"')


def publish(port: int, stream: str, subject: str, size: int, budget: Budget) -> Sample:
    """Pipelined PUB with a PubAck for each message, at most WINDOW outstanding."""
    pool = data.payloads(size)
    header = f"PUB {subject} acks.1 {size}\r\n".encode()
    chunks = [
        b"".join(
            header + pool[(c * CHUNK_MSGS + i) % len(pool)] + b"\r\n" for i in range(CHUNK_MSGS)
        )
        for c in range(16)
    ]
    cap = budget.records(size)
    conn = NatsConn(port)
    conn.sock.sendall(b"SUB acks.> 1\r\nPING\r\n")
    while not conn._line().startswith(b"PONG"):
        pass
    conn.sock.settimeout(None)
    counter = _AckCounter(conn.sock)
    counter.start()
    sent = 0
    start = time.perf_counter()
    deadline = start + budget.seconds
    c = 0
    while sent < cap and time.perf_counter() < deadline:
        while sent - counter.acks > WINDOW - CHUNK_MSGS:
            time.sleep(0.0002)
        conn.sock.sendall(chunks[c % 16])
        c += 1
        sent += CHUNK_MSGS
    wait_until = time.perf_counter() + 30
    while counter.acks + counter.errors < sent and time.perf_counter() < wait_until:
        time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    counter.stop = True
    conn.close()
    if counter.errors:
        raise RuntimeError(f"{counter.errors} publishes were refused by JetStream")
    if counter.acks < sent:
        raise TimeoutError(f"only {counter.acks} of {sent} PubAcks arrived")
    return Sample(counter.acks, counter.acks * size, elapsed)


def consume(port: int, stream: str, subject: str, size: int, total: int, budget: Budget) -> Sample:
    """Read the stream from its start through an ephemeral pull consumer."""
    cap = min(total, budget.records(size))
    conn = NatsConn(port)
    reply = conn.request(
        f"$JS.API.CONSUMER.CREATE.{stream}",
        {
            "stream_name": stream,
            "config": {
                "deliver_policy": "all",
                "ack_policy": "none",
                "inactive_threshold": 30_000_000_000,
            },
        },
    )
    name = reply["name"]
    pull = f"PUB $JS.API.CONSUMER.MSG.NEXT.{stream}.{name} pull.1 ".encode()
    body = json.dumps({"batch": PULL_BATCH, "expires": 2_000_000_000}).encode()
    pull_frame = pull + str(len(body)).encode() + b"\r\n" + body + b"\r\n"
    conn.sock.sendall(b"SUB pull.1 3\r\n")
    mark = f"MSG {subject} ".encode()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    carry = conn._buf
    got = requested = 0
    start = time.perf_counter()
    deadline = start + budget.seconds
    while got < cap and time.perf_counter() < deadline:
        while requested < cap and requested - got < 2 * PULL_BATCH:
            conn.sock.sendall(pull_frame)
            requested += PULL_BATCH
        n = conn.sock.recv_into(view)
        if not n:
            raise ConnectionError("nats-server closed the consumer connection")
        chunk = carry + bytes(view[:n])
        tail = chunk[-(len(mark) - 1) :]
        got += chunk.count(mark) - tail.count(mark)
        carry = tail
    elapsed = time.perf_counter() - start
    conn.close()
    return Sample(got, got * size, elapsed)


def run(ctx: Context) -> None:
    """One nats-server; per record size a stream, publish runs, then consume runs."""
    label = "JetStream file storage, R1, PubAck per message"
    specs = {
        size: (
            Spec(
                "nats.publish",
                "nats",
                "JetStream publish",
                size,
                f"pipelined, <= {WINDOW} un-acked",
                label,
                "raw protocol socket",
            ),
            Spec(
                "nats.consume",
                "nats",
                "JetStream pull consume",
                size,
                f"pull batch {PULL_BATCH}, 2 in flight",
                "file storage, R1, no acks",
                "raw protocol socket",
            ),
        )
        for size in ctx.record_sizes
    }
    if shutil.which("nats-server") is None:
        for pair in specs.values():
            for spec in pair:
                ctx.skip(
                    spec,
                    "nats-server not installed (apt-get install nats-server, or "
                    "pass --install-peers)",
                )
        return
    port = free_port()
    datadir = os.path.join(ctx.workdir, "nats")
    os.makedirs(datadir, exist_ok=True)
    argv = ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", datadir]
    try:
        with Server(argv, "nats-server", ready_port=port) as server:
            ctx.server_pids.append(server.pid)
            try:
                for size, (pub_spec, sub_spec) in specs.items():
                    stream, subject = f"BENCH{size}", f"bench{size}.x"
                    api = NatsConn(port)
                    api.request(
                        f"$JS.API.STREAM.CREATE.{stream}",
                        {
                            "name": stream,
                            "subjects": [subject],
                            "storage": "file",
                            "num_replicas": 1,
                            "retention": "limits",
                            "discard": "old",
                        },
                    )
                    ctx.measure(
                        pub_spec,
                        lambda b, st=stream, sj=subject, s=size: publish(port, st, sj, s, b),
                    )
                    info = api.request(f"$JS.API.STREAM.INFO.{stream}", {})
                    api.close()
                    total = int(info["state"]["messages"])
                    ctx.measure(
                        sub_spec,
                        lambda b, st=stream, sj=subject, s=size, t=total: consume(
                            port, st, sj, s, t, b
                        ),
                    )
            finally:
                ctx.server_pids.remove(server.pid)
    except (OSError, RuntimeError) as exc:
        for pair in specs.values():
            for spec in pair:
                if ctx.find(spec.id) is None and not any(f.spec.id == spec.id for f in ctx.figures):
                    ctx.skip(spec, f"nats-server failed: {exc}")
    shutil.rmtree(datadir, ignore_errors=True)
