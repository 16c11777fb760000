"""Background flushing: ``flush.ms`` for every log that sets it, and rolled segments."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .errors import EdplogError

if TYPE_CHECKING:
    from .log import Log

log = logging.getLogger("edplog.log")


class _Flusher:
    """One daemon thread that applies flush.ms to every log that sets it."""

    def __init__(self) -> None:
        self._logs: weakref.WeakSet[Log] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, log_: Log) -> None:
        with self._lock:
            self._logs.add(log_)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="edplog-flusher", daemon=True
                )
                self._thread.start()

    def unregister(self, log_: Log) -> None:
        with self._lock:
            self._logs.discard(log_)

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            with self._lock:
                logs = list(self._logs)
            for lg in logs:
                interval = lg.config["flush.ms"] / 1000
                due = getattr(lg, "_flushed_at", 0.0) + interval
                if time.monotonic() >= due and not lg.closed:
                    try:
                        lg.flush()
                        lg._flushed_at = time.monotonic()
                    except EdplogError:
                        log.exception("%s: periodic flush failed", lg.path)
                    except OSError:
                        log.exception("%s: periodic flush failed", lg.path)


_FLUSHER = _Flusher()

# fsyncs segments as logs roll them, in roll order (one thread: the recovery point of a log
# may only move past a segment once every earlier one is on disk).
ROLL_FLUSHER = ThreadPoolExecutor(1, thread_name_prefix="edplog-roll-flush")
