"""TLS and SASL for the asyncio client: how a broker reaches another broker's secured listener.

:class:`ClientSecurity` says what a connection does after its TCP connect: a TLS handshake
with ``ssl_context`` (the client side of an ``ssl.SSLContext``), then, for a SASL listener, a
login with SaslHandshake v1 and SaslAuthenticate (KIP-152): ``PLAIN`` (RFC 4616) or
``SCRAM-SHA-256`` / ``SCRAM-SHA-512`` (RFC 5802, through ``scramp``).

TLS runs over the client's own non-blocking socket through an ``ssl.SSLObject`` and two
memory BIOs, so the client keeps its one reader task and its own receive buffers: bytes read
from the socket are decrypted straight into the response frame being read. Writes from the
writer and the handshake records the reader must answer (TLS 1.3 key updates) go out through
one lock, in the order TLS produced them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass, field

from .errors import ConnectionClosedError

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Bytes asked of the socket per read while TLS needs more input.
_TLS_READ_BYTES = 256 * 1024


@dataclass(frozen=True)
class ClientSecurity:
    """TLS (``ssl_context``; ``server_hostname`` is the name the certificate must show,
    the host connected to when None) and SASL (``sasl_mechanism`` with a user name and a
    password). Both None: plaintext, as without it."""

    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.sasl_mechanism is not None and self.sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"SASL mechanism {self.sasl_mechanism!r}: expected one of {SASL_MECHANISMS}"
            )


class PlainChannel:
    """Bytes to and from the socket as they are."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def sendall(self, loop: asyncio.AbstractEventLoop, data: bytes) -> None:
        await loop.sock_sendall(self.sock, data)

    async def recv_into(self, loop: asyncio.AbstractEventLoop, view: memoryview) -> int:
        return await loop.sock_recv_into(self.sock, view)


class TlsChannel:
    """TLS over the socket (see the module docstring); :meth:`handshake` first."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, hostname: str) -> None:
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=hostname
        )
        self._write_lock = asyncio.Lock()

    async def handshake(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush(loop)
                await self._fill(loop)
        await self._flush(loop)

    async def sendall(self, loop: asyncio.AbstractEventLoop, data: bytes) -> None:
        self._tls.write(data)
        await self._flush(loop)

    async def recv_into(self, loop: asyncio.AbstractEventLoop, view: memoryview) -> int:
        while True:
            try:
                n = self._tls.read(len(view), view)
            except ssl.SSLWantReadError:
                if self._outgoing.pending:
                    await self._flush(loop)
                if not await self._fill(loop, eof_ok=True):
                    return 0
                continue
            except ssl.SSLZeroReturnError:
                return 0  # the broker closed the session (close_notify)
            if self._outgoing.pending:
                await self._flush(loop)
            return n

    async def _fill(self, loop: asyncio.AbstractEventLoop, eof_ok: bool = False) -> bool:
        data = await loop.sock_recv(self.sock, _TLS_READ_BYTES)
        if not data:
            if eof_ok:
                return False
            raise ConnectionClosedError("the broker closed the connection during the handshake")
        self._incoming.write(data)
        return True

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        async with self._write_lock:
            data = self._outgoing.read()
            if data:
                await loop.sock_sendall(self.sock, data)


def plain_message(username: str, password: str) -> bytes:
    """RFC 4616: no authorization id, the user, the password."""
    return b"\x00" + username.encode() + b"\x00" + password.encode()
