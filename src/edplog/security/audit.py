"""The audit log: who authenticated, and who was allowed or refused what, in a file that shows
when a record was removed or edited.

Why a chain and not just a log file: an audit trail is only worth something if a reader can
tell that nothing was taken out or rewritten after the fact. Every record is one line of
CloudEvents 1.0 JSON that carries a ``sequence`` (0, 1, 2 ... for the life of the file), the
``prevhash`` of the record before it and its own ``hash`` over every byte of the line up to that
field. Removing a line leaves a hole in the sequence, editing one breaks its hash, moving one
breaks both. With ``audit.log.hmac.key.file`` the hashes are HMAC-SHA256 under a secret key,
so someone who can write the file but not read the key cannot recompute a consistent chain;
with plain SHA-256 the chain catches mistakes and careless edits, not a careful forger.
What a chain cannot show by itself is the loss of its newest records: `audit_verify.verify` reports
the last sequence and hash so they can be kept somewhere else and compared. The same records
can also go to a topic (``audit.log.topic``, broker/audit_topic.py), with a chain of their own.

Why a background thread: the broker's event loop never waits on the disk. Records go into a
bounded queue and one writer thread appends and fsyncs them (``audit.log.fsync.ms``). When the
queue is full the record is not waited for (that would stall every client on a slow disk) and
not silently lost: the loss is counted (the ``edplog_audit_dropped_records`` metric and a log
error) and the writer puts an ``io.edplog.audit.dropped`` record with the count into the chain
at the next write, so the file itself says that, and how many, records are missing.

Crash safety: a line is written in one ``write`` call, so a crash can leave at most the last
line torn (no newline). On start the writer reads the file's tail, continues the chain from its
last whole record and writes an ``io.edplog.audit.started`` record that names the torn bytes it
found; `verify` reports a torn last line as torn (not as tampering), and a torn line that
the next ``started`` record vouches for as recovered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .audit_chain import (
    DROPPED,
    STARTED,
    Chain,
    checked,
    hash_of,
    parse_record,
    record_line,
    split_line,
)
from .audit_settings import AuditError, AuditSettings, read_key
from .authorizer import Operation
from .principal import Principal

log = logging.getLogger("edplog.broker")

__all__ = [
    "AUTHENTICATION",
    "AUTHORIZATION",
    "DROPPED",
    "STARTED",
    "Audit",
    "AuditLog",
    "parse_record",
    "split_line",
]

AUTHENTICATION = "io.edplog.audit.authentication"
AUTHORIZATION = "io.edplog.audit.authorization"

#: Operations audited on every resource: the ones that create, delete or change something.
CHANGES = frozenset(
    {
        Operation.CREATE,
        Operation.DELETE,
        Operation.ALTER,
        Operation.ALTER_CONFIGS,
        Operation.CLUSTER_ACTION,
    }
)
# Replication (a follower's Fetch, OffsetForLeaderEpoch) asks ClusterAction several times a
# second per follower: only its refusals are audited, or they would bury everything else.
_REPLICATION_APIS = frozenset({1, 23})
_READ, _WRITE = Operation.READ, Operation.WRITE
_TAIL_BYTES = 64 * 1024


# ---- the file's tail -------------------------------------------------------------------


@dataclass
class _Tail:
    sequence: int = -1
    hash: str = ""
    torn_bytes: int = 0
    # The last record is whole but its newline was not written (a crash between the two).
    needs_newline: bool = False


def read_tail(path: Path, chain: Chain) -> _Tail:
    """Where the chain in ``path`` ends: the last whole record's sequence and hash, and the
    bytes of a torn last line (no file: an empty chain)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return _Tail()
    with f:
        size = f.seek(0, os.SEEK_END)
        chunk = _TAIL_BYTES
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            data = f.read(size - start)
            end = data.rfind(b"\n")
            prev = data.rfind(b"\n", 0, end) if end > 0 else -1
            if start > 0 and prev < 0:
                chunk *= 2  # the last line (or two) do not fit yet
                continue
            break
    piece = data[end + 1 :]  # after the last newline: nothing, or a line without its newline
    if piece and checked(piece, chain) is not None:
        return _Tail(*_last(path, piece, chain), needs_newline=True)
    if end < 0:
        return _Tail(torn_bytes=len(piece))
    return _Tail(*_last(path, data[prev + 1 : end], chain), torn_bytes=len(piece))


def _last(path: Path, line: bytes, chain: Chain) -> tuple[int, str]:
    found = checked(line, chain)
    if found is None:
        raise AuditError(
            f"audit log {path}: its last record is not readable or was not hashed with "
            f"{chain.algorithm}"
            + (" under audit.log.hmac.key.file (another key?)" if chain.key else "")
            + "; check it with `edplog audit verify` and move the file aside to start a new chain"
        )
    return found


