"""edplog's own Kafka client: one connection to one broker, blocking or asyncio.

For the replica fetcher (on the broker's event loop), perf tools and tests. It speaks the
Kafka protocol through :mod:`edplog.protocol`'s generated codecs, negotiates versions with
ApiVersions, and never decodes records unless asked: fetched records are memoryviews into
the response frame. See docs/client.md.
"""

from __future__ import annotations

from .aio import AsyncClient
from .blocking import Client, ReceiveBuffer, Response
from .calls import (
    EARLIEST,
    LATEST,
    READ_COMMITTED,
    READ_UNCOMMITTED,
    BrokerInfo,
    ClusterMetadata,
    EpochEndOffset,
    FetchedPartition,
    FetchPosition,
    ListedOffset,
    PartitionInfo,
    RecordSpan,
    TopicInfo,
    scan_records,
)
from .errors import (
    BrokerConnectionError,
    ClientError,
    ConnectionClosedError,
    KafkaError,
    RequestTimeoutError,
    error_name,
)

__all__ = [
    "EARLIEST",
    "LATEST",
    "READ_COMMITTED",
    "READ_UNCOMMITTED",
    "AsyncClient",
    "BrokerConnectionError",
    "BrokerInfo",
    "Client",
    "ClientError",
    "ClusterMetadata",
    "ConnectionClosedError",
    "EpochEndOffset",
    "FetchPosition",
    "FetchedPartition",
    "KafkaError",
    "ListedOffset",
    "PartitionInfo",
    "ReceiveBuffer",
    "RecordSpan",
    "RequestTimeoutError",
    "Response",
    "TopicInfo",
    "error_name",
    "scan_records",
]
