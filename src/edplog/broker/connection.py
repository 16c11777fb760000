"""One client connection of the broker: framing, ordered dispatch, sendfile.

The reader cuts 4-byte size-prefixed frames and starts one handler task per request; the
writer sends responses strictly in request order, because Kafka clients pipeline requests and
match responses by position. A Fetch parked in a long poll therefore holds back the responses
queued behind it on *its* connection only. Produce and Fetch run inside the reader when they
need not wait (no acks=-1 flush, no long poll), and when nothing is queued ahead the reader
writes the response itself: no task, no queue and no writer wake-up on the common path.

Sockets are used directly rather than through asyncio transports so that Fetch responses can
interleave ``sendmsg`` (headers built in Python) with ``os.sendfile`` from segment files at
explicit positions: the record bytes never pass through a Python buffer, and the segment
file's descriptor offset is never moved (the log writer may share it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..protocol import (
    REJECTED,
    SUPPORTED,
    FileRegion,
    ProtocolError,
    RequestHeader,
    decode_request,
    encode_response,
    read_request_header,
)
from .errors import UNSUPPORTED_VERSION
from .groups import PEER_HOST

if TYPE_CHECKING:
    from .server import Broker

log = logging.getLogger("edplog.broker")

API_VERSIONS = 18
READ_CHUNK = 256 * 1024
# Requests a connection may have in flight before the broker stops reading from it.
MAX_IN_FLIGHT = 64
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

Handler = Callable[["Broker", RequestHeader, dict[str, Any]], Awaitable[dict[str, Any] | None]]
# A handler run inside the dispatch: the response body (None: no response), or a coroutine
# for the part that has to wait, which becomes the request's task.
NowHandler = Callable[["Broker", RequestHeader, dict[str, Any]], Any]


@dataclass(slots=True)
class _Pending:
    header: RequestHeader
    task: asyncio.Future[Any] | None  # None: answer ``body`` directly
    body: dict[str, Any] | None = None
    version: int = -1  # the version to encode the response with (ApiVersions fallback: 0)


def version_supported(api_key: int, version: int) -> bool:
    """Whether a request of this version is served (advertised and not rejected)."""
    rng = SUPPORTED.get(api_key)
    if rng is None or not rng[0] <= version <= rng[1]:
        return False
    return version not in REJECTED.get(api_key, ())


class Connection:
    """One client connection: a frame reader and an in-order response writer."""

    def __init__(self, broker: Broker, sock: socket.socket, peer: Any) -> None:
        self.broker = broker
        self.sock = sock
        self.peer = peer
        self._fd = sock.fileno()
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(MAX_IN_FLIGHT)
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        # A sendfile running on a sender thread: the socket is closed only after it ends,
        # so its descriptor cannot be reused under the thread.
        self._threaded: asyncio.Future[int] | None = None
        self._writing = False  # the writer is answering a request
        self._inline = False  # the reader is answering one itself (see _read_loop)
        self._stopping = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_loop())
        self._writer = loop.create_task(self._write_loop())

    def stop_reading(self) -> None:
        """Shutdown: take no new requests; the writer drains what was already read."""
        self._stopping = True
        if self._reader is not None and not self._reader.done() and not self._inline:
            self._reader.cancel()  # (an answer being written by the reader is finished)

    @property
    def threaded_send(self) -> asyncio.Future[int] | None:
        """The sendfile running on a sender thread, if one is."""
        t = self._threaded
        return t if t is not None and not t.done() else None

    async def finished(self) -> None:
        if self._writer is not None:
            await asyncio.wait([self._writer])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._reader, self._writer):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
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
        self.broker.forget(self)

    # ---- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self.sock
        limit = self.broker.config.socket_request_max_bytes
        PEER_HOST.set(str(self.peer[0]) if isinstance(self.peer, tuple) else "")
        buf = bytearray(READ_CHUNK)
        view = memoryview(buf)
        start = end = 0
        try:
            while True:
                while end - start < 4:
                    if start == end:
                        start = end = 0
                    elif end > READ_CHUNK - 4:
                        buf[: end - start] = buf[start:end]
                        start, end = 0, end - start
                    n = await loop.sock_recv_into(sock, view[end:])
                    if n == 0:
                        return
                    end += n
                size = int.from_bytes(buf[start : start + 4], "big", signed=True)
                start += 4
                if size <= 0 or size > limit:
                    log.info("closing %s: request size %d outside (0, %d]", self.peer, size, limit)
                    return
                frame = bytearray(size)
                got = min(end - start, size)
                frame[:got] = view[start : start + got]
                start += got
                fview = memoryview(frame)
                while got < size:
                    n = await loop.sock_recv_into(sock, fview[got:])
                    if n == 0:
                        return
                    got += n
                pending = self._dispatch(fview)
                if pending is None:
                    return
                if pending.task is None and not self._writing and self._queue.empty():
                    # Answered already and nothing is ahead of it: write it from here,
                    # which saves the writer task's wake-up (an event-loop round).
                    if not await self._answer_inline(pending) or self._stopping:
                        return
                    continue
                await self._queue.put(pending)
        except (ConnectionError, OSError):
            return
        finally:
            # Let the writer answer everything already read, then end the connection.
            try:
                self._queue.put_nowait(None)
            except asyncio.QueueFull:
                loop.create_task(self._queue.put(None))

    def _dispatch(self, frame: memoryview) -> _Pending | None:
        """Parse one request and start its handler; None means close the connection."""
        try:
            header = read_request_header(frame)
        except (ProtocolError, ValueError, IndexError) as exc:
            log.info("closing %s: unreadable request header (%s)", self.peer, exc)
            return None
        key, version = header.api_key, header.api_version
        if key == API_VERSIONS and not version_supported(key, version):
            # Kafka (KIP-511): answer in v0 with UNSUPPORTED_VERSION and our ApiVersions range
            # so the client can retry with a version we speak.
            lo, hi = SUPPORTED[API_VERSIONS]
            body = {
                "error_code": UNSUPPORTED_VERSION,
                "api_keys": [{"api_key": API_VERSIONS, "min_version": lo, "max_version": hi}],
                "throttle_time_ms": 0,
            }
            return _Pending(header, None, body, 0)
        handler = self.broker.handlers.get(key)
        if handler is None or header.body_offset < 0 or not version_supported(key, version):
            return self._unsupported(header, frame)
        try:
            req = decode_request(key, version, frame, header.body_offset)
        except (ProtocolError, ValueError, IndexError, UnicodeDecodeError) as exc:
            log.info("closing %s: malformed %s v%d body (%s)", self.peer, key, version, exc)
            return None
        now = self.broker.now_handlers.get(key)
        if now is None:
            task = asyncio.ensure_future(_guarded(handler, self.broker, header, req))
            return _Pending(header, task, None, version)
        try:
            result = now(self.broker, header, req)
        except Exception:
            log.exception("handler for api %d v%d failed", key, version)
            return _Pending(header, None, _CLOSE, version)
        if isinstance(result, Coroutine):
            task = asyncio.ensure_future(_guarded_coroutine(result, header))
            return _Pending(header, task, None, version)
        return _Pending(header, None, result, version)

    def _unsupported(self, header: RequestHeader, frame: memoryview) -> _Pending | None:
        """UNSUPPORTED_VERSION for a version we advertise but reject (Produce v0-2 ...).

        Versions nobody advertised, and unknown API keys, close the connection as Kafka does:
        there is no response schema to answer them in.
        """
        from . import fetch, produce

        key, version = header.api_key, header.api_version
        rng = SUPPORTED.get(key)
        if header.body_offset < 0 or rng is None or not rng[0] <= version <= rng[1]:
            log.info("closing %s: api %d v%d not supported", self.peer, key, version)
            return None
        try:
            builder = {0: produce.error_body, 1: fetch.error_body}.get(key)
            if builder is None:
                log.info("closing %s: api %d v%d rejected", self.peer, key, version)
                return None
            req = decode_request(key, version, frame, header.body_offset)
            body = builder(req, UNSUPPORTED_VERSION)
        except Exception as exc:  # no way to build an answer: end the connection
            log.info("closing %s: api %d v%d rejected (%s)", self.peer, key, version, exc)
            return None
        return _Pending(header, None, body, version)

    # ---- writing ---------------------------------------------------------------------------

    async def _answer_inline(self, pending: _Pending) -> bool:
        """Write an answered request's response from the reader; False ends the connection."""
        body = pending.body
        if body is _CLOSE:
            return False
        if body is None:  # acks=0 Produce: Kafka sends nothing back
            return True
        h = pending.header
        try:
            parts, _ = encode_response(h.api_key, pending.version, h.correlation_id, body)
        except ProtocolError as exc:
            log.error("could not encode a response for %s: %s", self.peer, exc)
            return False
        self._inline = True
        try:
            await self._send(parts)
        finally:
            self._inline = False
        return True

    async def _write_loop(self) -> None:
        try:
            while True:
                pending = await self._queue.get()
                if pending is None:
                    return
                self._writing = True
                body = pending.body
                if pending.task is not None:
                    body = await pending.task
                if body is _CLOSE:
                    return
                if body is not None:  # None: acks=0 Produce, Kafka sends nothing back
                    h = pending.header
                    parts, _ = encode_response(h.api_key, pending.version, h.correlation_id, body)
                    await self._send(parts)
                self._writing = False
        except (ConnectionError, OSError) as exc:
            log.debug("connection %s ended while writing: %s", self.peer, exc)
        except ProtocolError as exc:
            log.error("could not encode a response for %s: %s", self.peer, exc)
        finally:
            self.close()

    async def _send(self, parts: list[Any]) -> None:
        """Write bytes-like parts with ``sendmsg`` and FileRegions with ``os.sendfile``."""
        run: list[Any] = []
        for part in parts:
            if isinstance(part, FileRegion):
                if run:
                    await self._sendmsg(run)
                    run = []
                # A descriptor of our own: a segment closed by retention or deletion while
                # the region is on its way cannot have its number reused under the send.
                fd = os.dup(part.file.fileno())
                try:
                    await self._sendfile(fd, part.pos, part.length)
                finally:
                    threaded = self._threaded
                    if threaded is not None and not threaded.done():
                        threaded.add_done_callback(lambda _, fd=fd: os.close(fd))
                    else:
                        os.close(fd)
            elif len(part):
                run.append(part)
        if run:
            await self._sendmsg(run)

    async def _sendmsg(self, buffers: list[Any]) -> None:
        views = [memoryview(b).cast("B") for b in buffers]
        while views:
            try:
                sent = self.sock.sendmsg(views[:512])
            except (BlockingIOError, InterruptedError):
                await self._writable()
                continue
            while sent:
                if sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                else:
                    views[0] = views[0][sent:]
                    sent = 0

    async def _sendfile(self, file_fd: int, pos: int, count: int) -> None:
        while count > 0:
            try:
                sent = os.sendfile(self._fd, file_fd, pos, count)
            except (BlockingIOError, InterruptedError):
                broker = self.broker
                if count < SENDER_MIN_BYTES or broker.senders_busy >= SENDER_THREADS:
                    await self._writable()
                    continue
                broker.senders_busy += 1
                threaded = asyncio.get_running_loop().run_in_executor(
                    broker.sender, _send_blocking, self._fd, file_fd, pos, count
                )
                threaded.add_done_callback(broker.sender_done)
                self._threaded = threaded
                # shield: a cancelled writer must not mark the send done while the thread
                # still uses the socket (close() waits for this future).
                sent = await asyncio.shield(threaded)
                if sent == 0:  # stalled: the client is not reading; wait on the loop
                    await self._writable()
                    continue
            if sent == 0:
                # The segment shrank under us (retention/truncation): the response is already
                # partly written and cannot be completed, so the connection must end.
                raise ConnectionError("segment file ended before the fetched region")
            pos += sent
            count -= sent

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_writer(self._fd, ready)
        try:
            await fut
        finally:
            loop.remove_writer(self._fd)


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


_CLOSE: Any = object()  # a handler result meaning "end this connection without answering"


async def _guarded(
    handler: Handler, broker: Broker, header: RequestHeader, req: dict[str, Any]
) -> Any:
    """Run a handler; a bug in one request is logged and ends only that connection."""
    try:
        return await handler(broker, header, req)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("handler for api %d v%d failed", header.api_key, header.api_version)
        return _CLOSE


async def _guarded_coroutine(coro: Coroutine[Any, Any, Any], header: RequestHeader) -> Any:
    """``_guarded`` for the waiting part of a handler run in the dispatch."""
    try:
        return await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("handler for api %d v%d failed", header.api_key, header.api_version)
        return _CLOSE
