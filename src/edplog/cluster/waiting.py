"""Polling with a deadline: the wait loop the cluster code shares.

Registering while a previous incarnation's session lingers, waiting for metadata to reach
the cache, for ZooKeeper to answer, for a local cluster's brokers to list each other: each
asks one question again and again until it is answered or time is up, and then says in its
own words what did not happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    ready: Callable[[], bool],
    timeout_s: float,
    interval_s: float,
    *,
    on_wait: Callable[[], None] | None = None,
) -> bool:
    """Call ``ready()`` until it returns True (then True), or until ``timeout_s`` has passed
    since the call (then False: the caller raises its own error). Between two calls it runs
    ``on_wait()`` if given, then sleeps ``interval_s``. An exception from ``ready`` ends the
    wait (a process that exited, say)."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            return False
        if on_wait is not None:
            on_wait()
        time.sleep(interval_s)
    return True
