"""Group commit: fsyncs on one background thread, shared by every request waiting meanwhile.

acks=-1 produces and offset commits are answered only once their records are on disk. A
request joins the flush that has not started yet; while one flush runs, the next gathers every
later request: one fsync per log per round, however many producers and consumers wait, and
the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol


class Flushable(Protocol):
    def flush(self) -> None: ...


class GroupCommit:
    """Flushes logs on one background thread (see the module docstring).

    ``observe(seconds)``, when given, is called with the duration of each flush round (the
    metrics registry's flush latency).
    """

    def __init__(self, observe: Any = None) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="edplog-flush")
        self._pending: dict[int, Flushable] = {}
        self._waiters: list[tuple[asyncio.Future[None], list[int]]] = []
        self._running: asyncio.Task[None] | None = None
        self._observe = observe

    async def flush(self, logs: list[Flushable]) -> None:
        """Return once every log in ``logs`` was flushed after this call began; raise what
        the flush of one of them raised (a full disk: LogPoisonedError / OSError)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        for log_ in logs:
            self._pending[id(log_)] = log_
        self._waiters.append((fut, [id(log_) for log_ in logs]))
        if self._running is None:
            self._running = loop.create_task(self._run())
        await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiters:
                logs, self._pending = list(self._pending.values()), {}
                waiters, self._waiters = self._waiters, []
                started = time.perf_counter()
                try:
                    failures = await loop.run_in_executor(self._executor, _flush_all, logs)
                except Exception as exc:  # the executor itself failed
                    failures = {id(log_): exc for log_ in logs}
                if self._observe is not None:
                    self._observe(time.perf_counter() - started)
                for fut, ids in waiters:
                    if fut.done():
                        continue
                    failed = next((failures[i] for i in ids if i in failures), None)
                    if failed is not None:
                        fut.set_exception(failed)
                    else:
                        fut.set_result(None)
        finally:
            self._running = None

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.wait([self._running])
        self._executor.shutdown(wait=True)


def _flush_all(logs: list[Flushable]) -> dict[int, BaseException]:
    """Flush each log; one that fails does not keep the others from being flushed."""
    failures: dict[int, BaseException] = {}
    for log_ in logs:
        try:
            log_.flush()
        except Exception as exc:
            failures[id(log_)] = exc
    return failures
