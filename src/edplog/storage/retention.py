"""Retention: which whole old segments ``retention.ms`` and ``retention.bytes`` give up.

Pure policy over a list of segments (the log applies it under its writer lock). The active
segment is never deleted; a segment goes when its newest record is older than
``retention.ms``, or while the log without it still holds at least ``retention.bytes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def segments_to_delete(
    segments: Sequence[Any], now_ms: int, retention_ms: int, retention_bytes: int
) -> list[tuple[Any, str]]:
    """The oldest segments retention deletes, with the rule that deletes each."""
    out: list[tuple[Any, str]] = []
    total = sum(s.size for s in segments)
    for seg in segments[:-1]:
        expired = retention_ms >= 0 and 0 <= seg.max_timestamp_ms < now_ms - retention_ms
        too_big = retention_bytes >= 0 and total - seg.size >= retention_bytes
        if not (expired or too_big):
            break
        total -= seg.size
        out.append((seg, "retention.ms" if expired else "retention.bytes"))
    return out
