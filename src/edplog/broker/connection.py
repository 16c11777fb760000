"""One client connection of the broker: a state machine over a transport.

States::

    AUTHENTICATING --(SASL done)--> READY --(end of stream, bad input, shutdown)--> CLOSING
                                                                                  -> closed

A plaintext connection starts READY. A listener with SASL will start its connections in
AUTHENTICATING: there ``_dispatch`` accepts only ApiVersions, SaslHandshake and
SaslAuthenticate (``AUTHENTICATION_APIS``) and closes the connection on anything else, as
Kafka does; the SaslAuthenticate handler moves the connection to READY once the client has
proved who it is. CLOSING reads nothing more, answers what was already dispatched and then
closes the transport.

With ``connections.max.reauth.ms`` (KIP-368) a login's session ends after its lifetime: the
client logs in again on the connection (SaslHandshake and SaslAuthenticate while READY);
a request other than those after the session ended closes the connection, as Kafka does. A
failed re-authentication closes it too.

Kafka clients pipeline requests and match responses by position, so responses go out in
request order: ``_pending`` holds the dispatched requests whose responses are not written
yet, and a Fetch parked in a long poll therefore holds back the responses queued behind it
on *its* connection only. Produce and Fetch run inside the dispatch when they need not wait
(no acks=-1 flush, no long poll), and when nothing is queued ahead the response is written
from the reader itself: no task, no queue and no writer wake-up on the common path (the
frame-to-first-byte of an 8 MiB fetch went from 273 to 154 us median with it, commit
641dc89). A writer task exists only while responses wait (a handler task, a socket that
did not take everything); at most ``MAX_IN_FLIGHT`` requests are in flight before the
connection stops reading.

Reading is a ``loop.add_reader`` callback, not a task per connection. Every connection of
the broker receives into one shared buffer (``framing.RequestMemory.scratch``), which is
safe only if each receive is cut into frames before anything else runs: a callback does
that; a reader task that awaited in between (a full socket while answering inline) would
let another connection overwrite the buffer. So an idle connection holds no receive
buffer, no task and no coroutine frame: 2.7 KiB of broker RSS each, against 268 KiB with
a reader task, a writer task and a 256 KiB buffer per connection (2,000 idle connections;
"Connections and memory" in docs/broker.md). Frames, their growth and the
``queued.max.request.bytes`` account are in :mod:`.framing`; the socket (``sendmsg``,
``sendfile``, sender threads) is in :mod:`.transport`.

A request a client quota throttles (:mod:`.quotas`) carries its throttle time on its
context: once its response is sent the connection is *muted* for that long — it neither
reads nor dispatches — as Kafka does since KIP-219, so a client that ignores
``throttle_time_ms`` is held all the same.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import logging
import time
from collections import deque
from typing import Any, Protocol

from ..protocol import ProtocolError, RequestHeader, encode_response
from ..security import ANONYMOUS, Principal, audit
from ..security.sasl import SaslSession
from .config import BrokerConfig
from .context import RequestContext
from .dispatch import CLOSE, Dispatcher, Pending
from .framing import FrameReader, RequestMemory
from .transport import Transport

log = logging.getLogger("edplog.broker")

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
#: What a client may send before it has authenticated (Kafka's SASL rule).
AUTHENTICATION_APIS = frozenset({API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE})
# Requests a connection may have in flight before the broker stops reading from it.
MAX_IN_FLIGHT = 64
# Bytes received per readiness callback: a client streaming a large frame cannot keep the
# loop from the other connections for longer than this.
READ_BYTES_PER_WAKEUP = 4 * 1024 * 1024


class Server(Protocol):
    """What a connection needs of the listener that accepted it (broker/server.py)."""

    config: BrokerConfig
    memory: RequestMemory
    dispatcher: Dispatcher

    def forget(self, conn: Connection) -> None: ...


class State(enum.Enum):
    AUTHENTICATING = "authenticating"
    READY = "ready"
    CLOSING = "closing"


class Connection:
    """One client connection: frames in, requests dispatched in order, responses in order."""

    __slots__ = (
        "server",
        "transport",
        "peer",
        "state",
        "closed",
        "last_active_s",
        "_loop",
        "_fd",
        "_context",
        "_memory",
        "_frames",
        "_ready",
        "_pending",
        "_writer",
        "_reading",
        "_waiting_memory",
        "_done",
        "principal",
        "listener",
        "connection_id",
        "_muted",
        "_unmute_handle",
        "sasl",
        "_session_ends",
        "_logins",
    )

    def __init__(
        self,
        server: Server,
        transport: Transport,
        peer: Any,
        state: State = State.READY,
        *,
        listener: str = "PLAINTEXT",
        connection_id: str = "",
        sasl: SaslSession | None = None,
    ) -> None:
        self.server = server
        self.transport = transport
        self.peer = peer
        self.state = state
        self.closed = False
        self.last_active_s = time.monotonic()
        self.principal: Principal = ANONYMOUS
        self.listener = listener
        self.connection_id = connection_id
        self._loop = asyncio.get_running_loop()
        self._fd = transport.fileno()
        # The reader callback, and every handler task it starts, run in this context.
        self._context = contextvars.copy_context()
        self._memory = server.memory
        self._frames = FrameReader(server.memory, server.config.socket_request_max_bytes)
        self._ready: deque[bytearray] = deque()  # frames cut but not dispatched yet
        self._pending: deque[Pending] = deque()  # dispatched, response not written yet
        self._writer: asyncio.Task[None] | None = None
        self._reading = False
        self._waiting_memory = False
        self._done: asyncio.Future[None] | None = None
        self._muted = False
        self._unmute_handle: asyncio.TimerHandle | None = None
        # A SASL listener's exchange: the connection starts AUTHENTICATING with it.
        self.sasl = sasl
        self._session_ends = 0.0  # time.monotonic() the login's session ends; 0: never
        self._logins = 0
        if sasl is not None:
            self.state = State.AUTHENTICATING
            # Before the login, frames are held to sasl.server.max.receive.size, as in Kafka:
            # an unauthenticated client may not make the broker hold 100 MiB for it.
            self._frames.limit(
                min(
                    server.config.socket_request_max_bytes,
                    server.config.sasl_server_max_receive_size,
                )
            )

    def start(self) -> None:
        self._update_reading()

    def stop_reading(self) -> None:
        """Shutdown: take no new requests; what was dispatched is still answered."""
        if not self.closed:
            self._finish(drop_unstarted=True)

    @property
    def threaded_send(self) -> asyncio.Future[int] | None:
        """The sendfile running on a sender thread, if one is."""
        return self.transport.sending

    async def finished(self) -> None:
        """Wait until the connection has closed (after ``stop_reading``: once drained)."""
        if self.closed:
            return
        if self._done is None:
            self._done = self._loop.create_future()
        await self._done

    @property
    def receiving(self) -> bool:
        """Whether an unfinished frame has arrived in part."""
        return self._frames.receiving

    def idle_s(self, now: float) -> float:
        """Seconds with nothing in flight and nothing received; 0 while a request is in
        flight or the broker itself holds reading back (the request memory is full)."""
        if (
            self._pending
            or self._ready
            or self._waiting_memory
            or self._writer is not None
            or self._muted
        ):
            return 0.0
        return now - self.last_active_s

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.state = State.CLOSING
        self._reading = False  # the transport unregisters the descriptor before closing it
        if self._unmute_handle is not None:
            self._unmute_handle.cancel()
        self._drop_unstarted()
        self._frames.close()
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        for pending in self._pending:
            if pending.parts:
                self.transport.discard(pending.parts)
        self._pending.clear()
        self.transport.close()
        self.server.forget(self)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # ---- reading ---------------------------------------------------------------------------

    def _update_reading(self) -> None:
        """Watch the descriptor exactly while a new frame may be read."""
        want = (
            self.state is not State.CLOSING
            and not self._waiting_memory
            and not self._muted
            and not self._ready
            and len(self._pending) < MAX_IN_FLIGHT
        )
        if want is self._reading:
            return
        self._reading = want
        if want:
            self._context.run(self._loop.add_reader, self._fd, self._on_readable)
        else:
            self._loop.remove_reader(self._fd)

    def _on_readable(self) -> None:
        frames = self._frames
        transport = self.transport
        try:
            budget = READ_BYTES_PER_WAKEUP
            first = True
            while budget > 0:
                if not first and frames.full and not transport.buffered():
                    # Grow only once the socket says more has come: a client that stops
                    # mid-frame then holds what it sent, not twice that.
                    return
                view = frames.buffer()
                if view is None:  # queued.max.request.bytes reached: wait for room
                    log.debug(
                        "%s waits for request memory (%d of %d bytes held)",
                        self.peer,
                        self._memory.used_bytes,
                        self._memory.limit_bytes,
                    )
                    self._waiting_memory = True
                    self._update_reading()
                    self._memory.wait(frames, frames.need, self._memory_freed)
                    return
                offered = len(view)
                try:
                    n = transport.recv_into(view)
                except (BlockingIOError, InterruptedError):
                    return
                if n == 0:
                    self._finish(drop_unstarted=False)  # answer what was sent, then close
                    return
                self.last_active_s = time.monotonic()
                first = False
                budget -= n
                ready = frames.received(n)
                if ready:
                    self._ready.extend(ready)
                    self._run_ready()
                if self.state is State.CLOSING:
                    return
                if frames.refused is not None:
                    log.info("closing %s: %s", self.peer, frames.refused)
                    self._finish(drop_unstarted=False)  # the frames before it are answered
                    return
                if not self._reading or (
                    n < offered and transport.short_read_drains and not transport.buffered()
                ):
                    return
        except (ConnectionError, OSError) as exc:
            log.debug("connection %s ended while reading: %s", self.peer, exc)
            self.close()
        except Exception:
            log.exception("connection %s failed", self.peer)
            self.close()

    def _memory_freed(self) -> None:
        self._waiting_memory = False
        self.last_active_s = time.monotonic()  # the wait was the broker's, not the client's
        if not self.closed:
            self._update_reading()

    def _run_ready(self) -> None:
        """Dispatch the frames cut so far, in order, as far as the in-flight limit allows."""
        ready, pending, memory = self._ready, self._pending, self._memory
        # While client quotas are set, one request at a time, as Kafka serves a connection:
        # a throttle is known only once a request is answered, and pipelined requests
        # dispatched before it would pass the quota unmeasured.
        quotas = self.server.dispatcher.services.quotas
        limit = 1 if quotas is not None and quotas.active else MAX_IN_FLIGHT
        while ready and len(pending) < limit and not self._muted:
            frame = ready.popleft()
            size = len(frame)
            memory.run(size)
            started = self._dispatch(memoryview(frame))
            if started is None or started.task is None:
                memory.give(size, ran=True)
            else:
                started.task.add_done_callback(functools.partial(_give_back, memory, size))
            if started is None:
                self._finish(drop_unstarted=True)
                return
            self._submit(started)
            if self.closed:
                return
            if (
                self.sasl is not None
                and started.header.api_key in (SASL_HANDSHAKE, SASL_AUTHENTICATE)
                and self._after_login_step()
            ):
                return
        self._update_reading()

    def _after_login_step(self) -> bool:
        """After each SASL request: READY (or still READY, re-authenticated) once a login has
        named a principal, with that login's session end; closing (after the failure's
        answer is written) once one failed. True when the connection stops taking requests."""
        sasl = self.sasl
        if sasl is None:
            return False
        services = self.server.dispatcher.services
        metrics = services.metrics
        if sasl.failed:
            log.info("%s failed SASL authentication (%s)", self.peer, sasl.mechanism)
            metrics.authentication(self.listener, sasl.mechanism, False)
            audit.authenticated(services.audit, self, None)
            self._finish(drop_unstarted=True)
            return True
        if sasl.principal is not None and sasl.logins != self._logins:
            again = self._logins > 0
            self._logins = sasl.logins
            self.principal = sasl.principal
            self.state = State.READY
            self._frames.limit(self.server.config.socket_request_max_bytes)
            ends = sasl.expires_at
            self._session_ends = ends if ends is not None else 0.0
            log.info(
                "%s %s as %s (%s)",
                self.peer,
                "re-authenticated" if again else "authenticated",
                sasl.principal,
                sasl.mechanism,
            )
            metrics.authentication(self.listener, sasl.mechanism, True, again)
            audit.authenticated(services.audit, self, sasl.principal)
        return False

    def _mute_after(self, pending: Pending) -> None:
        """Its response is sent: mute for the request's throttle time, if it has one."""
        ctx = pending.context
        if ctx is None or ctx.throttle_ms <= 0 or self.closed:
            return
        if self._unmute_handle is not None:
            self._unmute_handle.cancel()
        self._muted = True
        self._unmute_handle = self._loop.call_later(ctx.throttle_ms / 1000.0, self._unmute)
        self._update_reading()

    def _unmute(self) -> None:
        self._unmute_handle = None
        self._muted = False
        if self.closed:
            return
        self.last_active_s = time.monotonic()  # the wait was the broker's, not the client's
        self._run_ready()
        if (
            not self.closed
            and self.state is State.CLOSING
            and not self._pending
            and not self._ready
        ):
            self.close()

    def _drop_unstarted(self) -> None:
        while self._ready:
            self._memory.give(len(self._ready.popleft()))

    def _finish(self, *, drop_unstarted: bool) -> None:
        """CLOSING: read nothing more, answer what is dispatched (and, unless dropped, the
        frames already cut), then close."""
        self.state = State.CLOSING
        if drop_unstarted:
            self._drop_unstarted()
        self._update_reading()
        if not self._pending and not self._ready:
            self.close()

    # ---- the dispatch seam -----------------------------------------------------------------

    def _dispatch(self, frame: memoryview) -> Pending | None:
        """Hand one frame to the broker's dispatch; None means close the connection.

        While AUTHENTICATING, and once a login's session has ended, only the authentication
        APIs are let through (any other closes the connection, as Kafka does)."""
        allowed = AUTHENTICATION_APIS if self.state is State.AUTHENTICATING else None
        if self._session_ends and time.monotonic() >= self._session_ends:
            allowed = AUTHENTICATION_APIS
        return self.server.dispatcher.dispatch(frame, self._request_context, allowed)

    def _request_context(self, header: RequestHeader) -> RequestContext:
        peer = self.peer if isinstance(self.peer, tuple) else None
        return RequestContext(
            header,
            peer=(str(peer[0]), int(peer[1])) if peer else None,
            listener=self.listener,
            connection_id=self.connection_id,
            principal=self.principal,
            sasl=self.sasl,
        )

    # ---- writing ---------------------------------------------------------------------------

    def _submit(self, pending: Pending) -> None:
        """Answer now if nothing is ahead and the answer is there; else queue it in order."""
        if pending.task is None and not self._pending:
            body = pending.body
            if body is None:  # acks=0 Produce: Kafka sends nothing back
                self._mute_after(pending)
                return
            if body is CLOSE:
                self._finish(drop_unstarted=True)
                return
            try:
                rest = self.transport.send_now(self._encode(pending, body))
            except (ConnectionError, OSError) as exc:
                log.debug("connection %s ended while writing: %s", self.peer, exc)
                self.close()
                return
            except ProtocolError as exc:
                log.error("could not encode a response for %s: %s", self.peer, exc)
                self.close()
                return
            if rest is None:
                self._mute_after(pending)
                return
            pending.parts = rest  # the socket is full: the writer finishes this one
        self._pending.append(pending)
        if self._writer is None:
            self._writer = self._loop.create_task(self._write_loop())

    def _encode(self, pending: Pending, body: dict[str, Any]) -> list[Any]:
        h = pending.header
        return encode_response(h.api_key, pending.version, h.correlation_id, body)[0]

    async def _write_loop(self) -> None:
        pending = self._pending
        try:
            while pending:
                head = pending[0]
                parts = head.parts
                if parts is None:
                    body = head.body if head.task is None else await self._answer_of(head.task)
                    if body is CLOSE:
                        self.close()
                        return
                    if body is not None:  # None: acks=0 Produce, Kafka sends nothing back
                        parts = head.parts = self._encode(head, body)
                if parts:
                    await self.transport.send(parts)
                head.parts = None
                pending.popleft()
                self.last_active_s = time.monotonic()
                self._mute_after(head)
                if self._ready:
                    self._run_ready()
                    if self.closed:
                        return
                if self.state is State.CLOSING:
                    if not pending and not self._ready:
                        self.close()
                        return
                else:
                    self._update_reading()
        except (ConnectionError, OSError) as exc:
            log.debug("connection %s ended while writing: %s", self.peer, exc)
            self.close()
        except ProtocolError as exc:
            log.error("could not encode a response for %s: %s", self.peer, exc)
            self.close()
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    @staticmethod
    async def _answer_of(task: asyncio.Future[Any]) -> Any:
        """A handler task's result; a task cancelled from elsewhere ends the connection."""
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return CLOSE


def _give_back(memory: RequestMemory, nbytes: int, _: object) -> None:
    """A handler task ended: the request's bytes leave the request-memory account."""
    memory.give(nbytes, ran=True)
