"""The client's calls as data: each builds its request body for a version and reads the result.

A :class:`Call` is independent of I/O: the blocking and the asyncio client both pick the
version, send ``build(version)`` and hand the decoded response to ``parse``. Results are
small named tuples, one per partition, never one object per record: the fetched records stay
a memoryview into the response frame.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from .. import _native
from ..errors import TruncatedRecordError
from .errors import KafkaError

T = TypeVar("T")

METADATA, PRODUCE, FETCH, LIST_OFFSETS, OFFSET_FOR_LEADER_EPOCH = 3, 0, 1, 2, 23
#: ListOffsets timestamps with a special meaning (Kafka's).
LATEST, EARLIEST = -1, -2
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
#: The first Fetch version that carries a follower's id in ``replica_state`` (KIP-903)
#: instead of the ``replica_id`` field.
FETCH_REPLICA_STATE_FROM = 15
#: Fetch v13 names topics by id; a fetch whose positions all carry ids goes up to
#: FETCH_BY_ID_MAX (v17: v18 adds a follower's high watermark, which this client does not
#: track).
FETCH_TOPIC_IDS_FROM = 13
FETCH_BY_ID_MAX = 17
CONSUMER_REPLICA_ID = -1
DEFAULT_MAX_WAIT_MS = 500
DEFAULT_FETCH_MAX_BYTES = 50 << 20  # Kafka's fetch.max.bytes
DEFAULT_PARTITION_MAX_BYTES = 1 << 20  # Kafka's max.partition.fetch.bytes
DEFAULT_PRODUCE_TIMEOUT_MS = 30_000
_EMPTY = memoryview(b"")
_SCAN_ATTEMPTS = 4


@dataclass(slots=True)
class Call(Generic[T]):
    """One request kind: its API, how to build the body for a version, how to read the result.

    ``wait_ms`` is how long the broker may hold the request on purpose (a fetch's long
    poll); the read timeout is extended by it.
    """

    api_key: int
    build: Callable[[int], dict[str, Any]]
    parse: Callable[[dict[str, Any] | None], T]
    wait_ms: int = 0
    expect_response: bool = True
    #: A version cap that replaces the client's typed-call cap for this call (None: keep it).
    typed_max: int | None = None


# ---- metadata -----------------------------------------------------------------------------


class BrokerInfo(NamedTuple):
    node_id: int
    host: str
    port: int
    rack: str | None


class PartitionInfo(NamedTuple):
    partition: int
    error_code: int
    leader_id: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]


class TopicInfo(NamedTuple):
    name: str
    error_code: int
    is_internal: bool
    partitions: list[PartitionInfo]


class ClusterMetadata(NamedTuple):
    """Brokers, controller and topics; a topic's ``error_code`` is not raised (a metadata
    request for many topics answers for each), check it when it matters."""

    cluster_id: str | None
    controller_id: int
    brokers: list[BrokerInfo]
    topics: dict[str, TopicInfo]


def metadata_call(
    topics: Iterable[str] | None, allow_auto_topic_creation: bool
) -> Call[ClusterMetadata]:
    names = None if topics is None else list(topics)

    def build(version: int) -> dict[str, Any]:
        return {
            "topics": None if names is None else [{"name": n} for n in names],
            "allow_auto_topic_creation": allow_auto_topic_creation,
            "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False,
        }

    def parse(body: dict[str, Any] | None) -> ClusterMetadata:
        assert body is not None
        brokers = [
            BrokerInfo(b["node_id"], b["host"], b["port"], b["rack"]) for b in body["brokers"]
        ]
        out: dict[str, TopicInfo] = {}
        for t in body["topics"]:
            parts = [
                PartitionInfo(
                    p["partition_index"],
                    p["error_code"],
                    p["leader_id"],
                    p["leader_epoch"],
                    list(p["replica_nodes"] or ()),
                    list(p["isr_nodes"] or ()),
                )
                for p in t["partitions"] or ()
            ]
            parts.sort()
            out[t["name"]] = TopicInfo(t["name"], t["error_code"], bool(t["is_internal"]), parts)
        return ClusterMetadata(body["cluster_id"], body["controller_id"], brokers, out)

    return Call(METADATA, build, parse)


# ---- produce ------------------------------------------------------------------------------


def produce_call(
    topic: str,
    partition: int,
    records: Any,
    acks: int,
    timeout_ms: int,
    transactional_id: str | None,
) -> Call[int]:
    """Base offset of the appended records (-1 with ``acks=0``, which gets no answer)."""
    body = {
        "transactional_id": transactional_id,
        "acks": acks,
        "timeout_ms": timeout_ms,
        "topic_data": [
            {"name": topic, "partition_data": [{"index": partition, "records": records}]}
        ],
    }

    def parse(resp: dict[str, Any] | None) -> int:
        if resp is None:
            return -1
        for t in resp["responses"]:
            for p in t["partition_responses"]:
                if t["name"] == topic and p["index"] == partition:
                    if p["error_code"]:
                        raise KafkaError(
                            p["error_code"],
                            topic=topic,
                            partition=partition,
                            message=p.get("error_message"),
                            api="Produce",
                        )
                    return int(p["base_offset"])
        raise KafkaError(-1, topic=topic, partition=partition, message="no answer for it")

    return Call(PRODUCE, lambda version: body, parse, expect_response=acks != 0)


# ---- fetch --------------------------------------------------------------------------------


class FetchPosition(NamedTuple):
    """Where to fetch one partition from. A plain ``(topic, partition, offset)`` tuple will
    do; the epochs are a follower's (KIP-320 fencing, KIP-595 divergence)."""

    topic: str
    partition: int
    offset: int
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1
    log_start_offset: int = -1
    partition_max_bytes: int = DEFAULT_PARTITION_MAX_BYTES
    #: The topic's id. When every position of a fetch has one, the fetch may use Fetch v13+
    #: (topics by id), and from v15 a follower's broker epoch reaches the leader (KIP-903).
    topic_id: uuid.UUID | None = None


