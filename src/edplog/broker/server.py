"""The asyncio broker: the listening socket, the partitions, the handlers and shutdown.

Connections are in :mod:`edplog.broker.connection` (state machine, ordering),
:mod:`edplog.broker.framing` (frames, request memory) and :mod:`edplog.broker.transport`
(the socket). This module accepts them, counts them (``max.connections``,
``max.connections.per.ip``) and closes the idle ones (``connections.max.idle.ms``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from typing import Any

from .config import BrokerConfig
from .connection import Connection, Handler, NowHandler
from .framing import RequestMemory
from .housekeeping import DEFAULT_INTERVAL_MS as DEFAULT_HOUSEKEEPING_MS
from .housekeeping import run_housekeeping
from .partition import Partition
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


class Broker:
    """One broker: the store, the partitions it leads, the group coordinator, the server."""

    def __init__(self, config: BrokerConfig, handlers: dict[int, Handler] | None = None):
        self.config = config
        self.store: Any = None
        self.coordinator: Any = None
        self.handlers = handlers if handlers is not None else default_handlers()
        # Fetch and Produce answer without a task or an event-loop round when they can.
        self.now_handlers: dict[int, NowHandler] = {} if handlers is not None else now_handlers()
        self.closing = False
        self._partitions: dict[str, list[Partition]] = {}
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._connections: set[Connection] = set()
        self._per_host: Counter[str] = Counter()
        self._slot_free: asyncio.Event | None = None
        self._idle_sweep: asyncio.Task[None] | None = None
        self._shutdown_waiter: asyncio.Future[None] | None = None
        self.commit: Any = None
        self.producer_ids: Any = None
        self.memory = RequestMemory(config.queued_max_request_bytes)
        self.senders = SenderPool()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        """Open the store, start the coordinator and listen. Returns the bound (host, port)."""
        from ..storage import Store
        from .produce import GroupCommit, ProducerIdAllocator

        loop = asyncio.get_running_loop()
        self._shutdown_waiter = loop.create_future()
        os.makedirs(self.config.data_dir, exist_ok=True)
        self.store = Store(self.config.data_dir, defaults=self.config.store_defaults())
        self.commit = GroupCommit()
        self.producer_ids = ProducerIdAllocator()
        self.coordinator = await _start_coordinator(self)
        interval_ms = int(
            self.config.extra.get("log.retention.check.interval.ms", DEFAULT_HOUSEKEEPING_MS)
        )
        self._housekeeping = loop.create_task(run_housekeeping(self.store, interval_ms))
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        sock.listen(512)
        sock.setblocking(False)
        self._listener = sock
        self.config.port = sock.getsockname()[1]
        self._slot_free = asyncio.Event()
        self._accept_task = loop.create_task(self._accept_loop())
        self._idle_sweep = loop.create_task(self._sweep_idle(self.config.connections_max_idle_ms))
        return self.config.host, self.config.port

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, answer what is in flight, flush, close."""
        if self.closing:
            return
        self.closing = True
        if self._shutdown_waiter is not None and not self._shutdown_waiter.done():
            self._shutdown_waiter.set_result(None)
        for parts in self._partitions.values():
            for partition in parts:
                partition.notify()
        if self._accept_task is not None:
            self._accept_task.cancel()
        if self._idle_sweep is not None:
            self._idle_sweep.cancel()
        if self._listener is not None:
            self._listener.close()
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
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.coordinator is not None:
            try:
                await self.coordinator.close()
            except Exception:
                log.exception("group coordinator did not close cleanly")
        if self.commit is not None:
            await self.commit.close()
        self.senders.shutdown()
        if self.store is not None:
            self.store.flush()
            self.store.close()

    def shutdown_waiter(self) -> asyncio.Future[None]:
        """Completes when shutdown starts, so long polls return at once."""
        assert self._shutdown_waiter is not None
        return self._shutdown_waiter

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
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, PlainTransport(sock, self.senders), peer)
            self._connections.add(conn)
            self._per_host[host] += 1
            conn.start()

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

    # ---- partitions ------------------------------------------------------------------------

    def partitions(self, topic: str) -> list[Partition] | None:
        """The partitions of ``topic`` (opened on first use), or None if it does not exist."""
        parts = self._partitions.get(topic)
        if parts is not None:
            return parts
        count = self.store.topics().get(topic)
        if count is None:
            return None
        parts = [
            Partition(topic, i, self.store.log(topic, i), self.config.node_id) for i in range(count)
        ]
        self._partitions[topic] = parts
        return parts

    def partition(self, topic: str, index: int) -> Partition | None:
        parts = self.partitions(topic)
        if parts is None or not 0 <= index < len(parts):
            return None
        return parts[index]

    def topic_deleted(self, topic: str) -> None:
        """Forget a deleted topic's partitions, wake fetches parked on them and drop its
        committed offsets, so a topic re-created under the name starts with none."""
        parts = self._partitions.pop(topic, None)
        for partition in parts or ():
            partition.notify()
        if self.coordinator is not None:
            try:
                self.coordinator.topic_deleted(topic)
            except Exception:
                log.exception("could not drop the committed offsets of deleted topic %s", topic)

    def partitions_added(self, topic: str) -> None:
        """Open the new partitions, keeping the old ones (and their producer state)."""
        parts = self._partitions.get(topic)
        count = self.store.topics().get(topic, 0)
        if parts is not None:
            for i in range(len(parts), count):
                parts.append(Partition(topic, i, self.store.log(topic, i), self.config.node_id))

    def config_changed(self, topic: str) -> None:
        for partition in self._partitions.get(topic, ()):
            partition.refresh_config()


async def _start_coordinator(broker: Broker) -> Any:
    """The group coordinator, when that package is present (it persists committed offsets)."""
    try:
        from ..group import GroupCoordinator
    except ImportError:
        log.warning("edplog.group is unavailable: consumer group APIs will fail")
        return None
    settings = broker.config.group_settings
    kwargs: dict[str, Any] = {}
    for prop, name in (
        ("group.min.session.timeout.ms", "min_session_timeout_ms"),
        ("group.max.session.timeout.ms", "max_session_timeout_ms"),
        ("group.initial.rebalance.delay.ms", "initial_rebalance_delay_ms"),
    ):
        if prop in settings:
            kwargs[name] = int(settings[prop])
    for prop, name in (
        ("offset.metadata.max.bytes", "offset_metadata_max_bytes"),
        ("offsets.topic.num.partitions", "offsets_topic_partitions"),
    ):
        if prop in broker.config.extra:
            kwargs[name] = int(broker.config.extra[prop])
    coord = GroupCoordinator(broker.store, **kwargs)
    await coord.start()
    return coord


def now_handlers() -> dict[int, NowHandler]:
    """The APIs answered inside the dispatch when they need not wait (Produce, Fetch)."""
    from . import fetch, produce

    return {**produce.NOW_HANDLERS, **fetch.NOW_HANDLERS}


def default_handlers() -> dict[int, Handler]:
    """Every API this broker serves, by API key, gathered from the per-family modules."""
    from . import admin, fetch, groups, metadata, produce

    handlers: dict[int, Handler] = {}
    for module in (metadata, produce, fetch, admin, groups):
        handlers.update(module.HANDLERS)
    return handlers
