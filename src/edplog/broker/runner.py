"""Ways to run a broker: in the foreground until a signal, or on a background thread.

The background form is what the pytest fixture and embedding applications use: the broker
gets its own thread and event loop, so it keeps serving while the caller blocks in a
synchronous Kafka client.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import Any

from .broker import Broker
from .config import BrokerConfig


async def serve(config: BrokerConfig, ready: Any = None) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully. ``ready(host, port)`` is called
    once the broker accepts connections."""
    broker = Broker(config)
    host, port = await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(host, port)
    waits = [loop.create_task(stop.wait()), loop.create_task(broker.fatal.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await broker.stop()
    return 1 if broker.fatal.is_set() else 0


class BackgroundBroker:
    """A broker on its own thread and event loop; ``start()`` returns once it listens.

    >>> with BackgroundBroker(BrokerConfig(data_dir=tmp, port=0)) as b:  # doctest: +SKIP
    ...     produce_to(b.bootstrap)
    """

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.broker: Broker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stopped: asyncio.Future[None] | None = None

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` to give clients as bootstrap servers."""
        host, port = self.config.advertised
        return f"{host}:{port}"

    def bootstrap_for(self, listener: str) -> str:
        """The ``host:port`` of the listener named ``listener`` (``"SSL"``, say), once started."""
        name = listener.upper()
        if name not in [lc.name for lc in self.config.client_listeners()]:
            raise KeyError(f"no listener {listener}")
        host, port = self.config.advertised_for(name)
        return f"{host}:{port}"

    def start(self, timeout_s: float = 30.0) -> BackgroundBroker:
        self._thread = threading.Thread(target=self._run, name="edplog-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise TimeoutError("the broker did not start in time")
        if self._error is not None:
            raise RuntimeError("the broker failed to start") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.get_running_loop().create_future()
        try:
            self.broker = Broker(self.config)
            await self.broker.start()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        stopped: asyncio.Future[Any] = self._stopped
        fatal: asyncio.Future[Any] = asyncio.ensure_future(self.broker.fatal.wait())
        await asyncio.wait([stopped, fatal], return_when=asyncio.FIRST_COMPLETED)
        fatal.cancel()
        await self.broker.stop()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful stop: in-flight requests are answered, logs flushed, store closed."""
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_finish, stopped)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                print("edplog: broker thread did not stop in time", file=sys.stderr)

    def __enter__(self) -> BackgroundBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _finish(stopped: asyncio.Future[None]) -> None:
    if not stopped.done():
        stopped.set_result(None)
