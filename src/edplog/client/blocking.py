"""The blocking client: one plain socket to one broker, for tools, perf and tests.

Typed calls (:meth:`Client.fetch`, :meth:`Client.produce`, ...) pick the API version
negotiated with ApiVersions, which the first of them sends. Below them sit the frame-level
methods tests need — :meth:`Client.send` / :meth:`Client.receive` for pipelining,
:meth:`Client.send_raw` / :meth:`Client.read_frame` for hand-made bytes — on the same socket.

A fetch loop can read every response into one :class:`ReceiveBuffer`, so it allocates
nothing per response: the records come back as memoryviews into that buffer.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from ..protocol import ProtocolError
from . import calls, core
from .calls import (
    Call,
    ClusterMetadata,
    EpochEndOffset,
    FetchedPartition,
    FetchPosition,
    ListedOffset,
)
from .errors import (
    BrokerConnectionError,
    ClientError,
    ConnectionClosedError,
    KafkaError,
    RequestTimeoutError,
)

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_TIMEOUT_S = 30.0  # Kafka's request.timeout.ms
#: Responses claiming more are refused before anything is allocated for them.
DEFAULT_MAX_RESPONSE_BYTES = 512 << 20
_MIN_WAIT_S = 0.001


class Response(NamedTuple):
    """A decoded response as :meth:`Client.receive` returns it."""

    correlation_id: int
    api_key: int
    api_version: int
    body: dict[str, Any]


class ReceiveBuffer:
    """A receive buffer reused from one response to the next.

    When a frame is larger than the buffer, a larger bytearray replaces it (twice the size,
    or the frame's): growing the old one in place is impossible while memoryviews of an
    earlier response still point into it, and those views stay valid on the old bytes.
    Reusing the buffer means the next response overwrites the previous one's records.
    """

    __slots__ = ("data", "_view")

    def __init__(self, size_bytes: int = 1 << 20, data: bytearray | None = None) -> None:
        self.data = data if data is not None else bytearray(size_bytes)
        self._view = memoryview(self.data)

    def frame_view(self, size: int) -> memoryview:
        """A view of ``size`` bytes at the start of the buffer, growing it when needed."""
        if size > len(self.data):
            self.data = bytearray(max(size, 2 * len(self.data)))
            self._view = memoryview(self.data)
        return self._view[:size]


def _address(bootstrap: str) -> tuple[str, int]:
    host, sep, port = bootstrap.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bootstrap address {bootstrap!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class Client:
    """A blocking connection to one broker.

    ``timeout_s`` bounds each request's round trip (a fetch may take its ``max_wait_ms``
    more); ``max_versions`` caps the version used for chosen APIs (``{"Fetch": 4}``). Use as
    a context manager, or call :meth:`close`. Not for use from several threads at once.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str | None = core.DEFAULT_CLIENT_ID,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_versions: Mapping[int | str, int] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        nodelay: bool = True,
        sock: socket.socket | None = None,
    ) -> None:
        """``sock``, when given, is a connected socket to use instead of connecting (one end
        of a socketpair, say); ``bootstrap`` then only names it."""
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.max_versions = dict(max_versions or {})
        self.max_response_bytes = max_response_bytes
        self._wire = core.Wire(client_id)
        self._versions: core.Versions | None = None
        self._size = bytearray(4)
        self._size_view = memoryview(self._size)
        if sock is not None:
            self.sock = sock
        else:
            try:
                self.sock = socket.create_connection(_address(bootstrap), timeout=connect_timeout_s)
            except OSError as exc:
                raise BrokerConnectionError(f"cannot connect to {bootstrap}: {exc}") from exc
            if nodelay:
                # Requests are single writes of a whole frame; Nagle would only delay them.
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout_s)
        self.closed = False

    # ---- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self.closed = True
        self._wire.pending.clear()
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- versions -------------------------------------------------------------------------

    def api_versions(self) -> dict[int, tuple[int, int]]:
        """Ask the broker which versions it speaks (``{api_key: (min, max)}``); every typed
        call then uses the highest version both sides support. Sent once, on first need."""
        version = core.api_versions_version(self.max_versions)
        body = self.call(core.API_VERSIONS, version, core.api_versions_body())
        if body["error_code"] == core.UNSUPPORTED_VERSION:
            # KIP-511: the broker answered in v0 with its own ApiVersions range; retry in it.
            theirs = core.broker_ranges(body).get(core.API_VERSIONS, (0, 0))
            body = self.call(core.API_VERSIONS, min(version, theirs[1]), core.api_versions_body())
        if body["error_code"]:
            raise KafkaError(body["error_code"], api="ApiVersions")
        ranges = core.broker_ranges(body)
        self._versions = core.Versions(ranges, self.max_versions)
        return ranges

    def version_for(self, api: int | str, typed_max: int | None = None) -> int:
        """The version typed calls use for ``api`` (negotiating first if needed;
        ``typed_max``: a call's own cap)."""
        if self._versions is None:
            self.api_versions()
        assert self._versions is not None
        return self._versions.pick(core.api_key_of(api), typed_max)

    # ---- typed calls ----------------------------------------------------------------------

    def metadata(
        self, topics: Iterable[str] | None = None, *, allow_auto_topic_creation: bool = False
    ) -> ClusterMetadata:
        """Brokers and topics (all topics when ``topics`` is None)."""
        return self._run(calls.metadata_call(topics, allow_auto_topic_creation))

    def produce(
        self,
        topic: str,
        partition: int,
        records: Any,
        acks: int = -1,
        timeout_ms: int = calls.DEFAULT_PRODUCE_TIMEOUT_MS,
        *,
        transactional_id: str | None = None,
    ) -> int:
        """Append ready RecordBatch bytes; the base offset, or -1 with ``acks=0``.

        Raises :class:`KafkaError` with the partition's error code when the broker refuses.
        """
        return self._run(
            calls.produce_call(topic, partition, records, acks, timeout_ms, transactional_id)
        )

    def fetch(
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
        """Fetch one or several partitions; one result per partition, in response order.

        ``replica_id >= 0`` fetches as that follower (to the log end, not the high
        watermark). With ``buffer`` the response is read into it (see
        :class:`ReceiveBuffer`); otherwise into a fresh bytearray.
        """
        call = calls.fetch_call(
            [p if isinstance(p, FetchPosition) else FetchPosition(*p) for p in positions],
            max_wait_ms=max_wait_ms,
            min_bytes=min_bytes,
            max_bytes=max_bytes,
            isolation_level=isolation_level,
            replica_id=replica_id,
            replica_epoch=replica_epoch,
        )
        return self._run(call, buffer)

    def list_offsets(
        self,
        topic: str,
        partition: int,
        timestamp: int,
        *,
        isolation_level: int = calls.READ_UNCOMMITTED,
        current_leader_epoch: int = -1,
        replica_id: int = calls.CONSUMER_REPLICA_ID,
    ) -> ListedOffset:
        """The offset for ``timestamp``: :data:`EARLIEST` (-2), :data:`LATEST` (-1) or a time
        in ms (the first record at or after it; offset -1 if there is none)."""
        return self._run(
            calls.list_offsets_call(
                topic, partition, timestamp, isolation_level, current_leader_epoch, replica_id
            )
        )

    def offset_for_leader_epoch(
        self,
        topic: str,
        partition: int,
        leader_epoch: int,
        *,
        current_leader_epoch: int = -1,
        replica_id: int = calls.CONSUMER_REPLICA_ID,
    ) -> EpochEndOffset:
        """Where ``leader_epoch`` ended in the leader's log: a follower truncates there."""
        return self._run(
            calls.offset_for_leader_epoch_call(
                topic, partition, leader_epoch, current_leader_epoch, replica_id
            )
        )

    def _run(self, call: Call[T], buffer: ReceiveBuffer | None = None) -> T:
        if self._wire.pending:
            raise ClientError(
                f"{len(self._wire.pending)} pipelined responses are still owed: receive() "
                "them before a typed call"
            )
        version = self.version_for(call.api_key, call.typed_max)
        body = call.build(version)
        if not call.expect_response:
            self.send(call.api_key, version, body, expect_response=False)
            return call.parse(None)
        self.send(call.api_key, version, body, wait_ms=call.wait_ms)
        return call.parse(self.receive(buffer).body)

    # ---- frames ---------------------------------------------------------------------------

    def call(self, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request in an explicit version and return its decoded response body (an
        empty dict when Kafka sends no response: Produce with ``acks=0``)."""
        if not core.expects_response(api_key, body):
            self.send(api_key, version, body)
            return {}
        self.send(api_key, version, body)
        return self.receive().body

    def send(
        self,
        api_key: int,
        version: int | None,
        body: dict[str, Any],
        *,
        expect_response: bool | None = None,
        wait_ms: int = 0,
    ) -> int:
        """Send a request without waiting (pipelining); its correlation id.

        ``version`` None uses the negotiated one. The response is owed unless the request is
        a Produce with ``acks=0``; :meth:`receive` returns owed responses in order.
        """
        if version is None:
            version = self.version_for(api_key)
        expect = (
            core.expects_response(api_key, body) if expect_response is None else expect_response
        )
        frame, pending = self._wire.encode(api_key, version, body, expect)
        if pending is not None:
            pending.deadline = time.monotonic() + self.timeout_s + wait_ms / 1000.0
        self.send_raw(frame)
        return self._wire.last_id

    def receive(self, buffer: ReceiveBuffer | None = None) -> Response:
        """Read and decode the response to the oldest request still owed."""
        if not self._wire.pending:
            raise ClientError("no request is waiting for a response")
        frame = self._read(self._wire.pending[0].deadline, buffer)
        try:
            entry = self._wire.match(frame)
            body = core.decode(entry.api_key, entry.api_version, frame)
        except ProtocolError:
            self.close()
            raise
        return Response(entry.correlation_id, entry.api_key, entry.api_version, body)

    def send_raw(self, data: Any) -> None:
        """Write bytes as they are (a hand-made frame, or garbage on purpose)."""
        self._check_open()
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            self.close()
            raise RequestTimeoutError(f"send to {self.bootstrap} timed out") from exc
        except OSError as exc:
            self.close()
            raise ConnectionClosedError(f"send to {self.bootstrap} failed: {exc}") from exc

    def read_frame(self) -> bytes:
        """The next response frame without its size prefix, undecoded (within the socket's
        current timeout); owed responses are not matched."""
        return bytes(self._read(None, None))

    def is_closed_by_peer(self) -> bool:
        """True once the broker has closed this connection (waits up to the socket timeout;
        raises TimeoutError if the connection is still open then)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _check_open(self) -> None:
        if self.closed:
            raise ConnectionClosedError(f"the connection to {self.bootstrap} is closed")

    def _read(self, deadline: float | None, buffer: ReceiveBuffer | None) -> memoryview:
        self._check_open()
        try:
            if deadline is not None:
                # One timeout per frame, not per recv (each settimeout is a syscall and a
                # large fetch takes dozens of recvs); the deadline is checked between recvs,
                # so a response trickling in still ends within about twice the budget.
                self.sock.settimeout(max(deadline - time.monotonic(), _MIN_WAIT_S))
            self._recv_exact(self._size_view, deadline)
            size = core.frame_size(self._size, self.max_response_bytes)
            view = buffer.frame_view(size) if buffer is not None else memoryview(bytearray(size))
            self._recv_exact(view, deadline)
        except ProtocolError:
            self.close()
            raise
        finally:
            if deadline is not None and not self.closed:
                # Frame-level reads (read_frame, is_closed_by_peer) use the usual timeout.
                self.sock.settimeout(self.timeout_s)
        return view

    def _recv_exact(self, view: memoryview, deadline: float | None) -> None:
        sock = self.sock
        got, n = 0, len(view)
        try:
            while got < n:
                if got and deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError
                k = sock.recv_into(view[got:] if got else view)
                if not k:
                    self.close()
                    raise ConnectionClosedError(f"{self.bootstrap} closed the connection")
                got += k
        except TimeoutError as exc:
            self.close()
            raise RequestTimeoutError(f"no complete response from {self.bootstrap}") from exc
        except ConnectionClosedError:
            raise
        except OSError as exc:
            self.close()
            raise ConnectionClosedError(f"reading from {self.bootstrap} failed: {exc}") from exc
