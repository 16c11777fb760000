"""One exception tree for edplog, and the one home of Kafka's error codes.

:class:`ErrorCode` names every Kafka protocol error code edplog answers with (the values are
the public protocol's). Every error a Kafka client could be told about carries the code it maps
to as ``kafka_code``; the broker turns exceptions into response codes in one place with
:func:`kafka_code_of`, and :func:`for_code` goes the other way (a client raising what a broker
answered). Storage errors carry the file ``path``, the byte ``position`` and the record
``offset`` concerned when they are known.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Kafka protocol error codes (the names and numbers of the protocol guide)."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    INVALID_FETCH_SIZE = 4
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    BROKER_NOT_AVAILABLE = 8
    REPLICA_NOT_AVAILABLE = 9
    MESSAGE_TOO_LARGE = 10
    STALE_CONTROLLER_EPOCH = 11
    OFFSET_METADATA_TOO_LARGE = 12
    NETWORK_EXCEPTION = 13
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    RECORD_LIST_TOO_LARGE = 18
    NOT_ENOUGH_REPLICAS = 19
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
    INVALID_REQUIRED_ACKS = 21
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    INVALID_COMMIT_OFFSET_SIZE = 28
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    CLUSTER_AUTHORIZATION_FAILED = 31
    INVALID_TIMESTAMP = 32
    UNSUPPORTED_SASL_MECHANISM = 33
    ILLEGAL_SASL_STATE = 34
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REPLICA_ASSIGNMENT = 39
    INVALID_CONFIG = 40
    NOT_CONTROLLER = 41
    INVALID_REQUEST = 42
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
    POLICY_VIOLATION = 44
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    INVALID_TXN_STATE = 48
    INVALID_PRODUCER_ID_MAPPING = 49
    INVALID_TRANSACTION_TIMEOUT = 50
    CONCURRENT_TRANSACTIONS = 51
    TRANSACTION_COORDINATOR_FENCED = 52
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    SECURITY_DISABLED = 54
    OPERATION_NOT_ATTEMPTED = 55
    KAFKA_STORAGE_ERROR = 56
    LOG_DIR_NOT_FOUND = 57
    SASL_AUTHENTICATION_FAILED = 58
    UNKNOWN_PRODUCER_ID = 59
    REASSIGNMENT_IN_PROGRESS = 60
    DELEGATION_TOKEN_AUTH_DISABLED = 61
    DELEGATION_TOKEN_NOT_FOUND = 62
    DELEGATION_TOKEN_OWNER_MISMATCH = 63
    DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = 64
    DELEGATION_TOKEN_AUTHORIZATION_FAILED = 65
    DELEGATION_TOKEN_EXPIRED = 66
    INVALID_PRINCIPAL_TYPE = 67
    NON_EMPTY_GROUP = 68
    GROUP_ID_NOT_FOUND = 69
    FETCH_SESSION_ID_NOT_FOUND = 70
    INVALID_FETCH_SESSION_EPOCH = 71
    LISTENER_NOT_FOUND = 72
    TOPIC_DELETION_DISABLED = 73
    FENCED_LEADER_EPOCH = 74
    UNKNOWN_LEADER_EPOCH = 75
    UNSUPPORTED_COMPRESSION_TYPE = 76
    STALE_BROKER_EPOCH = 77
    OFFSET_NOT_AVAILABLE = 78
    MEMBER_ID_REQUIRED = 79
    PREFERRED_LEADER_NOT_AVAILABLE = 80
    GROUP_MAX_SIZE_REACHED = 81
    FENCED_INSTANCE_ID = 82
    ELIGIBLE_LEADERS_NOT_AVAILABLE = 83
    ELECTION_NOT_NEEDED = 84
    NO_REASSIGNMENT_IN_PROGRESS = 85
    GROUP_SUBSCRIBED_TO_TOPIC = 86
    INVALID_RECORD = 87
    UNSTABLE_OFFSET_COMMIT = 88
    THROTTLING_QUOTA_EXCEEDED = 89
    PRODUCER_FENCED = 90
    RESOURCE_NOT_FOUND = 91
    DUPLICATE_RESOURCE = 92
    UNACCEPTABLE_CREDENTIAL = 93
    INCONSISTENT_VOTER_SET = 94
    INVALID_UPDATE_VERSION = 95
    FEATURE_UPDATE_FAILED = 96
    PRINCIPAL_DESERIALIZATION_FAILURE = 97
    SNAPSHOT_NOT_FOUND = 98
    POSITION_OUT_OF_RANGE = 99
    UNKNOWN_TOPIC_ID = 100
    DUPLICATE_BROKER_REGISTRATION = 101
    BROKER_ID_NOT_REGISTERED = 102
    INCONSISTENT_TOPIC_ID = 103
    INCONSISTENT_CLUSTER_ID = 104
    TRANSACTIONAL_ID_NOT_FOUND = 105
    FETCH_SESSION_TOPIC_ID_ERROR = 106
    INELIGIBLE_REPLICA = 107
    NEW_LEADER_ELECTED = 108
    OFFSET_MOVED_TO_TIERED_STORAGE = 109
    FENCED_MEMBER_EPOCH = 110
    UNRELEASED_INSTANCE_ID = 111
    UNSUPPORTED_ASSIGNOR = 112
    STALE_MEMBER_EPOCH = 113
    MISMATCHED_ENDPOINT_TYPE = 114
    UNSUPPORTED_ENDPOINT_TYPE = 115
    UNKNOWN_CONTROLLER_ID = 116
    UNKNOWN_SUBSCRIPTION_ID = 117
    TELEMETRY_TOO_LARGE = 118
    INVALID_REGISTRATION = 119
    TRANSACTION_ABORTABLE = 120
    INVALID_REGULAR_EXPRESSION = 128


class EdplogError(Exception):
    """Base of every error edplog raises on purpose."""

    kafka_code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR

    def __init__(
        self,
        message: str = "",
        *,
        path: str | None = None,
        position: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.position = position
        self.offset = offset


class KafkaError(EdplogError):
    """A broker answered with a non-zero error code (for a partition, or for the request).

    ``error_code`` is Kafka's code (also ``kafka_code``, as an ErrorCode when it is a known
    one); ``topic`` and ``partition`` say what it concerns (None for a request-level error);
    ``message`` is the broker's error message when it sent one.
    """

    def __init__(
        self,
        error_code: int,
        *,
        topic: str | None = None,
        partition: int | None = None,
        message: str | None = None,
        api: str = "",
    ) -> None:
        where = f" for {topic}-{partition}" if topic is not None else ""
        what = f"{api} " if api else ""
        text = f"{what}failed{where}: {error_name(error_code)} ({error_code})"
        if message:
            text += f": {message}"
        super().__init__(text)
        self.error_code = error_code
        self.kafka_code = for_code(error_code)
        self.topic = topic
        self.partition = partition
        self.message = message

    @property
    def name(self) -> str:
        """Kafka's name of the error code (``NOT_LEADER_OR_FOLLOWER``)."""
        return error_name(self.error_code)


