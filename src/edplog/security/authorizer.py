"""The authorizer the broker asks before it acts on a request.

The broker's dispatch calls :meth:`Authorizer.authorize_request` for every request; handlers
call :meth:`Authorizer.authorize` for each resource they touch (a topic, a group, the cluster),
with Kafka's operation names, so ACLs plug in without changing a handler.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol

from .principal import Principal


class Operation(enum.Enum):
    """Kafka's ACL operations."""

    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DELETE = "Delete"
    ALTER = "Alter"
    DESCRIBE = "Describe"
    CLUSTER_ACTION = "ClusterAction"
    DESCRIBE_CONFIGS = "DescribeConfigs"
    ALTER_CONFIGS = "AlterConfigs"
    IDEMPOTENT_WRITE = "IdempotentWrite"


class Resource(NamedTuple):
    """What an operation acts on: ``("Topic", "orders")``, ``("Cluster", "kafka-cluster")``."""

    resource_type: str
    name: str


class Authorizer(Protocol):
    def authorize_request(self, principal: Principal, host: str, api_key: int) -> bool:
        """Whether this principal may send this API at all (before it is decoded further)."""
        ...

    def authorize(
        self, principal: Principal, host: str, operation: Operation, resource: Resource
    ) -> bool:
        """Whether ``principal`` from ``host`` may do ``operation`` on ``resource``."""
        ...


class AllowAll:
    """Allows everything: a broker without ``authorizer.class.name``, as in Kafka."""

    def authorize_request(self, principal: Principal, host: str, api_key: int) -> bool:
        return True

    def authorize(
        self, principal: Principal, host: str, operation: Operation, resource: Resource
    ) -> bool:
        return True
