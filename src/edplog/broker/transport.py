"""A connection's byte stream: the interface, the plain-socket and the TLS transports.

A connection (``connection.py``) needs four things from the stream under it: receive into
a buffer it provides, send a response's parts (bytes-like objects and ``FileRegion``
slices of segment files) at once when the socket takes them, finish sending them when it
does not, and close. ``Transport`` is that interface; ``PlainTransport`` and
``TlsTransport`` implement it.

``PlainTransport`` sends bytes with ``sendmsg`` (one call for all the parts of a response)
and file regions with ``os.sendfile`` at explicit positions, so record bytes never pass
through a Python buffer and the segment file's own offset is never moved (the log writer
may share that descriptor). Each region is sent from a descriptor of its own (``os.dup``):
a segment closed by retention or deletion while the region is on its way cannot have its
number reused under the send. A region that the segment no longer holds (truncated under
the send) raises ConnectionError: the response is partly written and cannot be completed,
so the connection must end.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import ssl
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..protocol import FileRegion

# A file region still this large when the socket buffer fills is sent by a sender thread in
# blocking style (sendfile, poll, sendfile ...): the kernel wakes the thread as the client
# drains, instead of a round of epoll, callbacks and task switches on the event loop per
# socket-buffer-full. Smaller remainders (and every region when all threads are busy) stay
# on the loop.
SENDER_THREADS = 4
SENDER_MIN_BYTES = 512 * 1024
# A sender thread hands the region back to the loop after this long without progress, so a
# client that stops reading cannot hold a thread.
SENDER_STALL_MS = 200
# sendmsg takes at most IOV_MAX (1024 on Linux) buffers; stay well below it.
SENDMSG_MAX_PARTS = 512
# TLS: a response is staged into a buffer of this size (file regions read into it with
# preadv) and written through OpenSSL one buffer at a time. Broker CPU per GB fetched
# (bench/bench_tls_fetch.py, 8 MiB fetches of 1 KiB records): 1.12 s with 16 KiB, 0.89 with
# 64 KiB, 0.77 with 256 KiB, 0.76 with 1 MiB: 256 KiB is where it stops paying.
TLS_STAGE_BYTES = 256 * 1024


class Transport(ABC):
    """What a connection reads from and writes to.

    ``send_now`` and ``send`` take the parts of ``encode_response``: bytes-like objects and
    ``FileRegion``; what ``send_now`` returns may also hold regions it has started, and only
    ``send`` or ``discard`` may be given that back.
    """

    @abstractmethod
    def fileno(self) -> int:
        """The descriptor the event loop watches for readability."""

    @abstractmethod
    def recv_into(self, buf: memoryview) -> int:
        """Receive into ``buf`` without waiting: the byte count, 0 at the end of the stream.

        Raises BlockingIOError when nothing is there.
        """

    def buffered(self) -> bool:
        """Whether received bytes wait inside the transport (decrypted TLS records), which
        the descriptor's readability would not announce. The plain socket holds none."""
        return False

    #: Whether a receive shorter than the buffer means the socket is drained. True for a
    #: plain socket; a TLS receive returns one record (16 KiB at most) however much waits.
    short_read_drains = True

    @abstractmethod
    def send_now(self, parts: list[Any]) -> list[Any] | None:
        """Send what the socket takes without waiting; None when all of it went, else the
        rest, to be finished with ``send`` (or dropped with ``discard``)."""

    @abstractmethod
    async def send(self, parts: list[Any]) -> None:
        """Send all of ``parts`` in order, waiting for the socket as needed."""

    def discard(self, parts: list[Any]) -> None:
        """Drop a ``send_now`` rest that will never be sent (the connection is closing)."""
        for part in parts:
            if isinstance(part, _Region):
                part.close()

    @property
    def sending(self) -> asyncio.Future[int] | None:
        """A send still running off the event loop, if any (close waits for it)."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Close the stream; a send running off the loop is stopped first."""

    # Both transports keep the socket's descriptor and whether they are closed.
    _fd: int
    _closed: bool

    async def _writable(self) -> None:
        """Wait until the socket takes more (raises once the transport is closed)."""
        if self._closed:
            raise ConnectionError("transport closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_writer(self._fd, ready)
        try:
            await fut
        finally:
            if not self._closed:  # close() unregistered it before the number could be reused
                loop.remove_writer(self._fd)


class SenderPool:
    """The threads that finish large file regions for every connection of a broker."""

    def __init__(self, threads: int = SENDER_THREADS) -> None:
        self._threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="edplog-send")
        self.busy = 0

    def available(self) -> bool:
        return self.busy < self._threads

    def submit(self, out_fd: int, file_fd: int, pos: int, count: int) -> asyncio.Future[int]:
        self.busy += 1
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, _send_blocking, out_fd, file_fd, pos, count)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _: Any) -> None:
        self.busy -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class _Region:
    """A file region being sent, on a descriptor of its own (closed once sent or dropped)."""

    __slots__ = ("fd", "pos", "count", "thread")

    def __init__(self, region: FileRegion) -> None:
        try:
            self.fd = os.dup(region.file.fileno())  # type: ignore[attr-defined]
        except ValueError:  # closed by retention between the fetch and its turn to be sent
            raise ConnectionError("segment file closed before the fetched region") from None
        self.pos = region.pos
        self.count = region.length
        self.thread: asyncio.Future[int] | None = None

    def close(self) -> None:
        if self.fd < 0:
            return
        thread = self.thread
        if thread is not None and not thread.done():
            # The sender thread still reads this descriptor: close it when the thread ends.
            thread.add_done_callback(lambda _: self.close())
            return
        os.close(self.fd)
        self.fd = -1


