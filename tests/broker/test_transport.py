"""The plain-socket transport (edplog.broker.transport) over real sockets and real files."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from edplog.broker import transport as transport_module
from edplog.broker.transport import PlainTransport, SenderPool
from edplog.protocol import FileRegion

MIB = 1024 * 1024
IO_TIMEOUT_S = 30.0  # a bound against hangs, never a measure of speed


def _pair(sndbuf: int = 64 * 1024) -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    ours.setblocking(False)
    theirs.settimeout(IO_TIMEOUT_S)
    return ours, theirs


def _drain(sock: socket.socket, nbytes: int, out: bytearray) -> threading.Thread:
    def run() -> None:
        while len(out) < nbytes:
            try:
                chunk = sock.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            out.extend(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def segment(tmp_path) -> tuple[object, bytes]:
    data = os.urandom(4 * MIB)
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(data)
    with open(path, "rb") as f:
        f.seek(12345)  # a writer's position, which the sends must leave alone
        yield f, data


def test_send_now_hands_back_the_rest_and_send_finishes_it_in_order(segment) -> None:
    f, data = segment

    async def run() -> bytes:
        ours, theirs = _pair()
        senders = SenderPool(1)
        t = PlainTransport(ours, senders)
        parts = [b"head", FileRegion(f, 100, 3 * MIB), bytearray(b"tail")]
        rest = t.send_now(parts)
        assert rest is not None  # a 3 MiB region does not fit a 64 KiB socket buffer
        received = bytearray()
        reader = _drain(theirs, 8 + 3 * MIB, received)
        await asyncio.wait_for(t.send(rest), IO_TIMEOUT_S)
        await asyncio.to_thread(reader.join, IO_TIMEOUT_S)
        t.close()
        theirs.close()
        senders.shutdown()
        return bytes(received)

    assert asyncio.run(run()) == b"head" + data[100 : 100 + 3 * MIB] + b"tail"
    assert f.tell() == 12345  # sendfile used explicit positions


def test_send_now_sends_small_responses_whole(segment) -> None:
    f, data = segment

    async def run() -> bytes:
        ours, theirs = _pair()
        t = PlainTransport(ours, SenderPool(1))
        assert t.send_now([b"a", memoryview(b"bc"), FileRegion(f, 7, 1000), b""]) is None
        got = theirs.recv(4096)
        t.close()
        theirs.close()
        return got

    assert asyncio.run(run()) == b"abc" + data[7:1007]


def test_a_region_cut_short_by_a_truncated_segment_ends_the_send(segment) -> None:
    f, _ = segment

    async def run() -> None:
        ours, theirs = _pair(sndbuf=4 * MIB)
        t = PlainTransport(ours, SenderPool(1))
        received = bytearray()
        reader = _drain(theirs, 8 * MIB, received)
        try:
            # The fetch said 5 MiB; the file (as if truncated by retention) holds 4 MiB.
            with pytest.raises(ConnectionError, match="segment file ended"):
                rest = t.send_now([FileRegion(f, 0, 5 * MIB)])
                if rest is not None:
                    await asyncio.wait_for(t.send(rest), IO_TIMEOUT_S)
        finally:
            t.close()  # the reader sees the end of the stream
            await asyncio.to_thread(reader.join, IO_TIMEOUT_S)
            theirs.close()
        assert len(received) == 4 * MIB  # every byte the file still had, then the end

    asyncio.run(run())


def test_close_waits_for_a_send_running_on_a_sender_thread(segment, monkeypatch) -> None:
    f, _ = segment
    # Long enough that the thread is surely still waiting on the full socket at close().
    monkeypatch.setattr(transport_module, "SENDER_STALL_MS", 30_000)

    async def run() -> None:
        ours, theirs = _pair()
        senders = SenderPool(1)
        t = PlainTransport(ours, senders)
        rest = t.send_now([FileRegion(f, 0, 4 * MIB)])
        assert rest is not None
        sending = asyncio.ensure_future(t.send(rest))
        for _ in range(200):  # until the region is on the sender thread (bounded)
            if t.sending is not None:
                break
            await asyncio.sleep(0.01)
        threaded = t.sending
        assert threaded is not None, "the large region went to a sender thread"
        t.close()
        assert ours.fileno() != -1  # not closed under the thread ...
        with pytest.raises(OSError):
            await asyncio.wait_for(sending, IO_TIMEOUT_S)  # ... which shutdown() made fail at once
        await asyncio.sleep(0)  # the close runs as the thread's completion callback
        assert threaded.done() and ours.fileno() == -1
        theirs.close()
        senders.shutdown()

    asyncio.run(run())
