"""Followers copy their leaders' logs with the Fetch API, as Kafka's replica fetchers do.

One :class:`ReplicaFetcher` per leader broker (``num.replica.fetchers`` connections are one
here: a connection carries every partition this broker follows on that leader) runs on the
broker's event loop with edplog's own asyncio client, its socket bound to this broker's
address (so a network partition between two brokers' addresses cuts replication, as between
machines). For each partition it:

1. *truncates* first, after every change of leader or leader epoch: it asks the leader
   (OffsetsForLeaderEpoch) where the follower's latest epoch ends in the leader's log and cuts
   its own log there — KIP-101 with KIP-279's rule for an epoch the leader never had: the
   cut is the smaller of the leader's answer and the follower's own end of the epoch the
   leader names. Never by high watermark (that lost acknowledged records in Kafka before
   0.11);
2. fetches from its log end offset with ``replica_id``/``replica_state`` set (the leader
   then counts the fetch offset as this follower's log end offset; topics go by id, so the
   fetch is v15+ and ``replica_state`` carries this broker's epoch, KIP-903) and its idea of the
   current leader epoch (a leader with another epoch answers FENCED/UNKNOWN_LEADER_EPOCH;
   the latter, a leader that has not applied the new state yet, is asked again after 50 ms
   rather than ``replica.fetch.backoff.ms``);
3. appends what arrives with ``Log.append_as_follower`` (offsets, epochs and producer state
   as the leader wrote them: idempotent producers keep deduplicating after a failover) and
   takes the leader's high watermark and log start offset. Every response is read into one
   receive buffer the fetcher keeps, and applied before the next fetch is sent.

A partition whose fetch offset falls below the leader's log start offset (retention ran on
the leader) starts over, empty, at the leader's log start offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..client import (
    AsyncClient,
    ClientError,
    FetchedPartition,
    FetchPosition,
    KafkaError,
    ReceiveBuffer,
)
from ..client.errors import AuthenticationError
from ..client.secure import ClientSecurity
from ..errors import EdplogError, ErrorCode, InvalidConfigError
from ..storage import Log

log = logging.getLogger("edplog.cluster")

BACKOFF_S = 0.2
#: How soon a partition whose leader answered UNKNOWN_LEADER_EPOCH is asked again.
LEADER_BEHIND_BACKOFF_S = 0.05


class FollowedPartition(Protocol):
    """What the fetcher needs of a partition it follows (the broker's Partition)."""

    topic: str
    index: int
    log: Log

    @property
    def leader_epoch(self) -> int: ...

    def follower_high_watermark(self, leader_hw: int) -> None: ...

    def notify(self) -> None: ...


@dataclass
class _Followed:
    partition: FollowedPartition
    leader_epoch: int
    truncated: bool = False
    failed_until: float = 0.0


@dataclass(frozen=True)
class FetcherSettings:
    """replica.fetch.* with Kafka's names and defaults."""

    max_wait_ms: int = 500
    min_bytes: int = 1
    max_bytes: int = 1_048_576  # replica.fetch.max.bytes (per partition)
    response_max_bytes: int = 10_485_760  # replica.fetch.response.max.bytes
    backoff_ms: int = 1000  # replica.fetch.backoff.ms
    socket_timeout_ms: int = 30_000  # replica.socket.timeout.ms


class ReplicaFetcher:
    """Fetches every partition this broker follows on one leader (see the module docstring)."""

    def __init__(
        self,
        leader_id: int,
        leader_address: str,
        broker_id: int,
        broker_epoch: Callable[[], int],
        settings: FetcherSettings,
        local_host: str | None = None,
        security: Callable[[], ClientSecurity | None] | None = None,
        topic_id_of: Callable[[str], uuid.UUID | None] | None = None,
    ) -> None:
        self.leader_id = leader_id
        self.leader_address = leader_address
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.settings = settings
        self.local_host = local_host
        # TLS and SASL towards the leader's inter-broker listener (None: plaintext).
        self._security = security
        # Topic ids let the fetch go to Fetch v15+, whose ReplicaState carries this broker's
        # epoch to the leader (KIP-903); without them it stays at v12, by name.
        self._topic_id_of = topic_id_of or (lambda _topic: None)
        self._followed: dict[tuple[str, int], _Followed] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._client: AsyncClient | None = None
        self._stopping = False
        # Reused by every fetch: a fresh buffer per response costs page faults on each first
        # touch. Safe because each response is applied before the next fetch is sent.
        self._buffer = ReceiveBuffer(settings.max_bytes + 65536)

    # ---- partitions -------------------------------------------------------------------------

    def add(self, partition: FollowedPartition) -> None:
        """Follow ``partition`` (again, after a leader epoch change: truncation runs first)."""
        key = (partition.topic, partition.index)
        self._followed[key] = _Followed(partition, partition.leader_epoch)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, topic: str, index: int) -> None:
        self._followed.pop((topic, index), None)

    def followed(self) -> list[FollowedPartition]:
        return [f.partition for f in self._followed.values()]

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self._close_client()

    # ---- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            if not self._followed:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                client = await self._connected()
                await self._truncate_all(client)
                await self._fetch_once(client)
            except asyncio.CancelledError:
                raise
            except (AuthenticationError, InvalidConfigError) as exc:
                # A misconfiguration (a certificate, a password) rather than a passing fault.
                log.error("replica fetcher for leader %d cannot log in: %s", self.leader_id, exc)
                await self._close_client()
                await asyncio.sleep(self.settings.backoff_ms / 1000.0)
            except (ClientError, OSError, EdplogError) as exc:
                log.info("replica fetcher for leader %d: %s", self.leader_id, exc)
                await self._close_client()
                await asyncio.sleep(self.settings.backoff_ms / 1000.0)
            except Exception:
                log.exception("replica fetcher for leader %d failed", self.leader_id)
                await self._close_client()
                await asyncio.sleep(self.settings.backoff_ms / 1000.0)

    async def _connected(self) -> AsyncClient:
        client = self._client
        if client is None or client.closed:
            security = None
            if self._security is not None:
                # Built at each connection (it reads the key and trust stores): off the loop.
                loop = asyncio.get_running_loop()
                security = await loop.run_in_executor(None, self._security)
            client = await AsyncClient.connect(
                self.leader_address,
                client_id=f"edplog-replica-fetcher-{self.broker_id}",
                timeout_s=self.settings.socket_timeout_ms / 1000.0,
                local_host=self.local_host,
                security=security,
            )
            self._client = client
        return client

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _truncate_all(self, client: AsyncClient) -> None:
        for key, f in list(self._followed.items()):
            if f.truncated or self._followed.get(key) is not f:
                continue
            await self._truncate(client, f)

    async def _truncate(self, client: AsyncClient, f: _Followed) -> None:
        lg = f.partition.log
        epoch = lg.leader_epochs.latest_epoch
        if epoch < 0:
            f.truncated = True  # an empty log (or no epochs): nothing to cut
            return
        try:
            answer = await client.offset_for_leader_epoch(
                f.partition.topic,
                f.partition.index,
                epoch,
                current_leader_epoch=f.leader_epoch,
                replica_id=self.broker_id,
            )
        except KafkaError as exc:
            self._pause(f, exc)
            return
        if answer.leader_epoch < 0 or answer.end_offset < 0:
            # The leader has no epoch at or below ours: everything we hold diverged.
            cut = lg.log_start_offset
        else:
            own_end = lg.leader_epochs.end_offset_for(answer.leader_epoch, lg.log_end_offset)[1]
            cut = min(answer.end_offset, own_end if own_end >= 0 else lg.log_end_offset)
        if cut < lg.log_end_offset:
            log.info(
                "%s-%d: truncating from %d to %d (leader %d epoch %d ends at %d)",
                f.partition.topic,
                f.partition.index,
                lg.log_end_offset,
                cut,
                self.leader_id,
                answer.leader_epoch,
                answer.end_offset,
            )
            await asyncio.get_running_loop().run_in_executor(None, lg.truncate_to, cut)
        f.truncated = True

    def _pause(self, f: _Followed, exc: KafkaError) -> None:
        """A partition error: wait for new metadata (leadership errors) or back off. A leader
        that does not know our epoch yet (UNKNOWN_LEADER_EPOCH: the state reached us first)
        is asked again soon: until this follower fetches, a new leader's high watermark
        cannot move."""
        backoff_s = self.settings.backoff_ms / 1000.0
        if exc.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH:
            backoff_s = min(backoff_s, LEADER_BEHIND_BACKOFF_S)
        f.failed_until = time.monotonic() + backoff_s
        log.debug(
            "%s-%d from leader %d: %s", f.partition.topic, f.partition.index, self.leader_id, exc
        )

    async def _fetch_once(self, client: AsyncClient) -> None:
        now = time.monotonic()
        ready = [
            (key, f) for key, f in self._followed.items() if f.truncated and f.failed_until <= now
        ]
        if not ready:
            # Until the first paused partition may be asked again, at most BACKOFF_S.
            pauses = [f.failed_until - now for f in self._followed.values() if f.failed_until > now]
            await asyncio.sleep(min([BACKOFF_S, self.settings.backoff_ms / 1000.0, *pauses]))
            return
        positions = [
            FetchPosition(
                key[0],
                key[1],
                f.partition.log.log_end_offset,
                current_leader_epoch=f.leader_epoch,
                log_start_offset=f.partition.log.log_start_offset,
                partition_max_bytes=self.settings.max_bytes,
                topic_id=self._topic_id_of(key[0]),
            )
            for key, f in ready
        ]
        results = await client.fetch(
            positions,
            max_wait_ms=self.settings.max_wait_ms,
            min_bytes=self.settings.min_bytes,
            max_bytes=self.settings.response_max_bytes,
            replica_id=self.broker_id,
            replica_epoch=self.broker_epoch(),
            buffer=self._buffer,
        )
        by_key = dict(ready)
        for res in results:
            f = by_key.get((res.topic, res.partition))
            if f is None or self._followed.get((res.topic, res.partition)) is not f:
                continue  # no longer followed from here (a leader change meanwhile)
            await self._apply(f, res)

    async def _apply(self, f: _Followed, res: FetchedPartition) -> None:
        p = f.partition
        lg = p.log
        code = res.error_code
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            await self._reset_to_leader_start(client_start=res.log_start_offset, f=f)
            return
        if code:
            self._pause(f, KafkaError(code, topic=p.topic, partition=p.index, api="Fetch"))
            if code == ErrorCode.FENCED_LEADER_EPOCH:
                f.truncated = False  # our epoch is old: metadata brings the new one
            return
        if len(res.records):
            if res.fetch_offset != lg.log_end_offset:
                return  # a truncation ran meanwhile: fetch again from the new end
            lg.append_as_follower(res.records)
        if res.log_start_offset > lg.log_start_offset and res.log_start_offset <= lg.log_end_offset:
            lg.delete_records_before(res.log_start_offset)
        p.follower_high_watermark(res.high_watermark)
        p.notify()

    async def _reset_to_leader_start(self, client_start: int, f: _Followed) -> None:
        lg = f.partition.log
        if client_start > lg.log_end_offset:
            log.info(
                "%s-%d: the leader's log starts at %d, past ours (%d): starting over there",
                f.partition.topic,
                f.partition.index,
                client_start,
                lg.log_end_offset,
            )
            await asyncio.get_running_loop().run_in_executor(None, lg.reset_to, client_start)
        else:
            f.truncated = False  # ahead of the leader: truncate again
