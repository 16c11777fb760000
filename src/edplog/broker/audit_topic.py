"""Audit records in a topic (``audit.log.topic``): the same chained records as the file
(security/audit.py), produced into partition 0 of a topic, so that they are replicated with the
cluster and read by whoever may read that topic, far from the broker that wrote them.

Each broker keeps its own chain in the topic: its records carry its ``source`` (also the
record key), a ``sequence`` that counts from 0 over the life of the topic and the ``prevhash``
of its record before. Partition 0 only: one partition keeps every broker's records in the
order they were acknowledged, and adding partitions to the topic cannot split a chain. On its
first connection a writer finds its own last record in the partition (reading back from the
end) and continues that chain after an ``io.edplog.audit.started`` record.

A broker service (not in security/, which sits below the client it needs): security/audit.py
hands it each record through its ``TopicSink`` protocol. Why a task of the broker's event loop
and not a thread: the work is network I/O (a produce
with acks=all to the partition's leader, through this broker's inter-broker listener, as a
client of it or of another broker), not disk. Records go into a bounded queue, as for the
file: when it is full, or while the topic cannot be written (no leader yet, the cluster not
up, no permission), records are not waited for, and the loss is counted and put in the chain
as an ``io.edplog.audit.dropped`` record once writing works again. A produce whose answer was
lost is sent again; the records it repeats are the same bytes, which ``edplog audit verify``
counts as repeated, not as tampering.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..client import EARLIEST, LATEST, AsyncClient, FetchPosition
from ..client.errors import ClientError, KafkaError
from ..client.secure import ClientSecurity
from ..errors import ErrorCode
from ..records import build_batch, decode_records
from ..security.audit_chain import (
    DROPPED,
    STARTED,
    Chain,
    checked,
    hash_of,
    parse_record,
    record_line,
)

log = logging.getLogger("edplog.broker")

PARTITION = 0
_BATCH_RECORDS = 500
_BATCH_BYTES = 512 * 1024
_PRODUCE_TIMEOUT_MS = 30_000
_BACKOFF_S = (0.1, 5.0)
_CLOSE_S = 5.0
_READ_BACK = 1000  # records read back per step when looking for this writer's last one


@dataclass(frozen=True)
class TopicLink:
    """How the writer reaches the topic: this broker's own address on its inter-broker
    listener once it listens (None before), the security of that listener (blocking: it reads
    the key stores), the address outgoing connections are bound to, and how to create the
    topic when it is missing (returns an error message, or None)."""

    bootstrap: Callable[[], str | None]
    create: Callable[[str], Awaitable[str | None]]
    security: Callable[[], ClientSecurity | None] | None = None
    local_host: str | None = None


class _NotYet(Exception):
    """The topic cannot be written yet (the broker starting, the topic being created)."""


class _Fatal(Exception):
    """The chain in the topic cannot be continued: the writer stops."""


class AuditTopic:
    """Produces the chain's records into partition 0 of ``topic`` (see the module docstring)."""

    def __init__(
        self,
        topic: str,
        source: str,
        link: TopicLink,
        *,
        key: bytes | None = None,
        queue_records: int = 10_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.topic = topic
        self.source = source
        self.link = link
        self.chain = Chain(key)
        self._key = source.encode()
        self._capacity = queue_records
        self._items: deque[tuple[str, float, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._dropped = 0
        self._on_drop = on_drop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._client: AsyncClient | None = None
        self._sequence = -1  # the chain's end in the topic (after recovery)
        self._hash = ""
        self._recovered = False
        self._created = False
        self._pending: list[bytes] = []  # built, not yet acknowledged
        self._pending_last = (-1, "")  # the chain's end once they are
        self.delivered = 0  # records acknowledged by the topic's leader
        self.failed: BaseException | None = None  # why writing stopped for good

    # ---- the broker's side ------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task (on the event loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = self._loop.create_task(self._run(), name="edplog-audit-topic")

    def append(self, kind: str, data: dict[str, Any]) -> None:
        """Queue a record; never waits (a full queue counts a drop). Any thread."""
        with self._lock:
            if self.failed is not None or len(self._items) >= self._capacity:
                self._dropped += 1
                first = self._dropped == 1
                full = True
            else:
                self._items.append((kind, time.time(), data))
                full = False
        if full:
            if first and self.failed is None:
                log.error("audit topic %s: queue full, records are being dropped", self.topic)
            if self._on_drop is not None:
                self._on_drop(1)
            return
        loop = self._loop
        if loop is None or self._wake.is_set():
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def close(self) -> None:
        """Deliver what is queued (for at most a few seconds), then stop; what is left is
        counted as dropped."""
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), _CLOSE_S)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._disconnect()
        with self._lock:
            left = len(self._items) + len(self._pending)
            self._items.clear()
        self._pending = []
        if left:
            log.warning("audit topic %s: %d record(s) not delivered at shutdown", self.topic, left)
            if self._on_drop is not None:
                self._on_drop(left)

    # ---- the task -----------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = _BACKOFF_S[0]
        failing: str | None = None
        while True:
            try:
                if self._client is None:
                    self._client = await self._connect()
                if not self._recovered:
                    await self._recover(self._client)
                if not self._pending:
                    if not self._take():
                        if self._stopping:
                            return
                        self._wake.clear()
                        if not self._take():
                            await self._wake.wait()
                            continue
                await self._client.produce(
                    self.topic,
                    PARTITION,
                    build_batch((self._key, line) for line in self._pending),
                    acks=-1,
                    timeout_ms=_PRODUCE_TIMEOUT_MS,
                )
                self.delivered += len(self._pending)
                self._sequence, self._hash = self._pending_last
                self._pending = []
                backoff = _BACKOFF_S[0]
                if failing is not None:
                    log.info("audit topic %s: writing again", self.topic)
                    failing = None
            except asyncio.CancelledError:
                raise
            except _Fatal as exc:
                log.error("audit topic %s: auditing to the topic stopped: %s", self.topic, exc)
                self._fail(exc)
                return
            except Exception as exc:  # noqa: BLE001 - every failure is retried, and said
                await self._disconnect()
                problem = str(exc) or type(exc).__name__
                if not isinstance(exc, (KafkaError, ClientError, OSError, _NotYet)):
                    log.exception("audit topic %s: unexpected failure (retrying)", self.topic)
                if problem != failing:  # each new reason once, not every retry
                    (log.info if isinstance(exc, _NotYet) else log.warning)(
                        "audit topic %s: cannot write yet (retrying): %s", self.topic, problem
                    )
                    failing = problem
                if self._stopping:
                    return
                try:
                    await asyncio.wait_for(self._stop_requested(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, _BACKOFF_S[1])

    async def _stop_requested(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()

    def _take(self) -> bool:
        """Build the next batch of lines from the queue (with a drop marker first when
        records were dropped); whether there is one."""
        with self._lock:
            items: list[tuple[str, float, dict[str, Any]]] = []
            while self._items and len(items) < _BATCH_RECORDS:
                items.append(self._items.popleft())
            dropped, self._dropped = self._dropped, 0
        seq, prev = self._sequence, self._hash
        lines: list[bytes] = []
        size = 0
        if dropped:  # reported at the first write after them (after a started record)
            where = 1 if items and items[0][0] == STARTED else 0
            items.insert(where, (DROPPED, time.time(), {"dropped_records": dropped}))
        for i, (kind, at, data) in enumerate(items):
            seq += 1
            line = record_line(self.chain, self.source, seq, prev, kind, at, data)
            prev = hash_of(line)
            lines.append(line[:-1])  # a record's value is the line without its newline
            size += len(line)
            if size >= _BATCH_BYTES and i + 1 < len(items):
                with self._lock:  # the rest waits for the next batch
                    self._items.extendleft(reversed(items[i + 1 :]))
                break
        self._pending, self._pending_last = lines, (seq, prev)
        return bool(lines)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self.failed = exc
            lost = len(self._items) + len(self._pending)
            self._items.clear()
        self._pending = []
        if lost and self._on_drop is not None:
            self._on_drop(lost)

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _connect(self) -> AsyncClient:
        """A connection to the leader of the topic's partition 0 (creating the topic when it
        does not exist)."""
        bootstrap = self.link.bootstrap()
        if bootstrap is None:
            raise _NotYet("the broker does not listen yet")
        security = None
        if self.link.security is not None:
            security = await asyncio.get_running_loop().run_in_executor(None, self.link.security)
        if not self._created:
            # By the broker itself (not a CreateTopics of this connection's principal, which
            # needs no permission to create topics).
            problem = await self.link.create(self.topic)
            if problem is not None:
                raise _NotYet(problem)
            self._created = True
        client = await self._open(bootstrap, security)
        try:
            meta = await client.metadata([self.topic])
            info = meta.topics.get(self.topic)
            if info is None or info.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                self._created = False  # deleted since? created again at the next try
                raise _NotYet(f"topic {self.topic} is not known to {bootstrap} yet")
            if info.error_code:
                raise KafkaError(info.error_code, topic=self.topic, api="Metadata")
            part = next((p for p in info.partitions if p.partition == PARTITION), None)
            if part is None or part.leader_id < 0:
                raise _NotYet(f"partition {self.topic}-{PARTITION} has no leader yet")
            leader = next((b for b in meta.brokers if b.node_id == part.leader_id), None)
            if leader is None:
                raise _NotYet(f"the leader of {self.topic}-{PARTITION} is not listed yet")
            address = f"{leader.host}:{leader.port}"
        except BaseException:
            await client.close()
            raise
        if address == bootstrap:
            return client
        await client.close()
        return await self._open(address, security)

    async def _open(self, address: str, security: ClientSecurity | None) -> AsyncClient:
        return await AsyncClient.connect(
            address,
            client_id="edplog-audit",
            local_host=self.link.local_host,
            security=security,
        )

    async def _recover(self, client: AsyncClient) -> None:
        """Find this writer's last record in the partition and continue its chain after it,
        with a ``started`` record first."""
        start = (await client.list_offsets(self.topic, PARTITION, EARLIEST)).offset
        end = (await client.list_offsets(self.topic, PARTITION, LATEST)).offset
        last = None
        high, window = end, _READ_BACK
        while last is None and high > start:
            low = max(start, high - window)
            last = await self._last_of_mine(client, low, high)
            high, window = low, window * 4
        if last is None:
            sequence, prevhash = -1, ""
        else:
            found = checked(last, self.chain)
            if found is None:
                record = parse_record(last)
                why = "is not readable"
                if record is not None:
                    why = f"(sequence {record['sequence']}) was not hashed with "
                    why += self.chain.algorithm
                    if self.chain.key:
                        why += " under audit.log.hmac.key.file (another key?)"
                raise _Fatal(
                    f"the last record of {self.source} in the topic {why}; check it with "
                    "`edplog audit verify --topic`"
                )
            sequence, prevhash = found
        self._sequence, self._hash = sequence, prevhash
        self._recovered = True
        with self._lock:  # first: the records queued meanwhile follow it
            self._items.appendleft(
                (STARTED, time.time(), {"previous_sequence": sequence, "topic_offset": end})
            )
        log.info(
            "audit topic %s: continuing the chain of %s after sequence %d",
            self.topic,
            self.source,
            sequence,
        )

    async def _last_of_mine(self, client: AsyncClient, low: int, high: int) -> bytes | None:
        """The value of the last record keyed with this writer's source in [low, high)."""
        last = None
        position = low
        while position < high:
            (part,) = await client.fetch(
                [FetchPosition(self.topic, PARTITION, position)], max_wait_ms=0
            )
            part.raise_for_error()
            for r in decode_records(part.records):
                if low <= r.offset < high and r.key == self._key and r.value is not None:
                    last = r.value
            following = part.next_offset()
            if following <= position:
                break  # nothing more to read (a gap or the end)
            position = following
        return last