class PlainTransport(Transport):
    """A non-blocking TCP socket: ``sendmsg`` for bytes, ``os.sendfile`` for file regions."""

    def __init__(self, sock: socket.socket, senders: SenderPool) -> None:
        self.sock = sock
        self._fd = sock.fileno()
        self._senders = senders
        self._threaded: asyncio.Future[int] | None = None
        self._closed = False

    def fileno(self) -> int:
        return self._fd

    def recv_into(self, buf: memoryview) -> int:
        return self.sock.recv_into(buf)

    @property
    def sending(self) -> asyncio.Future[int] | None:
        t = self._threaded
        return t if t is not None and not t.done() else None

    # ---- sending without waiting ---------------------------------------------------------

    def send_now(self, parts: list[Any]) -> list[Any] | None:
        run: list[Any] = []
        for i, part in enumerate(parts):
            if isinstance(part, (FileRegion, _Region)):
                if run:
                    left = self._sendmsg_now(run)
                    if left is not None:
                        return [*left, *parts[i:]]
                    run = []
                region = part if isinstance(part, _Region) else _Region(part)
                try:
                    done = self._sendfile_now(region)
                except BaseException:
                    region.close()
                    raise
                if not done:
                    return [region, *parts[i + 1 :]]
                region.close()
            elif len(part):
                run.append(part)
        return self._sendmsg_now(run) if run else None

    def _sendmsg_now(self, buffers: list[Any]) -> list[memoryview] | None:
        views = [memoryview(b).cast("B") for b in buffers]
        while views:
            try:
                sent = self.sock.sendmsg(views[:SENDMSG_MAX_PARTS])
            except (BlockingIOError, InterruptedError):
                return views
            _advance(views, sent)
        return None

    def _sendfile_now(self, region: _Region) -> bool:
        while region.count > 0:
            try:
                sent = os.sendfile(self._fd, region.fd, region.pos, region.count)
            except (BlockingIOError, InterruptedError):
                return False
            if sent == 0:
                raise ConnectionError("segment file ended before the fetched region")
            region.pos += sent
            region.count -= sent
        return True

    # ---- sending with waiting ------------------------------------------------------------

    async def send(self, parts: list[Any]) -> None:
        try:
            run: list[Any] = []
            for part in parts:
                if isinstance(part, (FileRegion, _Region)):
                    if run:
                        await self._sendmsg(run)
                        run = []
                    region = part if isinstance(part, _Region) else _Region(part)
                    try:
                        await self._sendfile(region)
                    finally:
                        region.close()
                elif len(part):
                    run.append(part)
            if run:
                await self._sendmsg(run)
        finally:
            self.discard(parts)  # regions not reached (an error or cancellation cut us short)

    async def _sendmsg(self, buffers: list[Any]) -> None:
        views = [memoryview(b).cast("B") for b in buffers]
        while views:
            try:
                sent = self.sock.sendmsg(views[:SENDMSG_MAX_PARTS])
            except (BlockingIOError, InterruptedError):
                await self._writable()
                continue
            _advance(views, sent)

    async def _sendfile(self, region: _Region) -> None:
        while region.count > 0:
            try:
                sent = os.sendfile(self._fd, region.fd, region.pos, region.count)
            except (BlockingIOError, InterruptedError):
                if region.count < SENDER_MIN_BYTES or not self._senders.available():
                    await self._writable()
                    continue
                threaded = self._senders.submit(self._fd, region.fd, region.pos, region.count)
                region.thread = self._threaded = threaded
                # shield: a cancelled writer must not mark the send done while the thread
                # still uses the socket (close() waits for this future).
                sent = await asyncio.shield(threaded)
                if sent == 0:  # stalled: the client is not reading; wait on the loop
                    await self._writable()
                    continue
            else:
                if sent == 0:
                    raise ConnectionError("segment file ended before the fetched region")
            region.pos += sent
            region.count -= sent

    # ---- closing -------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            # Before the socket closes, so that no registration outlives its descriptor number.
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
        threaded = self._threaded
        if threaded is not None and not threaded.done():
            try:  # makes the thread's sendfile fail at once; the socket closes after it
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            threaded.add_done_callback(lambda _: self.sock.close())
        else:
            try:
                self.sock.close()
            except OSError:
                pass


