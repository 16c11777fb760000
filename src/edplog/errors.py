"""One exception tree for edplog.

Every error a Kafka client could be told about carries the Kafka error code it maps to
(``kafka_code``); the broker turns exceptions into response codes in one place with
:func:`kafka_code_of`. Storage errors carry the file ``path``, the byte ``position`` and the
record ``offset`` concerned when they are known.
"""

from __future__ import annotations


class EdplogError(Exception):
    """Base of every error edplog raises on purpose."""

    kafka_code: int = -1  # UNKNOWN_SERVER_ERROR

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


class CorruptRecordError(EdplogError):
    """A record batch failed validation: CRC, magic, lengths, record count or offsets."""

    kafka_code = 2  # CORRUPT_MESSAGE


class TruncatedRecordError(CorruptRecordError):
    """A batch ends before its announced length (expected only at a crashed log's tail)."""


class UnsupportedCodecError(CorruptRecordError):
    """A batch names a compression codec edplog does not know."""

    kafka_code = 76  # UNSUPPORTED_COMPRESSION_TYPE


class OffsetOutOfRangeError(EdplogError):
    """The offset asked for is below the log start offset or above the log end offset."""

    kafka_code = 1  # OFFSET_OUT_OF_RANGE


class RecordTooLargeError(EdplogError):
    """A batch is larger than ``max.message.bytes``."""

    kafka_code = 10  # MESSAGE_TOO_LARGE


class LogPoisonedError(EdplogError, OSError):
    """An earlier write or fsync of this segment failed; the log refuses further writes.

    The data already acknowledged is still readable; reopen the log (after fixing the disk)
    to recover to the last valid batch.
    """

    kafka_code = 56  # KAFKA_STORAGE_ERROR


class LogClosedError(EdplogError):
    """The log or store was closed."""

    kafka_code = 56  # KAFKA_STORAGE_ERROR


class UnknownTopicError(EdplogError):
    """No such topic or partition."""

    kafka_code = 3  # UNKNOWN_TOPIC_OR_PARTITION


class TopicExistsError(EdplogError):
    """A topic of that name exists already."""

    kafka_code = 36  # TOPIC_ALREADY_EXISTS


class InvalidTopicError(EdplogError):
    """A topic name Kafka would refuse (empty, too long, bad characters, '.' or '..')."""

    kafka_code = 17  # INVALID_TOPIC_EXCEPTION


class InvalidConfigError(EdplogError):
    """A configuration property with an unknown name or an invalid value."""

    kafka_code = 40  # INVALID_CONFIG


class InvalidPartitionsError(EdplogError):
    """A partition count that is not positive, or that would shrink a topic."""

    kafka_code = 37  # INVALID_PARTITIONS


def kafka_code_of(exc: BaseException) -> int:
    """The Kafka error code for ``exc``: its ``kafka_code``, or -1 (UNKNOWN_SERVER_ERROR)."""
    return getattr(exc, "kafka_code", -1) if isinstance(exc, EdplogError) else -1
