"""Periodic log maintenance of the broker: retention and compaction.

Every ``log.retention.check.interval.ms`` (Kafka's name, default 5 minutes) each log deletes
the whole segments its ``retention.ms`` / ``retention.bytes`` no longer keep, and compacted
topics are cleaned. The work runs on a worker thread: it does file I/O and, for compaction,
decodes batches, which must not stall the event loop. Fetches that are sending from a segment
being deleted keep reading it through their open descriptor.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..storage import Store

log = logging.getLogger("edplog.broker.housekeeping")

DEFAULT_INTERVAL_MS = 300_000


async def run_housekeeping(store: Store, interval_ms: int) -> None:
    """Apply retention and compaction every interval_ms until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_ms / 1000)
        try:
            deleted = await loop.run_in_executor(None, store.enforce_retention)
        except Exception:  # a damaged log must not stop maintenance of the others
            log.exception("retention pass failed")
            continue
        if deleted:
            log.info("retention deleted %d segments", deleted)