# ---- the writer ---------------------------------------------------------------------------


class AuditLog:
    """Appends records to the file from a background thread (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        source: str,
        *,
        key: bytes | None = None,
        fsync_ms: int = 1000,
        queue_records: int = 10_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.source = source
        self.chain = Chain(key)
        self.fsync_ms = fsync_ms
        self._queue: queue.Queue[tuple[str, float, dict[str, Any]] | None] = queue.Queue(
            queue_records
        )
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._on_drop = on_drop
        self._thread: threading.Thread | None = None
        self._fd = -1
        self._sequence = -1
        self._hash = ""
        self.failed: BaseException | None = None

    def open(self) -> None:
        """Continue the file's chain (blocking: call from a thread) and start the writer."""
        tail = read_tail(self.path, self.chain)
        self._sequence, self._hash = tail.sequence, tail.hash
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        first: list[bytes] = []
        if tail.needs_newline:
            first.append(b"\n")
        if tail.torn_bytes:
            log.warning(
                "audit log %s: its last line was torn (%d bytes, a crash mid-write?); "
                "continuing after it",
                self.path,
                tail.torn_bytes,
            )
            first.append(b"\n")
        data: dict[str, Any] = {"previous_sequence": tail.sequence, "torn_bytes": tail.torn_bytes}
        first.append(self._line(STARTED, time.time(), data))
        self._write(b"".join(first))
        os.fsync(self._fd)
        self._thread = threading.Thread(target=self._run, name="edplog-audit", daemon=True)
        self._thread.start()

    def append(self, kind: str, data: dict[str, Any]) -> None:
        """Queue a record; never waits (a full queue counts a drop, see the module docstring)."""
        try:
            self._queue.put_nowait((kind, time.time(), data))
        except queue.Full:
            with self._dropped_lock:
                self._dropped += 1
                first = self._dropped == 1
            if first:
                log.error("audit log %s: queue full, records are being dropped", self.path)
            if self._on_drop is not None:
                self._on_drop(1)

    def close(self) -> None:
        """Write what is queued, fsync and stop (blocking: call from a thread)."""
        if self._thread is not None:
            if self._thread.is_alive():
                self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _line(self, kind: str, at: float, data: dict[str, Any]) -> bytes:
        self._sequence += 1
        line = record_line(self.chain, self.source, self._sequence, self._hash, kind, at, data)
        self._hash = hash_of(line)
        return line

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _run(self) -> None:
        last_sync = time.monotonic()
        unsynced = False
        stopping = False
        wait_s = max(self.fsync_ms, 100) / 1000
        while not stopping:
            items: list[tuple[str, float, dict[str, Any]] | None] = []
            try:
                items.append(self._queue.get(timeout=wait_s))
            except queue.Empty:
                pass  # nothing arrived: only a due fsync
            while items and len(items) < 1000:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = []
            for item in items:
                lines += self._drop_marker()
                if item is None:
                    stopping = True
                else:
                    lines.append(self._line(*item))
            lines += self._drop_marker()
            try:
                if lines:
                    self._write(b"".join(lines))
                    unsynced = True
                now = time.monotonic()
                due = self.fsync_ms >= 0 and now - last_sync >= self.fsync_ms / 1000
                if unsynced and (stopping or due):
                    os.fsync(self._fd)
                    last_sync, unsynced = now, False
            except OSError as exc:
                # A failed write or fsync is not retried (the bytes' fate is unknown): the
                # log stops and says so loudly; records that follow are counted as dropped.
                log.error("audit log %s: write failed, auditing stopped: %s", self.path, exc)
                self.failed = exc
                if not stopping:
                    self._drain()
                return

    def _drop_marker(self) -> list[bytes]:
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, 0
        if not dropped:
            return []
        return [self._line(DROPPED, time.time(), {"dropped_records": dropped})]

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._on_drop is not None:
                self._on_drop(1)


# ---- the broker's service ---------------------------------------------------------------


class TopicSink(Protocol):
    """The audit topic's writer (broker/audit_topic.py): takes records like the file's writer,
    runs as a task of the event loop."""

    def append(self, kind: str, data: dict[str, Any]) -> None: ...

    def start(self) -> None: ...

    async def close(self) -> None: ...


