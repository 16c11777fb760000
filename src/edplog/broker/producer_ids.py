"""Producer ids that never repeat, across restarts: InitProducerId hands them out.

Producer state is durable (each partition's snapshots), so an id handed out twice would let a
new producer inherit an old one's sequence numbers. As Kafka does, ids are reserved in blocks:
the end of the reserved block is written (atomically, fsynced) to ``producer-ids`` in the data
directory before any id of the block is used, so after a crash the next broker starts after
every id that could have been handed out. The cluster keeps the block in ZooKeeper instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from ..storage.checkpoint import write_atomically

log = logging.getLogger("edplog.broker")

FILE_NAME = "producer-ids"
BLOCK_SIZE = 1000


class ProducerIdManager:
    """Allocates producer ids from blocks reserved in ``<data dir>/producer-ids``, or, in a
    cluster, by ``reserve_block()`` (a compare-and-set in ZooKeeper: blocking, run off the
    event loop) returning a (first, end) range no other broker gets."""

    def __init__(
        self, data_dir: str, reserve_block: Callable[[], tuple[int, int]] | None = None
    ) -> None:
        self.path = os.path.join(data_dir, FILE_NAME)
        self.reserve_block = reserve_block
        self._next = self._read() if reserve_block is None else 0
        self._block_end = self._next
        self._lock = asyncio.Lock()

    def _read(self) -> int:
        try:
            with open(self.path, encoding="ascii") as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise OSError(
                f"{self.path} is unreadable ({exc}); it holds the first producer id "
                "that was never handed out: restore it, or write a number above "
                "every producer id in use"
            ) from exc

    async def allocate(self) -> int:
        """The next producer id; reserving a new block writes the file off the event loop."""
        if self._next >= self._block_end:
            async with self._lock:
                if self._next >= self._block_end:
                    loop = asyncio.get_running_loop()
                    if self.reserve_block is not None:
                        first, end = await loop.run_in_executor(None, self.reserve_block)
                        self._next = first
                    else:
                        end = self._next + BLOCK_SIZE
                        await loop.run_in_executor(None, self._reserve, end)
                    self._block_end = end
        pid = self._next
        self._next += 1
        return pid

    def _reserve(self, end: int) -> None:
        write_atomically(self.path, f"{end}\n".encode("ascii"))
