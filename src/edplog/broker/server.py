"""The listeners: accepting connections, counting them and closing the idle ones.

Connections are in :mod:`edplog.broker.connection` (state machine, ordering),
:mod:`edplog.broker.framing` (frames, request memory) and :mod:`edplog.broker.transport`
(the socket); each hands its frames to the broker's dispatch. The server listens on every
client listener of ``listeners`` (PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL side by
side), accepts connections,
counts them (``max.connections``, ``max.connections.per.ip``, a TLS handshake in progress
included), closes the idle ones (``connections.max.idle.ms``) and, on shutdown, lets every
connection answer what it already read before closing it.

On an SSL listener the TLS handshake runs on the event loop before the connection exists
(``HANDSHAKE_TIMEOUT_S``); a failed handshake (no client certificate under
``ssl.client.auth=required``, an untrusted one, an old protocol, plaintext sent to the TLS
port) closes the socket and is logged. The connection's principal is ``User:<name>`` from
the client certificate's subject mapped by ``ssl.principal.mapping.rules``, or
``User:ANONYMOUS`` without a certificate. Every ``tls_reload_interval_s`` the listeners'
key and trust store files are checked (off the loop) and a changed one is loaded for the
connections accepted after it (:class:`edplog.security.tls.ServerTls`).

On a SASL listener (after the TLS handshake for SASL_SSL) each connection gets a
:class:`edplog.security.sasl.SaslSession` and starts AUTHENTICATING: its principal is the
one its SASL login names (SCRAM against the credentials in force when it logs in).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidConfigError
from ..security import ANONYMOUS, Principal, audit
from ..security.oauth import OAuthConfigError, OAuthValidator
from ..security.sasl import FailedLogins, SaslSession, SaslSettings
from ..security.scram import ScramCredentials
from ..security.ssl_principal import NoMatchingRule, subject_dn
from ..security.tls import ServerTls
from .config import BrokerConfig
from .connection import Connection
from .dispatch import Dispatcher
from .framing import RequestMemory
from .listeners import ListenerConfig
from .transport import PlainTransport, SenderPool, StagingBuffers, TlsTransport, Transport

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
# A TLS client that has not finished its handshake in this long is closed.
HANDSHAKE_TIMEOUT_S = 10.0


@dataclass
class Listener:
    """One listening socket: its listener's settings and, for SSL, its TLS context."""

    config: ListenerConfig
    sock: socket.socket
    tls: ServerTls | None = None
    task: asyncio.Task[None] | None = None
    oauth: OAuthValidator | None = None

    @property
    def name(self) -> str:
        return self.config.name


