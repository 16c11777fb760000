"""Build and decode Kafka RecordBatch v2 buffers.

>>> from edplog.records import build_batch, decode_batches
>>> raw = build_batch([(b"k", b"v"), (None, b"w")], compression="lz4")
>>> [r.value for r in decode_batches(raw)[0].records]
[b'v', b'w']

A record to build is a ``Record``, a mapping with ``value`` (and optionally ``key``,
``headers``, ``timestamp_ms``), or a ``(key, value)`` / ``(key, value, headers)`` tuple.
Codecs: none, gzip, snappy, lz4, zstd (see :mod:`edplog.records.codecs`).

This package is the one owner of the RecordBatch layout above the C core: ``batch_header``
reads every header field of a batch (no CRC check), ``whole_batches`` says how long the prefix
of whole batches in a buffer is, and nothing above it reads batch bytes by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._native import (
    Batch,
    BatchBuilder,
    BatchHeader,
    Record,
    announced_batch_bytes,
    assign_offsets,
    batch_header,
    batch_headers,
    decode_batches,
    epoch_starts,
    scan_batches,
    whole_batches,
)
from .codecs import codec_id

__all__ = [
    "Batch",
    "BatchBuilder",
    "BatchHeader",
    "Record",
    "announced_batch_bytes",
    "assign_offsets",
    "batch_header",
    "batch_headers",
    "build_batch",
    "decode_batches",
    "decode_records",
    "epoch_starts",
    "scan_batches",
    "whole_batches",
]


def build_batch(
    records: Iterable[Any],
    compression: str | int | None = None,
    *,
    base_offset: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
) -> bytes:
    """One RecordBatch v2 holding records, compressed with the named codec."""
    builder = BatchBuilder()
    for rec in records:
        if isinstance(rec, Record):
            builder.append(rec.value, rec.key, rec.headers, rec.timestamp_ms)
        elif isinstance(rec, Mapping):
            builder.append(
                rec.get("value"), rec.get("key"), rec.get("headers"), rec.get("timestamp_ms")
            )
        else:
            key, value, *rest = rec
            headers = rest[0] if rest else None
            builder.append(value, key, headers, rest[1] if len(rest) > 1 else None)
    return builder.build(
        codec_id(compression),
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        transactional=transactional,
    )


def decode_records(buf: Any) -> list[Record]:
    """Every record of every batch in buf (CRC checked)."""
    return [r for batch in decode_batches(buf) for r in batch.records]
