"""Periodic log maintenance of the broker: retention, compaction and producer-id expiry.

Every ``log.retention.check.interval.ms`` (Kafka's name, default 5 minutes) each log deletes
the whole segments its ``retention.ms`` / ``retention.bytes`` no longer keep, compacted topics
are cleaned, and producers idle for ``producer.id.expiration.ms`` are forgotten. The work runs
on a worker thread (file I/O, and compaction decodes batches), each partition on its own: one
that fails is logged and the others go on (:meth:`edplog.storage.LogManager.housekeeping`).
"""

from __future__ import annotations

import asyncio
import functools
import logging

from ..storage import Store
from .config import BrokerConfig

log = logging.getLogger("edplog.broker.housekeeping")

DEFAULT_INTERVAL_MS = 300_000


async def run_housekeeping(store: Store, config: BrokerConfig) -> None:
    """Run a housekeeping pass every ``log.retention.check.interval.ms`` until cancelled."""
    loop = asyncio.get_running_loop()
    pass_ = functools.partial(
        store.manager.housekeeping,
        producer_expiration_ms=config.producer_id_expiration_ms,
        compact=config.log_cleaner_enable,
        dedupe_buffer_bytes=config.log_cleaner_dedupe_buffer_size,
    )
    while True:
        await asyncio.sleep(config.retention_check_interval_ms / 1000)
        try:
            result = await loop.run_in_executor(None, pass_)
        except Exception:  # a bug in the pass itself: the next one still runs
            log.exception("housekeeping pass failed")
            continue
        if result.segments_deleted:
            log.info("retention deleted %d segments", result.segments_deleted)
        if result.failures:
            log.warning("housekeeping: %d partition task(s) failed (logged above)", result.failures)
