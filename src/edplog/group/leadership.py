"""In a cluster: the partitions of ``__consumer_offsets`` this broker leads, and so the groups
it coordinates.

Kafka's rule: the coordinator of group G is the leader of partition
``abs(hashCode(G)) % partitions`` of ``__consumer_offsets``. The broker tells
:meth:`OffsetsLeadership.changed` (on its event loop) when it starts or stops leading a
partition. A partition it starts leading is replayed off the event loop (it may be long);
until that is done its groups are answered COORDINATOR_LOAD_IN_PROGRESS, and groups of a
partition it does not lead NOT_COORDINATOR, which sends clients back to FindCoordinator. A
partition it stops leading takes its groups out of memory: their parked long polls are
answered NOT_COORDINATOR. A replay that ends after the partition was lost again (or lost and
won back) is thrown away: a generation number per partition tells.

Writes go through the partition's leader (:func:`.replicated.replicated_append`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Any

from ..errors import EdplogError, ErrorCode, KafkaError
from .consumer_group import ConsumerGroups
from .consumer_records import Replay
from .membership import Membership
from .offsets import OFFSETS_TOPIC, OffsetStore, Table, replay_log
from .replicated import OffsetsPartition
from .state import Group, join_response, resolve, sync_response

log = logging.getLogger(__name__)


class Load(enum.Enum):
    LOADING = "loading"
    LOADED = "loaded"


def load_partition(plog: Any, partition: int) -> tuple[Table, Replay]:
    """Replay one partition of the offsets topic into fresh tables (blocking: the caller runs
    it off the event loop, so nothing it fills is seen until it is merged on the loop)."""
    table: Table = {}
    replay = Replay()
    replay_log(plog, partition, table, replay.apply)
    return table, replay


class OffsetsLeadership:
    """See the module docstring. ``create_topic(partitions)`` creates ``__consumer_offsets``
    in the cluster (blocking; placement and replication factor are the broker's)."""

    def __init__(
        self,
        offsets: OffsetStore,
        membership: Membership,
        consumer: ConsumerGroups,
        now: Callable[[], float],
        topic_partitions: Callable[[], int | None],
        create_topic: Callable[[int], None],
    ) -> None:
        self.offsets = offsets
        self.membership = membership
        self.consumer = consumer
        self._now = now
        self._topic_partitions = topic_partitions
        self._create_topic = create_topic
        self.loads: dict[int, Load] = {}
        self.leaders: dict[int, OffsetsPartition] = {}
        self._generation: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._creating: asyncio.Future[None] | None = None
        offsets.leaders = self.leaders

    # ---- what a request is told ---------------------------------------------------------

    def error_for(self, group_id: str) -> ErrorCode:
        """NONE when this broker coordinates ``group_id`` now; else why not."""
        self._sync_partition_count()
        load = self.loads.get(self.offsets.partition_for(group_id))
        if load is None:
            return ErrorCode.NOT_COORDINATOR
        if load is Load.LOADING:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    def check(self, group_id: str) -> None:
        """Raise KafkaError (answered in the API's own error shape) unless this broker
        coordinates ``group_id`` now. An empty id is left to the API's own check."""
        if group_id:
            code = self.error_for(group_id)
            if code != ErrorCode.NONE:
                raise KafkaError(code, message=f"group {group_id}")

    @property
    def loading(self) -> bool:
        return any(load is Load.LOADING for load in self.loads.values())

    def _sync_partition_count(self) -> None:
        count = self._topic_partitions()
        if count is not None and count != self.offsets.partitions:
            self.offsets.partitions = count

    # ---- creating the topic -------------------------------------------------------------

    def request_topic(self) -> None:
        """Create ``__consumer_offsets`` in the background unless that is under way (Kafka
        creates it at the first FindCoordinator, which is answered COORDINATOR_NOT_AVAILABLE
        meanwhile: the client asks again)."""
        if self._creating is not None and not self._creating.done():
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, self._create, self.offsets.partitions)
        self._creating = future

    def _create(self, partitions: int) -> None:
        try:
            self._create_topic(partitions)
            log.info("created %s with %d partitions", OFFSETS_TOPIC, partitions)
        except EdplogError as exc:
            # Another broker may have created it first: the next FindCoordinator sees it.
            log.info("%s not created here: %s", OFFSETS_TOPIC, exc)
        except Exception:
            log.exception("could not create %s", OFFSETS_TOPIC)

    # ---- leadership changes (the event loop) --------------------------------------------

    def changed(self, topic: str, index: int, partition: OffsetsPartition | None) -> None:
        """This broker started (``partition``) or stopped (None) leading ``topic``-``index``."""
        if topic != OFFSETS_TOPIC:
            return
        self._sync_partition_count()
        generation = self._generation.get(index, 0) + 1
        self._generation[index] = generation
        self.leaders.pop(index, None)
        self._unload(index)
        if partition is None:
            return
        self.loads[index] = Load.LOADING
        task = asyncio.get_running_loop().create_task(self._load(index, partition, generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self, index: int, partition: OffsetsPartition, generation: int) -> None:
        loop = asyncio.get_running_loop()
        log.info("%s-%d: loading its groups", OFFSETS_TOPIC, index)
        try:
            table, replay = await loop.run_in_executor(None, load_partition, partition.log, index)
        except Exception as exc:
            if self._generation.get(index) != generation:
                return
            # Its groups are answered COORDINATOR_NOT_AVAILABLE (OffsetStore.unavailable).
            self.offsets.mark_unavailable(index, str(exc))
            self.loads[index] = Load.LOADED
            log.error("%s-%d cannot be replayed: %s", OFFSETS_TOPIC, index, exc)
            return
        if self._generation.get(index) != generation:
            return  # lost (and maybe won again) meanwhile: a newer load or none applies
        self.offsets.merge(table)
        groups = replay.groups(self._now())
        for group_id, cgroup in groups.items():
            self.consumer.groups[group_id] = cgroup
            self.consumer.refresh_snapshot(cgroup)
        for group_id in table:
            if group_id not in self.consumer.groups:
                self.membership.groups.setdefault(group_id, Group(group_id))
        self.leaders[index] = partition
        self.loads[index] = Load.LOADED
        log.info(
            "%s-%d: loaded, coordinating %d groups",
            OFFSETS_TOPIC,
            index,
            len(set(table) | set(groups)),
        )

    def _unload(self, index: int) -> None:
        """Forget every group of partition ``index``; parked long polls get NOT_COORDINATOR."""
        was = self.loads.pop(index, None)
        self.offsets.forget_partition(index)
        mine = self.offsets.partition_for
        dropped = 0
        for group_id in [g for g in self.membership.groups if mine(g) == index]:
            group = self.membership.groups.pop(group_id)
            for member in group.members.values():
                code = ErrorCode.NOT_COORDINATOR
                resolve(member.join_future, join_response(0, code, member.member_id))
                resolve(member.sync_future, sync_response(code))
                member.join_future = member.sync_future = None
            dropped += 1
        for group_id in [g for g in self.consumer.groups if mine(g) == index]:
            del self.consumer.groups[group_id]
            dropped += 1
        if was is not None:
            log.info("%s-%d: no longer led here, %d groups dropped", OFFSETS_TOPIC, index, dropped)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
