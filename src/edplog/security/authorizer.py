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


# Kafka's AclOperation codes: bit n of an *_authorized_operations field is operation n.
OPERATION_CODES: dict[Operation, int] = {
    Operation.READ: 3,
    Operation.WRITE: 4,
    Operation.CREATE: 5,
    Operation.DELETE: 6,
    Operation.ALTER: 7,
    Operation.DESCRIBE: 8,
    Operation.CLUSTER_ACTION: 9,
    Operation.DESCRIBE_CONFIGS: 10,
    Operation.ALTER_CONFIGS: 11,
    Operation.IDEMPOTENT_WRITE: 12,
}

# The operations that apply to each resource type (Kafka's lists, which the authorized
# operations of Metadata, DescribeCluster and DescribeGroups are drawn from).
RESOURCE_OPERATIONS: dict[str, tuple[Operation, ...]] = {
    "Topic": (
        Operation.READ,
        Operation.WRITE,
        Operation.CREATE,
        Operation.DESCRIBE,
        Operation.DELETE,
        Operation.ALTER,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
    ),
    "Group": (Operation.READ, Operation.DESCRIBE, Operation.DELETE),
    "Cluster": (
        Operation.CREATE,
        Operation.CLUSTER_ACTION,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
        Operation.IDEMPOTENT_WRITE,
        Operation.ALTER,
        Operation.DESCRIBE,
    ),
}


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


def authorized_operations(
    authorizer: Authorizer, principal: Principal, host: str, resource: Resource
) -> int:
    """The bit set of the operations ``principal`` may do on ``resource``, as Kafka answers
    ``include_*_authorized_operations``: each operation of the resource type is asked of the
    authorizer, and an allowed one sets bit ``OPERATION_CODES[op]``."""
    bits = 0
    for op in RESOURCE_OPERATIONS.get(resource.resource_type, ()):
        if authorizer.authorize(principal, host, op, resource):
            bits |= 1 << OPERATION_CODES[op]
    return bits
