"""The asyncio client: one non-blocking socket to one broker, for code on an event loop.

The replica fetcher runs on the broker's event loop, where nothing may block. Calls from any
number of tasks share the connection: each request is written whole, in turn, and one reader
task hands every response frame to the request it answers (Kafka answers in order), so
concurrent calls are pipelined. Each response is read straight into its own bytearray with
``loop.sock_recv_into`` — no stream buffer in between — and fetched records are memoryviews
into it. A fetch loop that handles each response before it sends the next fetch (the replica
fetcher) passes one :class:`~edplog.client.ReceiveBuffer` to every :meth:`AsyncClient.fetch`:
its responses then reuse the same memory instead of a fresh allocation each, whose first
touch costs page faults that can take longer than the copy itself.

A :class:`~edplog.client.secure.ClientSecurity` (``security=``) adds TLS and a SASL login
(PLAIN, SCRAM) after the connect: how a broker reaches another broker's secured listener.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ..protocol import ProtocolError
from . import calls, core
from .blocking import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT_S,
    ReceiveBuffer,
    _address,
)
from .calls import (
    Call,
    ClusterMetadata,
    EpochEndOffset,
    FetchedPartition,
    FetchPosition,
    ListedOffset,
)
from .errors import (
    AuthenticationError,
    BrokerConnectionError,
    ClientError,
    ConnectionClosedError,
    KafkaError,
    RequestTimeoutError,
)
from .secure import ClientSecurity, PlainChannel, TlsChannel, plain_message

T = TypeVar("T")


class AsyncClient:
    """An asyncio connection to one broker; open it with :meth:`connect`.

    The same calls as :class:`~edplog.client.Client`, as coroutines; versions are negotiated
    during :meth:`connect`. Use ``async with`` or ``await client.close()``.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str | None = core.DEFAULT_CLIENT_ID,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_versions: Mapping[int | str, int] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        local_host: str | None = None,
        security: ClientSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        # The address outgoing connections are bound to (a broker's own, so that the network
        # between two brokers' addresses is the path their replication takes).
        self.local_host = local_host
        self.timeout_s = timeout_s
        self.max_versions = dict(max_versions or {})
        self.max_response_bytes = max_response_bytes
        self._wire = core.Wire(client_id)
        self._versions: core.Versions | None = None
        self._sock: socket.socket | None = None
        self._channel: PlainChannel | TlsChannel | None = None
        self._reader: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._error: BrokerConnectionError | None = None
        self._size = bytearray(4)

    @classmethod
    async def connect(
        cls,
        bootstrap: str,
        *,
        client_id: str | None = core.DEFAULT_CLIENT_ID,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_versions: Mapping[int | str, int] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        negotiate: bool = True,
        local_host: str | None = None,
        security: ClientSecurity | None = None,
    ) -> AsyncClient:
        """Connect (from ``local_host`` when given), with TLS when ``security`` has a context,
        and, unless ``negotiate`` is False, run ApiVersions, then the SASL login ``security``
        names (which needs ``negotiate``)."""
        self = cls(
            bootstrap,
            client_id=client_id,
            timeout_s=timeout_s,
            max_versions=max_versions,
            max_response_bytes=max_response_bytes,
            local_host=local_host,
            security=security,
        )
        try:
            await asyncio.wait_for(self._open(), connect_timeout_s)
        except ssl.SSLError as exc:
            await self.close()
            raise AuthenticationError(f"TLS handshake with {bootstrap} failed: {exc}") from exc
        except OSError as exc:  # TimeoutError included
            await self.close()
            raise BrokerConnectionError(f"cannot connect to {bootstrap}: {exc!r}") from exc
        except BaseException:
            await self.close()
            raise
        if negotiate:
            try:
                await self.api_versions()
                if security is not None and security.sasl_mechanism is not None:
                    await self._sasl_login(security)
            except BaseException:
                await self.close()
                raise
        return self

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = _address(self.bootstrap)
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        last: OSError | None = None
        for family, kind, proto, _name, addr in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                if self.local_host:
                    sock.bind((self.local_host, 0))
                await loop.sock_connect(sock, addr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            channel: PlainChannel | TlsChannel = PlainChannel(sock)
            security = self.security
            if security is not None and security.ssl_context is not None:
                channel = TlsChannel(sock, security.ssl_context, security.server_hostname or host)
                await channel.handshake(loop)
            self._channel = channel
            self._reader = loop.create_task(self._read_loop(channel))
            return
        raise last or OSError(f"no address for {self.bootstrap}")

    @property
    def closed(self) -> bool:
        return self._error is not None or self._sock is None

    async def _sasl_login(self, security: ClientSecurity) -> None:
        """SaslHandshake v1, then the mechanism's SaslAuthenticate messages (KIP-152)."""
        mechanism = security.sasl_mechanism
        assert mechanism is not None
        shake = await self.call(core.SASL_HANDSHAKE, 1, {"mechanism": mechanism})
        if shake["error_code"]:
            raise AuthenticationError(
                f"{self.bootstrap} refused SASL mechanism {mechanism} "
                f"(error {shake['error_code']}; it offers {shake['mechanisms']})"
            )
        version = self.version_for(core.SASL_AUTHENTICATE)

        async def step(message: bytes) -> bytes:
            body = await self.call(core.SASL_AUTHENTICATE, version, {"auth_bytes": message})
            if body["error_code"]:
                raise AuthenticationError(
                    f"{self.bootstrap} refused the {mechanism} login of "
                    f"{security.sasl_username!r}: {body['error_message'] or body['error_code']}"
                )
            return bytes(body["auth_bytes"])

        if mechanism == "PLAIN":
            await step(plain_message(security.sasl_username, security.sasl_password))
            return
        from scramp import ScramClient, ScramException

        scram = ScramClient([mechanism], security.sasl_username, security.sasl_password)
        try:
            server_first = await step(scram.get_client_first().encode())
            scram.set_server_first(server_first.decode())
            server_final = await step(scram.get_client_final().encode())
            scram.set_server_final(server_final.decode())
        except ScramException as exc:
            raise AuthenticationError(f"{self.bootstrap}: SCRAM failed: {exc}") from None

    async def close(self) -> None:
        self._fail(ConnectionClosedError(f"the connection to {self.bootstrap} is closed"))
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            try:
                await reader
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- versions -------------------------------------------------------------------------

    async def api_versions(self) -> dict[int, tuple[int, int]]:
        """The broker's ranges (``{api_key: (min, max)}``); typed calls use them from now."""
        version = core.api_versions_version(self.max_versions)
        body = await self.call(core.API_VERSIONS, version, core.api_versions_body())
        if body["error_code"] == core.UNSUPPORTED_VERSION:
            theirs = core.broker_ranges(body).get(core.API_VERSIONS, (0, 0))
            version = min(version, theirs[1])
            body = await self.call(core.API_VERSIONS, version, core.api_versions_body())
        if body["error_code"]:
            raise KafkaError(body["error_code"], api="ApiVersions")
        ranges = core.broker_ranges(body)
        self._versions = core.Versions(ranges, self.max_versions)
        return ranges

    def version_for(self, api: int | str, typed_max: int | None = None) -> int:
        """The version typed calls use for ``api`` (``typed_max``: a call's own cap)."""
        if self._versions is None:
            raise ClientError("versions are not negotiated: call api_versions() first")
        return self._versions.pick(core.api_key_of(api), typed_max)

    # ---- typed calls (see edplog.client.Client for each one's contract) -------------------

    async def metadata(
        self, topics: Iterable[str] | None = None, *, allow_auto_topic_creation: bool = False
    ) -> ClusterMetadata:
        return await self._run(calls.metadata_call(topics, allow_auto_topic_creation))

    async def produce(
        self,
        topic: str,
        partition: int,
        records: Any,
        acks: int = -1,
        timeout_ms: int = calls.DEFAULT_PRODUCE_TIMEOUT_MS,
        *,
        transactional_id: str | None = None,
    ) -> int:
        return await self._run(
            calls.produce_call(topic, partition, records, acks, timeout_ms, transactional_id)
        )

    async def fetch(
        self,
        positions: Sequence[FetchPosition | tuple[Any, ...]],
        *,
        max_wait_ms: int = calls.DEFAULT_MAX_WAIT_MS,
        min_bytes: int = 1,
        max_bytes: int = calls.DEFAULT_FETCH_MAX_BYTES,
        isolation_level: int = calls.READ_UNCOMMITTED,
        replica_id: int = calls.CONSUMER_REPLICA_ID,
        replica_epoch: int = -1,
        buffer: ReceiveBuffer | None = None,
    ) -> list[FetchedPartition]:
        """Fetch ``positions``. With ``buffer`` the response is read into it: its records are
        views that the next response read into the same buffer overwrites."""
        call = calls.fetch_call(
            [p if isinstance(p, FetchPosition) else FetchPosition(*p) for p in positions],
            max_wait_ms=max_wait_ms,
            min_bytes=min_bytes,
            max_bytes=max_bytes,
            isolation_level=isolation_level,
            replica_id=replica_id,
            replica_epoch=replica_epoch,
        )
        return await self._run(call, buffer)

    async def list_offsets(
        self,
        topic: str,
        partition: int,
        timestamp: int,
        *,
        isolation_level: int = calls.READ_UNCOMMITTED,
        current_leader_epoch: int = -1,
        replica_id: int = calls.CONSUMER_REPLICA_ID,
    ) -> ListedOffset:
        return await self._run(
            calls.list_offsets_call(
                topic, partition, timestamp, isolation_level, current_leader_epoch, replica_id
            )
        )

    async def offset_for_leader_epoch(
        self,
        topic: str,
        partition: int,
        leader_epoch: int,
        *,
        current_leader_epoch: int = -1,
        replica_id: int = calls.CONSUMER_REPLICA_ID,
    ) -> EpochEndOffset:
        return await self._run(
            calls.offset_for_leader_epoch_call(
                topic, partition, leader_epoch, current_leader_epoch, replica_id
            )
        )

    async def _run(self, call: Call[T], buffer: ReceiveBuffer | None = None) -> T:
        version = self.version_for(call.api_key, call.typed_max)
        body = await self._request(
            call.api_key, version, call.build(version), call.expect_response, call.wait_ms, buffer
        )
        return call.parse(body)

    # ---- requests -------------------------------------------------------------------------

    async def call(self, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any]:
        """Send a request in an explicit version; its decoded response body (an empty dict
        when Kafka sends no response: Produce with ``acks=0``)."""
        expect = core.expects_response(api_key, body)
        got = await self._request(api_key, version, body, expect, 0)
        return {} if got is None else got

    async def _request(
        self,
        api_key: int,
        version: int,
        body: dict[str, Any],
        expect: bool,
        wait_ms: int,
        buffer: ReceiveBuffer | None = None,
    ) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        async with self._send_lock:
            sock = self._open_sock()
            # Encode under the lock: correlation ids and the pending queue must follow the
            # order frames reach the wire.
            frame, entry = self._wire.encode(api_key, version, body, expect)
            if entry is not None:
                entry.future = loop.create_future()
                entry.buffer = buffer
            try:
                await self._send(loop, sock, frame)
            except BaseException as exc:
                # A frame may be half written: nothing after it could be understood.
                self._fail(ConnectionClosedError(f"send to {self.bootstrap} failed: {exc!r}"))
                if isinstance(exc, OSError):
                    raise ConnectionClosedError(f"send to {self.bootstrap} failed") from exc
                raise
        if entry is None:
            return None
        timeout = self.timeout_s + wait_ms / 1000.0
        try:
            frame_view = await asyncio.wait_for(entry.future, timeout)
        except TimeoutError:
            err = RequestTimeoutError(
                f"no response from {self.bootstrap} to {core.api_name(api_key)} in {timeout:g} s"
            )
            self._fail(err)
            raise err from None
        try:
            return core.decode(entry.api_key, entry.api_version, frame_view)
        except ProtocolError:
            self._fail(ConnectionClosedError(f"undecodable response from {self.bootstrap}"))
            raise

    async def _send(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, frame: bytes
    ) -> None:
        channel = self._channel
        if channel is None:
            await loop.sock_sendall(sock, frame)
        else:
            await channel.sendall(loop, frame)

    def _open_sock(self) -> socket.socket:
        if self._error is not None:
            raise ConnectionClosedError(f"the connection is closed: {self._error}")
        if self._sock is None:
            raise ConnectionClosedError(f"not connected to {self.bootstrap}")
        return self._sock

    def _fail(self, error: BrokerConnectionError) -> None:
        """End the connection; every request still owed gets a connection error."""
        if self._error is None:
            self._error = error
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()  # its pending receive unregisters the socket before it closes
        sock, self._sock = self._sock, None
        self._channel = None
        if sock is not None:
            sock.close()
        pending, self._wire.pending = self._wire.pending, type(self._wire.pending)()
        for entry in pending:
            fut = entry.future
            if fut is not None and not fut.done():
                fut.set_exception(type(error)(str(error)))
                fut.exception()  # retrieved here: an abandoned call must not log it later

    async def _read_loop(self, channel: PlainChannel | TlsChannel) -> None:
        loop = asyncio.get_running_loop()
        size_view = memoryview(self._size)
        try:
            while True:
                await self._recv_exact(loop, channel, size_view)
                size = core.frame_size(self._size, self.max_response_bytes)
                pending = self._wire.pending
                buffer = pending[0].buffer if pending else None
                frame = (
                    buffer.frame_view(size) if buffer is not None else memoryview(bytearray(size))
                )
                await self._recv_exact(loop, channel, frame)
                entry = self._wire.match(frame)
                fut = entry.future
                if fut is not None and not fut.done():  # done: its caller gave up
                    fut.set_result(frame)
        except asyncio.CancelledError:
            raise
        except BrokerConnectionError as exc:
            self._fail(exc)
        except ProtocolError as exc:
            self._fail(ConnectionClosedError(f"{self.bootstrap}: {exc}"))
        except OSError as exc:  # ssl.SSLError included
            self._fail(ConnectionClosedError(f"reading from {self.bootstrap} failed: {exc!r}"))

    async def _recv_exact(
        self,
        loop: asyncio.AbstractEventLoop,
        channel: PlainChannel | TlsChannel,
        view: memoryview,
    ) -> None:
        got, n = 0, len(view)
        while got < n:
            k = await channel.recv_into(loop, view[got:] if got else view)
            if not k:
                raise ConnectionClosedError(f"{self.bootstrap} closed the connection")
            got += k
