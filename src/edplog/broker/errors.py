"""The one place where exceptions become Kafka error codes.

Handlers never pick numeric codes for failures themselves: they catch, call
:func:`error_code`, and put the result in the response. An exception edplog did not raise on
purpose is a bug; it is logged with its traceback and reported as UNKNOWN_SERVER_ERROR (-1)
so one bad request never takes the broker down.
"""

from __future__ import annotations

import logging

from ..errors import EdplogError, kafka_code_of

log = logging.getLogger("edplog.broker")

NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
COORDINATOR_NOT_AVAILABLE = 15
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUIRED_ACKS = 21
UNSUPPORTED_VERSION = 35
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REQUEST = 42
INVALID_CONFIG = 40
INVALID_TRANSACTION_TIMEOUT = 50
POLICY_VIOLATION = 44
UNKNOWN_SERVER_ERROR = -1
TOPIC_AUTHORIZATION_FAILED = 29
INVALID_RECORD = 87


def error_code(exc: BaseException) -> int:
    """The Kafka error code to answer for ``exc`` (logging it when it is unexpected)."""
    if isinstance(exc, EdplogError):
        return kafka_code_of(exc)
    if isinstance(exc, (ValueError, TypeError)):
        log.info("invalid request field: %s", exc)
        return INVALID_REQUEST
    log.error("unexpected error while serving a request", exc_info=exc)
    return UNKNOWN_SERVER_ERROR


def error_message(exc: BaseException) -> str:
    """A short message for the response's error_message field."""
    return str(exc) or type(exc).__name__
