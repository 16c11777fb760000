"""Frame cutting and the request memory account (edplog.broker.framing), on real bytes.

Bytes are written into the buffers the reader hands out, exactly as a socket receive would;
the socket-level behaviour of the same code is in test_connection.py.
"""

from __future__ import annotations

import struct
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from edplog.broker.framing import FRAME_MIN_BYTES, RECEIVE_BYTES, FrameReader, RequestMemory

MIB = 1024 * 1024


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def feed(reader: FrameReader, data: bytes, chunk: int) -> list[bytes]:
    """Receive ``data`` in pieces of at most ``chunk`` bytes; the frames that completed."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        view = reader.buffer()
        assert view is not None, "the account is not full in this test"
        n = min(len(view), chunk, len(data) - pos)
        view[:n] = data[pos : pos + n]
        pos += n
        out.extend(bytes(f) for f in reader.received(n))
        assert reader.refused is None
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=12),
    st.integers(1, 5000),
)
def test_frames_split_anywhere_come_out_whole_and_in_order(bodies: list[bytes], chunk: int):
    memory = RequestMemory(64 * MIB)
    reader = FrameReader(memory, MIB)
    got = feed(reader, b"".join(frame(b) for b in bodies), chunk)
    assert got == bodies
    assert not reader.receiving and reader.held_bytes == 0
    # every byte of a completed frame stays counted until the request gives it back
    assert memory.used_bytes == sum(len(b) for b in bodies)
    for b in bodies:
        memory.give(len(b))
    assert memory.used_bytes == 0


def test_a_claimed_100_mib_frame_holds_only_what_has_arrived() -> None:
    memory = RequestMemory(256 * MIB)
    reader = FrameReader(memory, 100 * MIB)
    size = 100 * MIB
    tracemalloc.start()
    try:
        feed(reader, struct.pack(">i", size) + b"\x00\x01", 6)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.receiving
    assert reader.held_bytes == FRAME_MIN_BYTES
    assert peak < 1 * MIB  # nothing near the claimed 100 MiB was allocated
    received = 2
    piece = b"\x07" * (64 * 1024)
    while received < 3 * MIB:
        feed(reader, piece, len(piece))
        received += len(piece)
        assert reader.held_bytes <= max(FRAME_MIN_BYTES, 2 * received)
        assert memory.used_bytes == reader.held_bytes
    reader.close()
    assert memory.used_bytes == 0


def test_a_large_frame_completes_with_exactly_its_bytes() -> None:
    memory = RequestMemory(256 * MIB)
    reader = FrameReader(memory, 100 * MIB)
    body = bytes(range(256)) * (5 * 4096 + 3)
    got = feed(reader, frame(body) + frame(b"next"), 70_000)
    assert got == [body, b"next"]
    assert memory.used_bytes == len(body) + 4


def test_size_above_the_limit_is_refused_after_the_frames_before_it() -> None:
    memory = RequestMemory(64 * MIB)
    reader = FrameReader(memory, 1000)
    view = reader.buffer()
    assert view is not None
    data = frame(b"fine") + struct.pack(">i", 1001)
    view[: len(data)] = data
    assert [bytes(f) for f in reader.received(len(data))] == [b"fine"]
    assert reader.refused == "request size 1001 outside (0, 1000]"
    assert reader.held_bytes == 0  # nothing was set aside for the refused frame


def test_zero_and_negative_sizes_are_refused() -> None:
    for size in (0, -1, -(2**31)):
        reader = FrameReader(RequestMemory(MIB), 1000)
        view = reader.buffer()
        assert view is not None
        view[:4] = struct.pack(">i", size)
        assert reader.received(4) == []
        assert reader.refused is not None and str(size) in reader.refused


def test_the_receive_buffer_is_shared_and_between_frames_nothing_is_held() -> None:
    memory = RequestMemory(MIB)
    a, b = FrameReader(memory, MIB), FrameReader(memory, MIB)
    assert feed(a, frame(b"x" * 100), 1000) == [b"x" * 100]
    view_a, view_b = a.buffer(), b.buffer()
    assert view_a is memory.scratch and view_b is memory.scratch
    assert len(memory.scratch) == RECEIVE_BYTES
    assert a.held_bytes == b.held_bytes == 0


def _fill(reader: FrameReader, nbytes: int) -> None:
    """Receive ``nbytes`` of a frame announced as 4 MiB, as far as the account lets it."""
    received = 0
    first = True
    while received < nbytes:
        view = reader.buffer()
        if view is None:
            return
        data = struct.pack(">i", 4 * MIB) if first else b""
        first = False
        n = min(len(view), nbytes - received + len(data))
        payload = (data + b"\x01" * n)[:n]
        view[:n] = payload
        reader.received(n)
        received += n - len(data)


def test_a_full_account_stops_reading_until_a_handled_request_gives_back() -> None:
    memory = RequestMemory(100_000)
    holder, waiter = FrameReader(memory, MIB), FrameReader(memory, MIB)
    assert feed(holder, frame(b"h" * 100_000), 100_000) == [b"h" * 100_000]
    memory.run(100_000)  # its handler is running
    assert waiter.buffer() is None and waiter.need == 1
    woken: list[str] = []
    memory.wait(waiter, waiter.need, lambda: woken.append("waiter"))
    assert woken == [] and memory.waiting == 1
    memory.give(100_000, ran=True)
    assert woken == ["waiter"] and memory.waiting == 0
    assert feed(waiter, frame(b"w"), 10) == [b"w"]


def test_waiters_are_woken_in_arrival_order_and_a_big_one_is_not_overtaken() -> None:
    memory = RequestMemory(100_000)
    holder = FrameReader(memory, MIB)
    feed(holder, frame(b"h" * 99_000), 100_000)
    memory.run(99_000)
    big, small = FrameReader(memory, MIB), FrameReader(memory, MIB)
    woken: list[str] = []
    memory.wait(big, 60_000, lambda: woken.append("big"))
    memory.wait(small, 1, lambda: woken.append("small"))
    memory.give(50_000, ran=True)  # room for small, not yet for big: small waits its turn
    assert woken == []
    memory.give(49_000, ran=True)
    assert woken == ["big", "small"]


def test_an_account_full_of_unfinished_frames_lets_the_first_waiter_finish() -> None:
    # Three frames of 4 MiB arrive at once against a 1 MiB account: none can finish by
    # reading within the limit, and nothing running will give anything back.
    memory = RequestMemory(MIB)
    readers = [FrameReader(memory, 8 * MIB) for _ in range(3)]
    for r in readers:
        _fill(r, 4 * MIB)
    blocked = [r for r in readers if r.buffer() is None]
    assert blocked, "the account filled up"
    woken: list[FrameReader] = []
    for r in blocked:
        memory.wait(r, r.need, lambda r=r: woken.append(r))
    first = blocked[0]
    assert woken == [first]  # passed over the limit for as long as its frame needs
    done: list[bytearray] = []
    while not done:
        view = first.buffer()
        assert view is not None
        view[:] = b"\x01" * len(view)
        done = first.received(len(view))
    assert len(done[0]) == 4 * MIB
    assert memory.used_bytes <= MIB + 4 * MIB + RECEIVE_BYTES
    assert woken == [first]  # one pass at a time
    # once that request is handled and gives its bytes back, the next waiter moves
    memory.run(4 * MIB)
    memory.give(4 * MIB, ran=True)
    assert len(woken) >= 2 and woken[1] is blocked[1]


def test_closing_a_reader_gives_back_its_unfinished_frame_and_its_place() -> None:
    memory = RequestMemory(MIB)
    reader = FrameReader(memory, 8 * MIB)
    _fill(reader, 600_000)
    held = memory.used_bytes
    assert held == reader.held_bytes > 0
    reader.close()
    assert memory.used_bytes == 0 and memory.waiting == 0