class RecordSpan(NamedTuple):
    """What a records buffer holds, from its batch headers (:func:`scan_records`)."""

    batches: int
    records: int
    last_offset: int
    valid_bytes: int


def scan_records(records: Any) -> RecordSpan:
    """Count the whole batches at the start of ``records`` without decoding any record.

    Native calls only (``edplog._native.scan_batches``: headers, no CRC). A partial batch at
    the end — Kafka may cut a fetch response inside one — is left out: the scan is repeated
    on the prefix before the truncation it reports (at most a few times: the reported
    position falls at or just past the partial batch's start). ``last_offset`` is -1 when
    there is no whole batch.
    """
    end = len(records)
    for _ in range(_SCAN_ATTEMPTS):
        if end <= 0:
            break
        try:
            batches, count, _first, last, _ts, valid = _native.scan_batches(
                records[:end] if end < len(records) else records, strict=False, check_crc=False
            )
        except TruncatedRecordError as exc:
            cut = exc.position if exc.position is not None else 0
            if cut >= end:
                break
            end = cut
            continue
        return RecordSpan(batches, count, last, valid)
    return RecordSpan(0, 0, -1, 0)


class FetchedPartition(NamedTuple):
    """One partition of a Fetch response.

    ``records`` is a memoryview into the response frame (no copy): it stays valid as long as
    it is referenced, but with a reused :class:`~edplog.client.ReceiveBuffer` the next fetch
    into that buffer overwrites it. Per-partition errors are reported in ``error_code``, not
    raised (a follower handles OFFSET_OUT_OF_RANGE or FENCED_LEADER_EPOCH itself); call
    :meth:`raise_for_error` to turn one into a :class:`KafkaError`.
    """

    topic: str
    partition: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: memoryview
    fetch_offset: int
    #: KIP-595: the leader's ``(epoch, end_offset)`` where the follower's log diverges, else
    #: ``(-1, -1)``.
    diverging_epoch: tuple[int, int] = (-1, -1)
    preferred_read_replica: int = -1
    aborted_transactions: list[tuple[int, int]] | None = None

    def raise_for_error(self) -> FetchedPartition:
        if self.error_code:
            raise KafkaError(
                self.error_code, topic=self.topic, partition=self.partition, api="Fetch"
            )
        return self

    def next_offset(self) -> int:
        """The offset after the last whole batch fetched, or ``fetch_offset`` if none."""
        last = scan_records(self.records).last_offset
        return last + 1 if last >= self.fetch_offset else self.fetch_offset


