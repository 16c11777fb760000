"""The listener: accepting connections, counting them and closing the idle ones.

Connections are in :mod:`edplog.broker.connection` (state machine, ordering),
:mod:`edplog.broker.framing` (frames, request memory) and :mod:`edplog.broker.transport`
(the socket); each hands its frames to the broker's dispatch. The server accepts them, counts
them (``max.connections``, ``max.connections.per.ip``), closes the idle ones
(``connections.max.idle.ms``) and, on shutdown, lets every connection answer what it already
read before closing it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections import Counter
from typing import Any

from .config import BrokerConfig
from .connection import Connection
from .dispatch import Dispatcher
from .framing import RequestMemory
from .transport import PlainTransport, SenderPool

log = logging.getLogger("edplog.broker")

# How long a graceful shutdown waits for in-flight requests before closing sockets.
SHUTDOWN_GRACE_S = 5.0
# While connections wait for request memory (queued.max.request.bytes), a connection that
# holds an unfinished frame and has received nothing for this long is closed: otherwise
# clients that send most of a large request and stop would keep every other client waiting
# until connections.max.idle.ms (10 minutes by default).
STALLED_FRAME_S = 5.0
# The sweep runs this many times per limit (at most every SWEEP_MIN_S), so a connection is
# closed at most a quarter of its limit late; with the default limits, every 1.25 s.
SWEEPS_PER_LIMIT = 4
SWEEP_MIN_S = 0.05

# Connections held back by connection_creation_rate at once; beyond it they close at once.
MAX_HELD_CONNECTIONS = 1000


class Server:
    """The broker's listener and its connections (see the module docstring)."""

    def __init__(self, config: BrokerConfig, dispatcher: Dispatcher, metrics: Any) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.memory = RequestMemory(config.queued_max_request_bytes)
        self.senders = SenderPool()
        metrics.request_queue_bytes.set_function(lambda: self.memory.used_bytes)
        metrics.connections.set_function(lambda: len(self._connections))
        self.closing = False
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._idle_sweep: asyncio.Task[None] | None = None
        self._connections: set[Connection] = set()
        self._per_host: Counter[str] = Counter()
        self._slot_free: asyncio.Event | None = None
        self._ids = itertools.count()
        # Connections over an IP's connection_creation_rate, held until their close time.
        self._held: dict[socket.socket, asyncio.TimerHandle] = {}

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound (host, port)."""
        loop = asyncio.get_running_loop()
        config = self.config
        sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sock.listen(512)
        sock.setblocking(False)
        self._listener = sock
        config.port = sock.getsockname()[1]
        self._slot_free = asyncio.Event()
        self._accept_task = loop.create_task(self._accept_loop())
        self._idle_sweep = loop.create_task(self._sweep_idle(config.connections_max_idle_ms))
        return config.host, config.port

    async def stop(self) -> None:
        """Stop accepting, let every connection answer what it read, then close them."""
        if self.closing:
            return
        self.closing = True
        if self._accept_task is not None:
            self._accept_task.cancel()
        if self._idle_sweep is not None:
            self._idle_sweep.cancel()
        if self._listener is not None:
            self._listener.close()
        for held, timer in list(self._held.items()):
            timer.cancel()
            held.close()
        self._held.clear()
        conns = list(self._connections)
        for conn in conns:
            conn.stop_reading()
        if conns:
            await asyncio.wait(
                [asyncio.ensure_future(c.finished()) for c in conns], timeout=SHUTDOWN_GRACE_S
            )
        for conn in conns:
            conn.close()
        sending = [c.threaded_send for c in conns if c.threaded_send is not None]
        if sending:  # each ends at once (its socket was shut down) and then closes it
            await asyncio.wait(sending, timeout=SHUTDOWN_GRACE_S)
        self.senders.shutdown()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None and self._slot_free is not None
        config = self.config
        while not self.closing:
            if len(self._connections) >= config.max_connections:
                # As Kafka does for max.connections: stop accepting (new clients wait in the
                # listen backlog) until a connection closes.
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                sock, peer = await loop.sock_accept(self._listener)
            except asyncio.CancelledError:
                raise
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            host = str(peer[0])
            limit = config.max_connections_from(host)
            if self._per_host[host] >= limit:
                # As Kafka does for max.connections.per.ip: close the new connection at once.
                log.info("closing a connection from %s: max.connections.per.ip %d", host, limit)
                sock.close()
                continue
            quotas = self.dispatcher.services.quotas
            hold_ms = 0 if quotas is None else quotas.connection_throttle_ms(host)
            if hold_ms:
                # connection_creation_rate exceeded (KIP-612): the connection is held unread
                # for the throttle time, then closed, so a reconnect loop is slowed down.
                log.info(
                    "closing a connection from %s in %d ms: connection rate quota", host, hold_ms
                )
                if len(self._held) >= MAX_HELD_CONNECTIONS:
                    sock.close()  # a flood is not allowed to exhaust descriptors
                else:
                    self._held[sock] = loop.call_later(hold_ms / 1000.0, self._release, sock)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local = sock.getsockname()
            conn = Connection(
                self,
                PlainTransport(sock, self.senders),
                peer,
                connection_id=f"{local[0]}:{local[1]}-{peer[0]}:{peer[1]}-{next(self._ids)}",
            )
            self._connections.add(conn)
            self._per_host[host] += 1
            conn.start()

    def _release(self, sock: socket.socket) -> None:
        self._held.pop(sock, None)
        sock.close()

    def forget(self, conn: Connection) -> None:
        if conn not in self._connections:
            return
        self._connections.discard(conn)
        host = str(conn.peer[0])
        self._per_host[host] -= 1
        if self._per_host[host] <= 0:
            del self._per_host[host]
        if self._slot_free is not None:
            self._slot_free.set()

    async def _sweep_idle(self, idle_ms: int) -> None:
        """Close connections idle for ``connections.max.idle.ms`` (never when negative), and
        stalled unfinished frames while others wait for request memory: one pass over all
        connections a few times per limit, instead of a timer per connection re-armed on
        every read."""
        idle_s = idle_ms / 1000.0 if idle_ms >= 0 else float("inf")
        stalled_s = min(idle_s, STALLED_FRAME_S)
        interval_s = max(stalled_s / SWEEPS_PER_LIMIT, SWEEP_MIN_S)
        memory = self.memory
        while True:
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            pressed = memory.waiting
            for conn in list(self._connections):
                idle = conn.idle_s(now)
                if idle >= idle_s:
                    log.info(
                        "closing %s: idle for connections.max.idle.ms (%d)", conn.peer, idle_ms
                    )
                    conn.close()
                elif pressed and idle >= stalled_s and conn.receiving:
                    log.info(
                        "closing %s: unfinished request stalled for %.0f s while request memory "
                        "is full (queued.max.request.bytes)",
                        conn.peer,
                        idle,
                    )
                    conn.close()
