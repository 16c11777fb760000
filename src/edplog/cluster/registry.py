"""The cluster's topics behind the storage layer's ``TopicRegistry`` interface.

A broker's ``Store`` asks its registry which topics exist, their ids, partition counts and
configs, and which partitions it keeps a replica of. In a cluster the answers come from the
metadata cache (ZooKeeper, kept current by watches): reads take no lock and make no call.
Changes are written to ZooKeeper — a new topic's replica assignment (rack-aware placement
over the live brokers), a deletion request for the controller, a grown assignment, a config
— and each returns once this broker's cache has seen its effect, so the client that asked
sees it in its next Metadata request, as with Kafka.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping

from ..errors import EdplogError, InvalidPartitionsError, UnknownTopicError
from ..storage.topic_registry import TopicInfo, validate_topic_name
from .metadata_cache import MetadataCache, Snapshot
from .partition_state import assign_replicas
from .waiting import wait_until
from .zk import ZkClient

log = logging.getLogger("edplog.cluster")

#: How long a change may take to come back through the watches before the caller is told.
PROPAGATION_TIMEOUT_S = 30.0


class ClusterTopicRegistry:
    """See the module docstring."""

    def __init__(
        self,
        zk: ZkClient,
        cache: MetadataCache,
        broker_id: int,
        default_replication_factor: int,
    ) -> None:
        self.zk = zk
        self.cache = cache
        self.broker_id = broker_id
        self.default_replication_factor = default_replication_factor
        self._memo: tuple[Snapshot, dict[str, TopicInfo]] | None = None

    # ---- reads --------------------------------------------------------------------------

    def topics(self) -> dict[str, TopicInfo]:
        snap = self.cache.snapshot
        memo = self._memo
        if memo is not None and memo[0] is snap:
            return memo[1]
        topics = {
            name: TopicInfo(ta.topic_id, len(ta.partitions), dict(snap.configs.get(name, {})))
            for name, ta in snap.topics.items()
        }
        self._memo = (snap, topics)
        return topics

    def get(self, name: str) -> TopicInfo:
        info = self.topics().get(name)
        if info is None:
            raise UnknownTopicError(f"unknown topic {name!r}")
        return info

    def hosts(self, name: str, partition: int) -> bool:
        return self.broker_id in self.cache.snapshot.replicas(name, partition)

    # ---- changes ------------------------------------------------------------------------

    def create(self, name: str, partitions: int, config: Mapping[str, str]) -> TopicInfo:
        """A topic with the default replication factor, placed over the live brokers."""
        return self.create_assigned(
            name, self.place(partitions, self.default_replication_factor), config
        )

    def place(self, partitions: int, replication_factor: int) -> dict[int, tuple[int, ...]]:
        """Replica lists for ``partitions`` new partitions (rack-aware, leaders spread)."""
        if partitions < 1:
            raise InvalidPartitionsError(f"a topic needs at least one partition, not {partitions}")
        racks = {b: reg.rack for b, reg in self.cache.snapshot.brokers.items()}
        return assign_replicas(racks, partitions, replication_factor)

    def create_assigned(
        self, name: str, assignment: Mapping[int, tuple[int, ...]], config: Mapping[str, str]
    ) -> TopicInfo:
        validate_topic_name(name)
        ta = self.zk.create_topic(name, dict(assignment), dict(config))
        self._await(lambda s: name in s.topics, f"topic {name} to appear")
        return TopicInfo(ta.topic_id, len(ta.partitions), dict(config))

    def delete(self, name: str) -> TopicInfo:
        info = self.get(name)
        self.zk.request_topic_deletion(name)
        self._await(lambda s: name not in s.topics, f"topic {name} to be deleted")
        return info

    def add_partitions(self, name: str, total: int) -> TopicInfo:
        ta = self.zk.assignment(name)
        if ta is None:
            raise UnknownTopicError(f"unknown topic {name!r}")
        old = len(ta.partitions)
        if total <= old:
            raise InvalidPartitionsError(
                f"topic {name!r} has {old} partitions; it can only grow, not become {total}"
            )
        rf = len(next(iter(ta.partitions.values())))
        extra = self.place(total - old, rf)
        return self.add_assigned(name, [extra[i] for i in sorted(extra)])

    def add_assigned(self, name: str, replicas: list[tuple[int, ...]]) -> TopicInfo:
        """Grow a topic by the given replica lists (CreatePartitions with assignments)."""
        ta = self.zk.assignment(name)
        if ta is None:
            raise UnknownTopicError(f"unknown topic {name!r}")
        partitions = dict(ta.partitions)
        for i, reps in enumerate(replicas):
            partitions[len(ta.partitions) + i] = tuple(reps)
        new = type(ta)(ta.topic, ta.topic_id, partitions, ta.adding, ta.removing, ta.version)
        self.zk.set_assignment(new)
        total = len(partitions)
        self._await(
            lambda s: name in s.topics and len(s.topics[name].partitions) == total,
            f"topic {name} to have {total} partitions",
        )
        return self.get(name)

    def set_config(self, name: str, config: Mapping[str, str]) -> TopicInfo:
        self.get(name)
        wanted = dict(config)
        self.zk.set_topic_config(name, wanted)
        self._await(lambda s: s.configs.get(name, {}) == wanted, f"config of {name}")
        return self.get(name)

    def adopt(self, name: str, partitions: int) -> TopicInfo:
        """A partition directory found on disk: kept (never deleted here) but not opened
        unless the cluster assigns the partition to this broker."""
        info = self.topics().get(name)
        if info is None or info.partitions < partitions:
            log.warning(
                "partition directory of %s (partition %d) is not assigned to broker %d: "
                "left on disk, unused",
                name,
                partitions - 1,
                self.broker_id,
            )
            return TopicInfo(uuid.UUID(int=0), partitions, {})
        return info

    def _await(self, done: Callable[[Snapshot], bool], what: str) -> None:
        if not wait_until(lambda: done(self.cache.snapshot), PROPAGATION_TIMEOUT_S, 0.01):
            raise EdplogError(f"timed out waiting for {what}")