# ---- storage ------------------------------------------------------------------------------


class CorruptRecordError(EdplogError):
    """A record batch failed validation: CRC, magic, lengths, record count or offsets."""

    kafka_code = ErrorCode.CORRUPT_MESSAGE


class TruncatedRecordError(CorruptRecordError):
    """A batch ends before its announced length (expected only at a crashed log's tail)."""


class UnsupportedCodecError(CorruptRecordError):
    """A batch names a compression codec edplog does not know."""

    kafka_code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


class InvalidRecordError(CorruptRecordError):
    """Records that break a rule beyond checksums (e.g. an idempotent produce of two batches)."""

    kafka_code = ErrorCode.INVALID_RECORD


class OffsetOutOfRangeError(EdplogError):
    """The offset asked for is below the log start offset or above the log end offset."""

    kafka_code = ErrorCode.OFFSET_OUT_OF_RANGE


class RecordTooLargeError(EdplogError):
    """A batch is larger than ``max.message.bytes``."""

    kafka_code = ErrorCode.MESSAGE_TOO_LARGE


class StorageError(EdplogError, OSError):
    """The disk failed a write or fsync, or a partition is offline because of damage."""

    kafka_code = ErrorCode.KAFKA_STORAGE_ERROR


class LogPoisonedError(StorageError):
    """An earlier write or fsync of this segment failed; the log refuses further writes.

    The data already acknowledged is still readable; reopen the log (after fixing the disk)
    to recover to the last valid batch.
    """


class LogClosedError(EdplogError):
    """The log or store was closed."""

    kafka_code = ErrorCode.KAFKA_STORAGE_ERROR


class PartitionOfflineError(StorageError):
    """A partition could not be opened (damaged data, a missing segment): it is offline
    until an operator repairs it; the broker and every other partition keep serving."""


# ---- idempotent producers -----------------------------------------------------------------