def _advance(views: list[memoryview], sent: int) -> None:
    """Drop ``sent`` bytes from the front of ``views``."""
    while sent:
        if sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        else:
            views[0] = views[0][sent:]
            sent = 0


def _send_blocking(out_fd: int, file_fd: int, pos: int, count: int) -> int:
    """Sendfile ``count`` bytes on a sender thread, polling while the socket is full.

    Returns the bytes sent: all of them, or fewer when the socket made no progress for
    ``SENDER_STALL_MS``. Raises ConnectionError if the file ends before the region does.
    """
    poller = select.poll()
    poller.register(out_fd, select.POLLOUT)
    done = 0
    while done < count:
        try:
            sent = os.sendfile(out_fd, file_fd, pos + done, count - done)
        except (BlockingIOError, InterruptedError):
            if not poller.poll(SENDER_STALL_MS):
                break
            continue
        if sent == 0:
            raise ConnectionError("segment file ended before the fetched region")
        done += sent
    return done


class StagingBuffers:
    """The TLS transports' staging buffers, reused: a connection holds one only while a
    response of its is being written (between two writes it holds none)."""

    def __init__(self, size: int = TLS_STAGE_BYTES, keep: int = 64) -> None:
        self.size = size
        self._keep = keep
        self._free: list[bytearray] = []

    def take(self) -> bytearray:
        return self._free.pop() if self._free else bytearray(self.size)

    def give(self, buf: bytearray) -> None:
        if len(self._free) < self._keep:
            self._free.append(buf)


class _Staged:
    """Marks a ``send_now`` rest whose first bytes are already staged in the transport."""

    __slots__ = ()

    def __len__(self) -> int:
        return 0


_STAGED = _Staged()


