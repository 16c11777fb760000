"""Cutting Kafka request frames out of received bytes, in memory bounded by configuration.

Wire layout of one request frame (Kafka protocol guide, "Protocol Primitives"/"Requests")::

    offset  size  field
    0       4     size: int32, big-endian, the number of bytes that follow (header + body)
    4       size  request header and body

Contract:

- ``size`` is checked against ``socket.request.max.bytes`` as soon as its 4 bytes are in:
  zero, negative or larger sizes refuse the stream at once (the connection is closed, as in
  Kafka), without waiting for the body and without allocating anything for it.
- Between frames a connection holds no buffer of its own: every connection of one event
  loop receives into the one ``RequestMemory.scratch`` buffer (the loop is one thread and
  each receive is cut into frames before the next one starts), and only an unfinished frame
  at its end is copied out.
- An unfinished frame's buffer grows geometrically with the bytes that have actually arrived:
  its capacity is at most ``max(FRAME_MIN_BYTES, 2 x received)``, never the declared size up
  front. 200 clients that each claim 100 MiB and send 2 bytes hold 200 x 8 KiB.
- Every byte of an unfinished or unhandled frame is counted in the broker's
  ``RequestMemory`` (``queued.max.request.bytes``) from the moment it is held until the
  request has been handled; while the account is full, connections stop reading.
- A finished frame is a ``bytearray`` of exactly ``size`` bytes owned by the request (writable:
  the produce path rewrites batch headers in place), so the buffer of a large frame is
  returned to the allocator as soon as its request is done.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

# Receive buffer shared by all connections of one broker (so its size costs nothing per
# connection): a 1 MB produce request (edplog perf's batch.size) usually arrives in one
# receive and is cut with one copy. With 256 KiB it needed a growth step on the way, and
# the broker spent 147 instead of 128 ns of CPU per record on `edplog perf produce
# --compression none`; with 1 MiB, 95 against 112 for the per-connection buffers before.
RECEIVE_BYTES = 1024 * 1024
# First capacity of an unfinished frame: small, so that clients claiming huge frames and
# sending a few bytes cost little, and a few doublings reach a typical produce request.
FRAME_MIN_BYTES = 8 * 1024


class RequestMemory:
    """The bytes held by requests received and not yet handled, across all connections.

    This is Kafka's ``queued.max.request.bytes``. Connections ask before they read (``fits``)
    and register with ``wait`` when the account is full; they are woken in arrival order as
    handled requests give their bytes back. One rule keeps this from deadlocking when the
    account is full of *unfinished* frames (which only more reading can finish): when even
    the end of every running handler would not make room for the first waiter, that waiter
    is let past the limit until its current frame is complete. The account therefore never
    exceeds ``limit_bytes`` by more than one frame (``socket.request.max.bytes``) plus one
    receive buffer.
    """

    def __init__(self, limit_bytes: int) -> None:
        # -1: no limit (Kafka's default, which this broker does not use; see docs/broker.md)
        self.limit_bytes = limit_bytes if limit_bytes >= 0 else sys.maxsize
        self.used_bytes = 0
        self.running_bytes = 0  # of those, requests whose handler is running
        self.scratch = memoryview(bytearray(RECEIVE_BYTES))
        self._waiting: dict[object, tuple[int, Callable[[], None]]] = {}
        self._reserved: dict[object, int] = {}
        self._granted: object | None = None

    @property
    def waiting(self) -> int:
        """How many connections wait for room."""
        return len(self._waiting)

    def fits(self, owner: object, nbytes: int) -> bool:
        """Whether ``owner`` may hold ``nbytes`` more now."""
        if owner is self._granted:
            return True
        reserved = self._reserved.get(owner, 0)
        return nbytes <= reserved or self.used_bytes - reserved + nbytes <= self.limit_bytes

    def take(self, owner: object, nbytes: int) -> None:
        """Count ``nbytes`` more held by ``owner`` (after ``fits``, or for bytes already read)."""
        self.used_bytes += nbytes - self._reserved.pop(owner, 0)

    def run(self, nbytes: int) -> None:
        """``nbytes`` of held requests are now with a running handler."""
        self.running_bytes += nbytes

    def give(self, nbytes: int, ran: bool = False) -> None:
        """Give back the bytes of a request that was handled (``ran``) or discarded."""
        self.used_bytes -= nbytes
        if ran:
            self.running_bytes -= nbytes
        if self._waiting:
            self._settle()

    def wait(self, owner: object, nbytes: int, wake: Callable[[], None]) -> None:
        """Call ``wake()`` once ``owner`` may hold ``nbytes`` more (they are reserved for it)."""
        self._waiting.pop(owner, None)
        self._waiting[owner] = (nbytes, wake)
        self._settle()

    def done_frame(self, owner: object) -> None:
        """``owner`` finished a frame: a pass past the limit (if it had one) ends here. The
        next waiter moves when that request gives its bytes back, not before."""
        if owner is self._granted:
            self._granted = None

    def forget(self, owner: object) -> None:
        """``owner`` is closing: drop its place in line, reservation and pass."""
        self._waiting.pop(owner, None)
        self.used_bytes -= self._reserved.pop(owner, 0)
        if owner is self._granted:
            self._granted = None
        if self._waiting:
            self._settle()

    def _settle(self) -> None:
        waiting = self._waiting
        while waiting:
            owner, (nbytes, wake) = next(iter(waiting.items()))
            if self.used_bytes + nbytes > self.limit_bytes:
                # Strict arrival order: a large frame is not starved by small ones behind it.
                if (
                    self._granted is None
                    and self.used_bytes - self.running_bytes + nbytes > self.limit_bytes
                ):
                    # Nothing running will make room: let it past, or nobody moves again.
                    del waiting[owner]
                    self._granted = owner
                    wake()
                return
            del waiting[owner]
            self._reserved[owner] = self._reserved.get(owner, 0) + nbytes
            self.used_bytes += nbytes
            wake()


class FrameReader:
    """One connection's frame cutter: where to receive next, and the frames that completed.

    Use: ``view = reader.buffer()`` (None: the request memory is full, wait for ``need``
    bytes), receive at most ``len(view)`` bytes into it, then ``reader.received(n)`` returns
    the frames completed by those bytes. ``refused`` is set (and reading must end) when a
    size prefix is outside (0, ``max_frame_bytes``].
    """

    def __init__(self, memory: RequestMemory, max_frame_bytes: int) -> None:
        self._memory = memory
        self._max = max_frame_bytes
        self._prefix = b""  # the first bytes of a size prefix cut by a receive
        self._frame: bytearray | None = None  # the unfinished frame, capacity <= its size
        self._got = 0
        self._size = 0
        self._view: memoryview | None = None
        self.need = 0
        self.refused: str | None = None

    def limit(self, max_frame_bytes: int) -> None:
        """Frames from now on may be up to ``max_frame_bytes`` (after a login, say)."""
        self._max = max_frame_bytes

    @property
    def held_bytes(self) -> int:
        """Capacity of the unfinished frame's buffer (0 between frames)."""
        return len(self._frame) if self._frame is not None else 0

    @property
    def full(self) -> bool:
        """Whether the unfinished frame's buffer is full, so the next receive must grow it."""
        return self._frame is not None and self._got == len(self._frame)

    @property
    def receiving(self) -> bool:
        """Whether part of a frame (or of its size) has arrived and the rest has not."""
        return self._frame is not None or bool(self._prefix)

    def buffer(self) -> memoryview | None:
        """Where the next receive goes; None when the request memory has no room (``need``)."""
        self._release_view()
        frame = self._frame
        if frame is None:
            if not self._memory.fits(self, 1):
                self.need = 1
                return None
            view = self._memory.scratch
        else:
            got = self._got
            if got == len(frame):
                # Full but unfinished: double what has arrived, up to the declared size.
                grow = min(self._size, 2 * got) - got
                if not self._memory.fits(self, grow):
                    self.need = grow
                    return None
                self._memory.take(self, grow)
                # bytes(n) is calloc'd and bytearray grows with realloc (mremap for large
                # blocks): 100 MiB in doublings took 105 ms this way, 150 ms copying into a
                # fresh bytearray each time (grow2.py, 2-core box); 1 MiB takes the same.
                frame.extend(bytes(grow))
            view = memoryview(frame)[got:]
        self._view = view
        return view

    def received(self, nbytes: int) -> list[bytearray]:
        """Account ``nbytes`` just received into the last ``buffer()``; the completed frames."""
        self._release_view()
        frame = self._frame
        if frame is not None:
            self._got += nbytes
            if self._got < self._size:
                return []
            self._frame = None
            self._memory.done_frame(self)
            return [frame]
        return self._cut(self._memory.scratch[:nbytes])

    def _cut(self, data: memoryview) -> list[bytearray]:
        frames: list[bytearray] = []
        end = len(data)
        pos = 0
        taken = 0
        while True:
            if self._prefix or end - pos < 4:
                more = min(4 - len(self._prefix), end - pos)
                self._prefix += data[pos : pos + more]
                pos += more
                if len(self._prefix) < 4:
                    break
                size = int.from_bytes(self._prefix, "big", signed=True)
                self._prefix = b""
            else:
                size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
                pos += 4
            if not 0 < size <= self._max:
                self.refused = f"request size {size} outside (0, {self._max}]"
                break
            have = end - pos
            if have >= size:
                # A copy per frame (as before), so the shared buffer is free for the next recv.
                frames.append(bytearray(data[pos : pos + size]))
                taken += size
                pos += size
                continue
            cap = min(size, max(FRAME_MIN_BYTES, 2 * have))
            frame = bytearray(cap)
            frame[:have] = data[pos:end]
            taken += cap
            self._frame, self._got, self._size = frame, have, size
            break
        if taken:
            self._memory.take(self, taken)
        if frames:
            self._memory.done_frame(self)
        return frames

    def close(self) -> None:
        """Give back the unfinished frame and leave the memory's line."""
        self._release_view()
        if self._frame is not None:
            self._memory.give(len(self._frame))
            self._frame = None
        self._memory.forget(self)

    def _release_view(self) -> None:
        # A live view into the frame would make the next extend() raise BufferError.
        if self._view is not None:
            if self._view is not self._memory.scratch:
                self._view.release()
            self._view = None
