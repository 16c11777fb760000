"""The audit chain's records: how one is written as a line that carries the hash of the
record before it (audit.py's docstring says why), and how a line is read back and checked.
Shared by the file's writer (audit.py), the topic's (audit_topic.py) and the verifier
(audit_verify.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

STARTED = "io.edplog.audit.started"
DROPPED = "io.edplog.audit.dropped"

_HASH_FIELD = b',"hash":"'
_HEX = re.compile(rb"[0-9a-f]{64}")


class Chain:
    """Hashes lines: SHA-256, or HMAC-SHA256 with a key."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.algorithm = "sha256" if key is None else "hmac-sha256"

    def digest(self, data: bytes) -> str:
        if self.key is None:
            return hashlib.sha256(data).hexdigest()
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def line(self, record: dict[str, Any]) -> bytes:
        """``record`` (without ``hash``) as one line, with its hash as the last field."""
        body = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        assert body.endswith(b"}")
        prefix = body[:-1]
        return prefix + _HASH_FIELD + self.digest(prefix).encode() + b'"}\n'


def record_line(
    chain: Chain,
    source: str,
    sequence: int,
    prevhash: str,
    kind: str,
    at: float,
    data: dict[str, Any],
) -> bytes:
    """One record of the chain as a line (with its newline): number ``sequence``, after the
    record whose hash is ``prevhash``."""
    record = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": kind,
        "time": rfc3339(at),
        "datacontenttype": "application/json",
        "sequence": sequence,
        "hashalg": chain.algorithm,
        "prevhash": prevhash,
        "data": data,
    }
    return chain.line(record)


def hash_of(line: bytes) -> str:
    """The hash a line built by :meth:`Chain.line` ends with."""
    return line[-67:-3].decode()


def split_line(line: bytes) -> tuple[bytes, str] | None:
    """(the hashed prefix, the stated hash) of a whole line, or None when it is not shaped
    like a record."""
    at = line.rfind(_HASH_FIELD)
    if at < 0 or not line.endswith(b'"}'):
        return None
    stated = line[at + len(_HASH_FIELD) : -2]
    if not _HEX.fullmatch(stated):
        return None
    return line[:at], stated.decode()


def rfc3339(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def checked(line: bytes, chain: Chain) -> tuple[int, str] | None:
    """(sequence, hash) of a record hashed as ``chain`` hashes, else None."""
    parts = split_line(line)
    record = parse_record(line) if parts is not None else None
    if parts is None or record is None or record.get("hashalg") != chain.algorithm:
        return None
    if chain.digest(parts[0]) != parts[1]:
        return None
    return int(record["sequence"]), parts[1]


def parse_record(line: bytes) -> dict[str, Any] | None:
    """The record on ``line`` when it has the chain's fields, else None."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("sequence"), int):
        return None
    if not isinstance(record.get("prevhash"), str) or not isinstance(record.get("hash"), str):
        return None
    return record