class Server:
    """The broker's listener and its connections (see the module docstring)."""

    def __init__(self, config: BrokerConfig, dispatcher: Dispatcher, metrics: Any) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.memory = RequestMemory(config.queued_max_request_bytes)
        self.senders = SenderPool()
        self.staging = StagingBuffers()
        metrics.request_queue_bytes.set_function(lambda: self.memory.used_bytes)
        metrics.connections.set_function(lambda: len(self._connections))
        self.closing = False
        self.listeners: list[Listener] = []
        self._idle_sweep: asyncio.Task[None] | None = None
        self._tls_watch: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._connections: set[Connection] = set()
        self._per_host: Counter[str] = Counter()
        self._slot_free: asyncio.Event | None = None
        self._ids = itertools.count()
        # Connections over an IP's connection_creation_rate, held until their close time.
        self._held: dict[socket.socket, asyncio.TimerHandle] = {}
        # Failed logins per client address, across the listeners (security/sasl.py).
        self.failed_logins = FailedLogins(config.connection_failed_authentication_delay_ms)

    async def start(self) -> tuple[str, int]:
        """Listen on every client listener; returns the first one's bound (host, port)."""
        loop = asyncio.get_running_loop()
        config = self.config
        validator: OAuthValidator | None = None
        try:
            for index, settings in enumerate(config.client_listeners()):
                tls = None
                if settings.protocol in ("SSL", "SASL_SSL"):
                    assert settings.tls is not None
                    tls = ServerTls(settings.tls)  # InvalidConfigError names what failed
                validator = None
                if settings.oauth is not None:
                    # The key set is read before the listener opens: a broker that cannot
                    # validate tokens does not start (off the loop: it may be a URL).
                    validator = OAuthValidator(settings.oauth)
                    try:
                        await loop.run_in_executor(None, validator.keys.load)
                    except OAuthConfigError as exc:
                        raise InvalidConfigError(f"listener {settings.name}: {exc}") from None
                    validator.keys.start()
                sock = _listen(settings.host, settings.port)
                bound = sock.getsockname()[1]
                settings.port = bound
                if index == 0:
                    config.port = bound
                self.listeners.append(Listener(settings, sock, tls, oauth=validator))
                validator = None
        except BaseException:
            if validator is not None:
                validator.keys.close()
            for opened in self.listeners:
                opened.sock.close()
                if opened.oauth is not None:
                    opened.oauth.keys.close()
            self.listeners.clear()
            raise
        self._slot_free = asyncio.Event()
        for listener in self.listeners:
            listener.task = loop.create_task(self._accept_loop(listener))
        self._idle_sweep = loop.create_task(self._sweep_idle(config.connections_max_idle_ms))
        if any(listener.tls is not None for listener in self.listeners):
            self._tls_watch = loop.create_task(self._watch_tls(config.tls_reload_interval_s))
        return config.host, config.port

    def bound(self, name: str) -> tuple[str, int]:
        """The (host, port) the listener ``name`` listens on."""
        for listener in self.listeners:
            if listener.name == name:
                return listener.config.host, listener.config.port
        raise KeyError(name)

    async def stop(self) -> None:
        """Stop accepting, let every connection answer what it read, then close them."""
        if self.closing:
            return
        self.closing = True
        for listener in self.listeners:
            if listener.task is not None:
                listener.task.cancel()
            listener.sock.close()
            if listener.oauth is not None:
                listener.oauth.keys.close()
        for task in (self._idle_sweep, self._tls_watch, *self._handshakes):
            if task is not None:
                task.cancel()
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

    async def _accept_loop(self, listener: Listener) -> None:
        loop = asyncio.get_running_loop()
        assert self._slot_free is not None
        config = self.config
        while not self.closing:
            if len(self._connections) + len(self._handshakes) >= config.max_connections:
                # As Kafka does for max.connections: stop accepting (new clients wait in the
                # listen backlog) until a connection closes.
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                sock, peer = await loop.sock_accept(listener.sock)
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
            self._per_host[host] += 1
            if listener.tls is None:
                self._open(listener, PlainTransport(sock, self.senders), sock, peer, ANONYMOUS)
                continue
            task = loop.create_task(self._handshake(listener, listener.tls, sock, peer))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    def _open(
        self,
        listener: Listener,
        transport: Transport,
        sock: socket.socket,
        peer: Any,
        principal: Principal,
    ) -> None:
        local = sock.getsockname()
        settings = listener.config
        session = None
        if settings.sasl_mechanisms:
            session = SaslSession(
                SaslSettings(
                    settings.sasl_mechanisms,
                    settings.plain_users,
                    self._scram_table,
                    oauth=listener.oauth,
                    reauth_ms=settings.reauth_ms,
                    failures=self.failed_logins,
                )
            )
        conn = Connection(
            self,
            transport,
            peer,
            listener=listener.name,
            connection_id=f"{local[0]}:{local[1]}-{peer[0]}:{peer[1]}-{next(self._ids)}",
            sasl=session,
        )
        conn.principal = principal
        self._connections.add(conn)
        conn.start()

    def _scram_table(self) -> ScramCredentials:
        """The SCRAM credentials in force (AlterUserScramCredentials replaces the table)."""
        store = self.dispatcher.services.credentials
        return store.credentials if store is not None else ScramCredentials()

    def _host_gone(self, host: str) -> None:
        self._per_host[host] -= 1
        if self._per_host[host] <= 0:
            del self._per_host[host]
        if self._slot_free is not None:
            self._slot_free.set()

    async def _handshake(
        self, listener: Listener, tls: ServerTls, sock: socket.socket, peer: Any
    ) -> None:
        """The TLS handshake of a new connection, then the connection (or a close)."""
        try:
            await self._handshake_then_open(listener, tls, sock, peer)
        finally:
            # Here, not in a done callback: the accept loop, woken by a freed slot, must
            # not count this handshake any more.
            self._handshakes.discard(asyncio.current_task())

    async def _handshake_then_open(
        self, listener: Listener, tls: ServerTls, sock: socket.socket, peer: Any
    ) -> None:
        host = str(peer[0])
        tls_sock: ssl.SSLSocket | None = None
        try:
            tls_sock = tls.context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
            await asyncio.wait_for(_handshake(tls_sock), HANDSHAKE_TIMEOUT_S)
            der = tls_sock.getpeercert(binary_form=True)
            if der:
                dn = subject_dn(der)
                principal = Principal("User", tls.mapper.map(dn))
            else:
                dn, principal = "", ANONYMOUS
        except (ssl.SSLError, OSError, TimeoutError, NoMatchingRule, ValueError) as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            log.info("TLS handshake with %s on %s failed: %s", host, listener.name, why)
            audit.tls_authenticated(self.dispatcher.services.audit, peer, listener.name, None, why)
            (tls_sock or sock).close()
            self._host_gone(host)
            return
        except asyncio.CancelledError:
            (tls_sock or sock).close()
            self._host_gone(host)
            raise
        if self.closing:
            tls_sock.close()
            self._host_gone(host)
            return
        log.info(
            "TLS connection from %s on %s: %s %s, principal %s%s",
            host,
            listener.name,
            tls_sock.version(),
            (tls_sock.cipher() or ("?",))[0],
            principal,
            f" (subject {dn})" if dn else "",
        )
        if der:
            audit.tls_authenticated(self.dispatcher.services.audit, peer, listener.name, principal)
        self._open(listener, TlsTransport(tls_sock, self.staging), tls_sock, peer, principal)

    async def _watch_tls(self, interval_s: float) -> None:
        """Reload the TLS listeners whose key or trust store files changed (off the loop:
        it reads the files)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval_s)
            for listener in self.listeners:
                if listener.tls is not None:
                    try:
                        await loop.run_in_executor(None, listener.tls.reload_if_changed)
                    except Exception:
                        log.exception("TLS reload of listener %s failed", listener.name)

    def _release(self, sock: socket.socket) -> None:
        self._held.pop(sock, None)
        sock.close()

    def forget(self, conn: Connection) -> None:
        if conn not in self._connections:
            return
        self._connections.discard(conn)
        self._host_gone(str(conn.peer[0]))

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


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _handshake(sock: ssl.SSLSocket) -> None:
    """``do_handshake`` on a non-blocking socket, waiting on the loop as OpenSSL asks."""
    loop = asyncio.get_running_loop()
    fd = sock.fileno()
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            add, remove = loop.add_reader, loop.remove_reader
        except ssl.SSLWantWriteError:
            add, remove = loop.add_writer, loop.remove_writer
        fut: asyncio.Future[None] = loop.create_future()
        add(fd, _wake, fut)
        try:
            await fut
        finally:
            remove(fd)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
