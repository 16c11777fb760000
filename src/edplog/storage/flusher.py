"""Background flushing: rolled segments, and ``flush.ms`` for every log that sets it.

``ROLL_QUEUE`` receives ``(owner, segment)`` from a log's native writer each time it rolls
(``owner`` is a weak reference to the log). One thread serves every log, in roll order (a
log's recovery point may only move past a segment once every earlier one is on disk): it asks
the owner to finish the roll (``finish_roll``: fsync, producer-state snapshot, checkpoint). As in
Kafka, appends never wait for a rolled segment to reach the disk.

``FLUSH_MS`` flushes each registered log every ``flush.ms``; it keeps its own schedule and
calls only the log's public ``flush``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("edplog.storage")


class RollOwner(Protocol):
    def finish_roll(self, segment: Any) -> None: ...


class FlushTarget(Protocol):
    path: str

    @property
    def closed(self) -> bool: ...

    def flush(self) -> None: ...


class RollFlusher:
    """One daemon thread finishing every log's rolls, in order (see the module docstring)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[Callable[[], RollOwner | None] | None, Any]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="edplog-roll-flush", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            owner_ref, segment = self.queue.get()
            owner = owner_ref() if owner_ref is not None else None
            if owner is None:
                continue
            try:
                owner.finish_roll(segment)
            except Exception:  # logged by the owner; one log's failure must not stop others
                log.exception("finishing the roll of %s failed", getattr(segment, "path", "?"))
            finally:
                del owner


class FlushMs:
    """One daemon thread that applies ``flush.ms`` to every log registered with it."""

    def __init__(self) -> None:
        self._logs: weakref.WeakKeyDictionary[FlushTarget, float] = weakref.WeakKeyDictionary()
        self._intervals: weakref.WeakKeyDictionary[FlushTarget, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, target: FlushTarget, interval_ms: int) -> None:
        with self._lock:
            self._logs[target] = time.monotonic()
            self._intervals[target] = interval_ms / 1000
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="edplog-flush-ms", daemon=True
                )
                self._thread.start()

    def unregister(self, target: FlushTarget) -> None:
        with self._lock:
            self._logs.pop(target, None)
            self._intervals.pop(target, None)

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            with self._lock:
                due = [t for t, at in self._logs.items() if now - at >= self._intervals[t]]
            for target in due:
                if target.closed:
                    continue
                try:
                    target.flush()
                except Exception:
                    log.exception("%s: periodic flush failed", target.path)
                with self._lock:
                    if target in self._logs:
                        self._logs[target] = time.monotonic()


ROLL_FLUSHER = RollFlusher()
FLUSH_MS = FlushMs()
