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

from ..errors import EdplogError, ErrorCode, KafkaError, error_name

__all__ = [
    "BrokerConnectionError",
    "ClientError",
    "ConnectionClosedError",
    "KafkaError",
    "RequestTimeoutError",
    "error_name",
]


class ClientError(EdplogError):
    """Base of every error the client raises on purpose (besides KafkaError)."""


class BrokerConnectionError(ClientError, ConnectionError):
    """The connection to the broker could not be made, or broke; the client is closed."""

    kafka_code = ErrorCode.NETWORK_EXCEPTION


class ConnectionClosedError(BrokerConnectionError):
    """The broker closed the connection (before or while sending a response)."""


class RequestTimeoutError(BrokerConnectionError, TimeoutError):
    """No complete response within the read timeout (plus the fetch's ``max_wait_ms``).

    As in Kafka's clients, a request that timed out ends the connection: its response may
    still arrive and would be taken for the next request's.
    """

    kafka_code = ErrorCode.REQUEST_TIMED_OUT


class AuthenticationError(BrokerConnectionError):
    """The broker refused this connection's TLS handshake or SASL login."""