def fetch_call(
    positions: Sequence[FetchPosition],
    *,
    max_wait_ms: int,
    min_bytes: int,
    max_bytes: int,
    isolation_level: int,
    replica_id: int,
    replica_epoch: int,
) -> Call[list[FetchedPartition]]:
    by_topic: dict[str, list[dict[str, Any]]] = {}
    offsets: dict[tuple[str, int], int] = {}
    ids: dict[str, uuid.UUID | None] = {}
    for pos in positions:
        pos = pos if isinstance(pos, FetchPosition) else FetchPosition(*pos)
        offsets[(pos.topic, pos.partition)] = pos.offset
        if ids.setdefault(pos.topic, pos.topic_id) != pos.topic_id:
            raise ValueError(f"fetch positions give topic {pos.topic!r} two ids")
        by_topic.setdefault(pos.topic, []).append(
            {
                "partition": pos.partition,
                "current_leader_epoch": pos.current_leader_epoch,
                "fetch_offset": pos.offset,
                "last_fetched_epoch": pos.last_fetched_epoch,
                "log_start_offset": pos.log_start_offset,
                "partition_max_bytes": pos.partition_max_bytes,
            }
        )
    if not offsets:
        raise ValueError("fetch needs at least one partition")
    by_id = all(topic_id is not None for topic_id in ids.values())
    names = {topic_id: name for name, topic_id in ids.items() if topic_id is not None}

    def build(version: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "replica_id": replica_id,
            "max_wait_ms": max_wait_ms,
            "min_bytes": min_bytes,
            "max_bytes": max_bytes,
            "isolation_level": isolation_level,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {"topic_id": ids[t], "partitions": ps}
                if version >= FETCH_TOPIC_IDS_FROM
                else {"topic": t, "partitions": ps}
                for t, ps in by_topic.items()
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        }
        if version >= FETCH_REPLICA_STATE_FROM:
            # KIP-903: from v15 the follower's id and broker epoch travel in the tagged
            # ReplicaState and the old field is gone (the encoder drops fields a version
            # lacks, so only the right one reaches the wire).
            body["replica_id"] = CONSUMER_REPLICA_ID
            body["replica_state"] = {"replica_id": replica_id, "replica_epoch": replica_epoch}
        return body

    def parse(resp: dict[str, Any] | None) -> list[FetchedPartition]:
        assert resp is not None
        if resp.get("error_code"):
            raise KafkaError(resp["error_code"], api="Fetch")
        out = []
        for t in resp["responses"]:
            # v13+ answers by id (the decoded name is then a default), older ones by name.
            name = names.get(t.get("topic_id")) or t.get("topic")
            if not name:
                continue  # an id this fetch did not ask for
            for p in t["partitions"]:
                index = p["partition_index"]
                div = p.get("diverging_epoch") or {}
                aborted = p.get("aborted_transactions")
                out.append(
                    FetchedPartition(
                        name,
                        index,
                        p["error_code"],
                        p["high_watermark"],
                        p["last_stable_offset"],
                        p["log_start_offset"],
                        _EMPTY if p["records"] is None else p["records"],
                        offsets.get((name, index), -1),
                        (div.get("epoch", -1), div.get("end_offset", -1)),
                        p.get("preferred_read_replica", -1),
                        None
                        if aborted is None
                        else [(a["producer_id"], a["first_offset"]) for a in aborted],
                    )
                )
        return out

    return Call(
        FETCH,
        build,
        parse,
        wait_ms=max(0, max_wait_ms),
        typed_max=FETCH_BY_ID_MAX if by_id else None,
    )


# ---- offsets ------------------------------------------------------------------------------


class ListedOffset(NamedTuple):
    """ListOffsets' answer: the offset (-1 if no record matches a time), the timestamp of
    that record (-1 for EARLIEST / LATEST) and its leader epoch (-1 if unknown)."""

    offset: int
    timestamp_ms: int
    leader_epoch: int


def list_offsets_call(
    topic: str,
    partition: int,
    timestamp: int,
    isolation_level: int,
    current_leader_epoch: int,
    replica_id: int,
) -> Call[ListedOffset]:
    body = {
        "replica_id": replica_id,
        "isolation_level": isolation_level,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {
                        "partition_index": partition,
                        "current_leader_epoch": current_leader_epoch,
                        "timestamp": timestamp,
                        "max_num_offsets": 1,
                    }
                ],
            }
        ],
    }

    def parse(resp: dict[str, Any] | None) -> ListedOffset:
        assert resp is not None
        p = _only_partition(resp["topics"], "name", "partition_index", topic, partition)
        if p["error_code"]:
            raise KafkaError(p["error_code"], topic=topic, partition=partition, api="ListOffsets")
        offset = p["offset"]
        if offset < 0 and p["old_style_offsets"]:  # v0 answers in a list
            offset = p["old_style_offsets"][0]
        return ListedOffset(int(offset), int(p["timestamp"]), int(p["leader_epoch"]))

    return Call(LIST_OFFSETS, lambda version: body, parse)


class EpochEndOffset(NamedTuple):
    """OffsetForLeaderEpoch's answer: the largest epoch <= the one asked for that the leader
    knows, and the offset where it ended (the follower truncates there)."""

    leader_epoch: int
    end_offset: int


def offset_for_leader_epoch_call(
    topic: str, partition: int, leader_epoch: int, current_leader_epoch: int, replica_id: int
) -> Call[EpochEndOffset]:
    body = {
        "replica_id": replica_id,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": partition,
                        "current_leader_epoch": current_leader_epoch,
                        "leader_epoch": leader_epoch,
                    }
                ],
            }
        ],
    }

    def parse(resp: dict[str, Any] | None) -> EpochEndOffset:
        assert resp is not None
        p = _only_partition(resp["topics"], "topic", "partition", topic, partition)
        if p["error_code"]:
            raise KafkaError(
                p["error_code"], topic=topic, partition=partition, api="OffsetForLeaderEpoch"
            )
        return EpochEndOffset(int(p["leader_epoch"]), int(p["end_offset"]))

    return Call(OFFSET_FOR_LEADER_EPOCH, lambda version: body, parse)


def _only_partition(
    topics: list[dict[str, Any]], topic_key: str, part_key: str, topic: str, partition: int
) -> dict[str, Any]:
    for t in topics:
        if t[topic_key] == topic:
            for p in t["partitions"]:
                if p[part_key] == partition:
                    return dict(p)
    raise KafkaError(-1, topic=topic, partition=partition, message="no answer for it")
