"""What the client raises: a broker's error code, or a connection that failed.

Both descend from :class:`edplog.errors.EdplogError`. A :class:`KafkaError` carries the Kafka
error code the broker answered (``error_code``, also as ``kafka_code`` so
:func:`edplog.errors.kafka_code_of` reads it) and the topic and partition it concerns. A
connection that cannot be made, is closed by the broker or times out raises a
:class:`BrokerConnectionError`, which is also a built-in :class:`ConnectionError`, so code that
already handles socket failures handles these too. After any connection error the client is
closed: the byte stream may have stopped in the middle of a frame, so it cannot be reused.
"""

from __future__ import annotations

from ..errors import EdplogError

#: Names of the Kafka error codes the client's calls can meet (Kafka protocol guide, "Error
#: Codes"); only used to make messages readable: the code itself is what callers test.
ERROR_NAMES: dict[int, str] = {
    -1: "UNKNOWN_SERVER_ERROR",
    0: "NONE",
    1: "OFFSET_OUT_OF_RANGE",
    2: "CORRUPT_MESSAGE",
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    4: "INVALID_FETCH_SIZE",
    5: "LEADER_NOT_AVAILABLE",
    6: "NOT_LEADER_OR_FOLLOWER",
    7: "REQUEST_TIMED_OUT",
    8: "BROKER_NOT_AVAILABLE",
    9: "REPLICA_NOT_AVAILABLE",
    10: "MESSAGE_TOO_LARGE",
    13: "NETWORK_EXCEPTION",
    17: "INVALID_TOPIC_EXCEPTION",
    18: "RECORD_LIST_TOO_LARGE",
    19: "NOT_ENOUGH_REPLICAS",
    20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    21: "INVALID_REQUIRED_ACKS",
    29: "TOPIC_AUTHORIZATION_FAILED",
    35: "UNSUPPORTED_VERSION",
    42: "INVALID_REQUEST",
    45: "OUT_OF_ORDER_SEQUENCE_NUMBER",
    46: "DUPLICATE_SEQUENCE_NUMBER",
    47: "INVALID_PRODUCER_EPOCH",
    56: "KAFKA_STORAGE_ERROR",
    74: "FENCED_LEADER_EPOCH",
    75: "UNKNOWN_LEADER_EPOCH",
    76: "UNSUPPORTED_COMPRESSION_TYPE",
    78: "OFFSET_NOT_AVAILABLE",
    87: "INVALID_RECORD",
}


def error_name(code: int) -> str:
    """``UNKNOWN_TOPIC_OR_PARTITION`` for 3; ``error code N`` for a code not in the table."""
    return ERROR_NAMES.get(code, f"error code {code}")


class ClientError(EdplogError):
    """Base of every error the client raises on purpose."""


class KafkaError(ClientError):
    """The broker answered with a non-zero error code (for a partition, or for the request).

    ``error_code`` is Kafka's code; ``topic`` and ``partition`` say what it concerns (None
    for a request-level error); ``message`` is the broker's error message when it sent one.
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
        self.kafka_code = error_code
        self.topic = topic
        self.partition = partition
        self.message = message

    @property
    def name(self) -> str:
        """Kafka's name of the error code (``NOT_LEADER_OR_FOLLOWER``)."""
        return error_name(self.error_code)


class BrokerConnectionError(ClientError, ConnectionError):
    """The connection to the broker could not be made, or broke; the client is closed."""

    kafka_code = 13  # NETWORK_EXCEPTION


class ConnectionClosedError(BrokerConnectionError):
    """The broker closed the connection (before or while sending a response)."""


class RequestTimeoutError(BrokerConnectionError, TimeoutError):
    """No complete response within the read timeout (plus the fetch's ``max_wait_ms``).

    As in Kafka's clients, a request that timed out ends the connection: its response may
    still arrive and would be taken for the next request's.
    """

    kafka_code = 7  # REQUEST_TIMED_OUT