class Audit:
    """What the broker's hooks call: decides what is audited and hands each record to the
    file's writer and to the topic's (each keeps its own chain)."""

    def __init__(
        self, settings: AuditSettings, writer: AuditLog | None, topic: TopicSink | None = None
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.topic = topic
        self._writers: tuple[AuditLog | TopicSink, ...] = tuple(
            w for w in (writer, topic) if w is not None
        )
        self._reads: dict[str, bool] = {}
        self._writes: dict[str, bool] = {}

    def _append(self, kind: str, data: dict[str, Any]) -> None:
        for w in self._writers:
            w.append(kind, data)

    def start(self) -> None:
        """Start the topic's writer (on the event loop: it is a task of it)."""
        if self.topic is not None:
            self.topic.start()

    async def close(self) -> None:
        """Deliver what is queued, then stop both writers (the topic's first: it sends
        through the broker's own listener, so call this before the listeners close)."""
        if self.topic is not None:
            await self.topic.close()
        if self.writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.writer.close)

    def authentication(
        self,
        peer: Any,
        listener: str,
        mechanism: str | None,
        principal: Principal | None,
        reason: str | None = None,
    ) -> None:
        """An authentication's outcome: ``principal`` None is a failure."""
        if not self.settings.authentication:
            return
        data = {
            "principal": None if principal is None else str(principal),
            "client_address": _address(peer),
            "listener": listener,
            "mechanism": mechanism,
            "result": "failed" if principal is None else "allowed",
            "reason": reason,
        }
        self._append(AUTHENTICATION, data)

    def authorization(
        self,
        ctx: Any,
        operation: Operation,
        resource_type: str,
        name: str,
        allowed: bool,
        reason: str | None = None,
    ) -> None:
        """An authorizer decision for the request ``ctx`` (recorded when it is audited)."""
        # The Produce / Fetch path: identity checks and one dict lookup per topic. timeit:
        # ~0.35 us for a topic not audited, after the ~0.9 us of the authorizer's cached
        # decision (a set lookup of the Enum instead cost ~0.6 us: its hash is Python code).
        if operation is _READ or operation is _WRITE:
            if resource_type != "Topic":
                return
            cache = self._reads if operation is _READ else self._writes
            hit = cache.get(name)
            if hit is None:
                hit = self._learn(cache, operation, name)
            if not hit:
                return
        elif operation not in CHANGES:
            return
        elif allowed and operation is Operation.CLUSTER_ACTION and ctx.api_key in _REPLICATION_APIS:
            return
        data = {
            "principal": str(ctx.principal),
            "client_address": _address(ctx.peer),
            "listener": ctx.listener,
            "mechanism": getattr(ctx.sasl, "mechanism", None),
            "api_key": ctx.api_key,
            "operation": operation.value,
            "resource": {"type": resource_type, "name": name, "pattern": "LITERAL"},
            "result": "allowed" if allowed else "denied",
            "reason": reason,
        }
        self._append(AUTHORIZATION, data)

    def _learn(self, cache: dict[str, bool], operation: Operation, topic: str) -> bool:
        chosen = self.settings.topics_read if operation is _READ else self.settings.topics_write
        if len(cache) >= 100_000:  # bounded: topic names come from clients
            cache.clear()
        # The audit topic's own writes are never audited: each would be a record to write.
        hit = cache[topic] = bool(chosen) and topic in chosen and topic != self.settings.topic
        return hit


def authenticated(audit: Audit | None, conn: Any, principal: Principal | None) -> None:
    """The SASL hook: record the outcome of ``conn``'s exchange (its ``peer``, ``listener`` and
    ``sasl.mechanism``; ``principal`` None is a failure, recorded with the user the login
    named and why it failed) when there is an audit log."""
    if audit is not None:
        sasl = conn.sasl
        reason = None
        if principal is None and sasl.error:
            reason = f"as {sasl.attempted!r}: {sasl.error}" if sasl.attempted else sasl.error
        audit.authentication(conn.peer, conn.listener, sasl.mechanism, principal, reason)


def tls_authenticated(
    audit: Audit | None, peer: Any, listener: str, principal: Principal | None, reason: str = ""
) -> None:
    """The TLS hook: a client certificate's principal, or a failed handshake (``principal``
    None) when there is an audit log."""
    if audit is not None:
        audit.authentication(peer, listener, "SSL", principal, reason or None)


def _address(peer: Any) -> str | None:
    if not peer:
        return None
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def open_audit(
    settings: AuditSettings,
    source: str,
    on_drop: Callable[[int], None],
    topic_sink: Callable[[bytes | None], TopicSink] | None = None,
) -> Audit:
    """The broker's audit service, its file opened (blocking: call from a thread); with
    ``audit.log.topic``, the topic's writer that ``topic_sink`` makes given the HMAC key
    (started by :meth:`Audit.start`)."""
    key = read_key(settings.hmac_key_file) if settings.hmac_key_file else None
    writer = None
    if settings.file is not None:
        writer = AuditLog(
            settings.file,
            source,
            key=key,
            fsync_ms=settings.fsync_ms,
            queue_records=settings.queue_records,
            on_drop=on_drop,
        )
        writer.open()
    topic = None
    if settings.topic is not None:
        assert topic_sink is not None, "audit.log.topic needs the broker's topic writer"
        topic = topic_sink(key)
    return Audit(settings, writer, topic)