class NotLeaderError(EdplogError):
    """This broker does not lead the partition (in a cluster: another broker does, or none
    does right now); clients refresh their metadata and retry."""

    kafka_code = ErrorCode.NOT_LEADER_OR_FOLLOWER


class UnknownLeaderEpochError(NotLeaderError):
    """The request names a leader epoch newer than this broker's replica knows: the new
    state has reached the sender first. Asked again soon, this broker will know it."""

    kafka_code = ErrorCode.UNKNOWN_LEADER_EPOCH


class FencedLeaderEpochError(NotLeaderError):
    """The request names a leader epoch older than this broker's replica knows: the sender
    has stale metadata."""

    kafka_code = ErrorCode.FENCED_LEADER_EPOCH


class DuplicateSequenceError(EdplogError):
    """The batch was appended before; the client is told its original offsets."""

    kafka_code = ErrorCode.DUPLICATE_SEQUENCE_NUMBER

    def __init__(self, base_offset: int, last_offset: int = -1) -> None:
        super().__init__(f"duplicate batch, first stored at offset {base_offset}")
        self.base_offset = base_offset
        self.last_offset = last_offset


class OutOfOrderSequenceError(EdplogError):
    """A gap in an idempotent producer's sequence numbers."""

    kafka_code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


class InvalidProducerEpochError(EdplogError):
    """The producer was fenced by a newer epoch of the same producer id."""

    kafka_code = ErrorCode.INVALID_PRODUCER_EPOCH


# ---- topics and configuration -------------------------------------------------------------


class UnknownTopicError(EdplogError):
    """No such topic or partition."""

    kafka_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


class TopicExistsError(EdplogError):
    """A topic of that name exists already."""

    kafka_code = ErrorCode.TOPIC_ALREADY_EXISTS


class InvalidTopicError(EdplogError):
    """A topic name Kafka would refuse (empty, too long, bad characters, '.' or '..'), or a
    write to an internal topic."""

    kafka_code = ErrorCode.INVALID_TOPIC_EXCEPTION


class InvalidConfigError(EdplogError):
    """A configuration property with an unknown name or an invalid value."""

    kafka_code = ErrorCode.INVALID_CONFIG


class InvalidPartitionsError(EdplogError):
    """A partition count that is not positive, or that would shrink a topic."""

    kafka_code = ErrorCode.INVALID_PARTITIONS


class InvalidReplicationFactorError(EdplogError):
    """A replication factor that is not positive or exceeds the brokers available."""

    kafka_code = ErrorCode.INVALID_REPLICATION_FACTOR


class InvalidReplicaAssignmentError(EdplogError):
    """An explicit replica assignment that names a broker twice, an unknown broker, or
    partitions of different replication factors."""

    kafka_code = ErrorCode.INVALID_REPLICA_ASSIGNMENT


class InvalidRequestError(EdplogError):
    """A request that is well formed but asks for something invalid."""

    kafka_code = ErrorCode.INVALID_REQUEST


_VALUES = frozenset(int(c) for c in ErrorCode)


def kafka_code_of(exc: BaseException) -> ErrorCode:
    """The Kafka error code for ``exc``: its ``kafka_code``, or UNKNOWN_SERVER_ERROR."""
    if isinstance(exc, EdplogError):
        return exc.kafka_code
    return ErrorCode.UNKNOWN_SERVER_ERROR


def for_code(code: int) -> ErrorCode:
    """The ErrorCode for a numeric code (UNKNOWN_SERVER_ERROR for one not known)."""
    return ErrorCode(code) if code in _VALUES else ErrorCode.UNKNOWN_SERVER_ERROR


def error_name(code: int) -> str:
    """``UNKNOWN_TOPIC_OR_PARTITION`` for 3; ``error code N`` for a code not known."""
    return ErrorCode(code).name if code in _VALUES else f"error code {code}"


def error_for_code(code: int, message: str = "") -> EdplogError:
    """The exception for an error code a broker answered: the edplog class that carries it
    (the most general one), else a KafkaError with the code."""
    cls = _classes_by_code().get(int(code))
    if cls is None:
        return KafkaError(code, message=message or None)
    return cls(message or error_name(code))


def _classes_by_code() -> dict[int, type[EdplogError]]:
    table: dict[int, type[EdplogError]] = {}
    pending: list[type[EdplogError]] = [EdplogError]
    while pending:
        cls = pending.pop(0)
        table.setdefault(int(cls.kafka_code), cls)
        pending.extend(cls.__subclasses__())
    for special in (EdplogError, DuplicateSequenceError):
        table.pop(int(special.kafka_code), None)
    return table
