"""The standalone Kafka-compatible broker: ``edplog broker``.

Module map (one per API family): :mod:`.server` (sockets, framing, ordered dispatch),
:mod:`.metadata` (ApiVersions, Metadata, FindCoordinator, DescribeCluster), :mod:`.produce`
(Produce, InitProducerId, group commit), :mod:`.fetch` (Fetch, ListOffsets,
OffsetForLeaderEpoch), :mod:`.admin` (topics, configs, DeleteRecords), :mod:`.groups`
(delegation to the group coordinator), :mod:`.partition` (leader epoch, high watermark,
idempotent producer state), :mod:`.config` (server.properties), :mod:`.runner` and
:mod:`.cli`.
"""

from __future__ import annotations

from .config import BrokerConfig, load_config
from .runner import BackgroundBroker
from .server import Broker

__all__ = ["BackgroundBroker", "Broker", "BrokerConfig", "load_config"]
