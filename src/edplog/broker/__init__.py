"""The standalone Kafka-compatible broker: ``edplog broker``.

Read the module names in the order of a request's life: :mod:`.server` (the listener) and
:mod:`.connection` (one client: :mod:`.framing` cuts frames, :mod:`.transport` moves bytes)
hand each frame to :mod:`.dispatch` (version gate, authorize hook, metrics, errors to codes),
which calls a handler of :mod:`.api` (one module per API family) with the request's
:mod:`.context`. Handlers use the services: :mod:`.replica_manager` and :mod:`.partition`
(this node's partitions, appends with acks, fetch reads, long polls), :mod:`.group_commit`
(fsyncs shared by acks=-1 produces and offset commits), :mod:`.producer_ids` and the group
coordinator (:mod:`edplog.group`). :mod:`.broker` builds it all; :mod:`.config` reads
``server.properties``; :mod:`.runner` and :mod:`.cli` run it.
"""

from __future__ import annotations

from .broker import Broker
from .config import BrokerConfig, load_config
from .runner import BackgroundBroker

__all__ = ["BackgroundBroker", "Broker", "BrokerConfig", "load_config"]