class TlsTransport(Transport):
    """A TLS connection over a non-blocking socket (``ssl.SSLSocket``, handshake done).

    There is no ``sendfile`` through TLS: the record bytes must be encrypted in user space
    (kernel TLS would do it in the kernel; see docs/security.md for why it is not used).
    A response's parts are staged into one reused buffer of ``TLS_STAGE_BYTES`` — bytes
    copied, file regions read straight into it with ``os.preadv`` at explicit positions
    (from the page cache, no Python object per record or per region) — and each full
    buffer is written with one ``SSL_write``: a few TLS records of 16 KiB per buffer, not
    one per part. OpenSSL takes a write it could not finish again only with the same
    bytes, so a staged buffer stays staged until it has gone.
    """

    def __init__(self, sock: ssl.SSLSocket, buffers: StagingBuffers) -> None:
        self.sock = sock
        self._fd = sock.fileno()
        self._buffers = buffers
        self._buf: bytearray | None = None
        self._staged: memoryview | None = None  # what SSL_write must be given again
        self._closed = False

    def fileno(self) -> int:
        return self._fd

    def recv_into(self, buf: memoryview) -> int:
        try:
            return self.sock.recv_into(buf)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None
        except ssl.SSLZeroReturnError:
            return 0  # the client's close_notify
        except ssl.SSLError as exc:
            raise ConnectionError(f"TLS: {exc.reason or exc}") from None

    def buffered(self) -> bool:
        return self.sock.pending() > 0

    short_read_drains = False

    # ---- sending ---------------------------------------------------------------------------

    def send_now(self, parts: list[Any]) -> list[Any] | None:
        rest = list(parts)
        try:
            done = self._pump(rest)
        except BaseException:
            self.discard(rest)
            raise
        return None if done else [_STAGED, *rest]

    async def send(self, parts: list[Any]) -> None:
        rest = [p for p in parts if p is not _STAGED]
        try:
            while not self._pump(rest):
                await self._writable()
        finally:
            self.discard(rest)

    def _pump(self, rest: list[Any]) -> bool:
        """Stage and write ``rest`` (consumed from the front) until the socket is full
        (False) or everything went (True)."""
        while True:
            staged = self._staged
            if staged is not None:
                try:
                    sent = self.sock.send(staged)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    return False
                except ssl.SSLError as exc:
                    raise ConnectionError(f"TLS: {exc.reason or exc}") from None
                # All of it (OpenSSL's partial writes are off), unless that changes.
                self._staged = staged[sent:] if sent < len(staged) else None
                if self._staged is not None:
                    continue
            if not rest:
                if self._buf is not None:
                    self._buffers.give(self._buf)
                    self._buf = None
                return True
            self._stage(rest)

    def _stage(self, rest: list[Any]) -> None:
        """Fill the staging buffer from the front of ``rest``."""
        if self._buf is None:
            self._buf = self._buffers.take()
        buf = memoryview(self._buf)
        size = len(buf)
        filled = 0
        while rest and filled < size:
            part = rest[0]
            if isinstance(part, FileRegion):
                part = rest[0] = _Region(part)
            if isinstance(part, _Region):
                want = min(part.count, size - filled)
                n = os.preadv(part.fd, [buf[filled : filled + want]], part.pos) if want else 0
                if n == 0 and want:
                    raise ConnectionError("segment file ended before the fetched region")
                part.pos += n
                part.count -= n
                filled += n
                if part.count == 0:
                    part.close()
                    rest.pop(0)
            else:
                view = memoryview(part).cast("B")
                n = min(len(view), size - filled)
                buf[filled : filled + n] = view[:n]
                filled += n
                if n == len(view):
                    rest.pop(0)
                else:
                    rest[0] = view[n:]
        self._staged = buf[:filled]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
        self._staged = None
        if self._buf is not None:
            self._buffers.give(self._buf)
            self._buf = None
        try:
            self.sock.close()
        except OSError:
            pass
