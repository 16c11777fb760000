"""A clustered broker's ACLs and SCRAM credentials: the cluster's, in ZooKeeper.

The same interface as the single node's stores (``acls.json``, ``scram-credentials.json`` in
the data dir), backed by cluster/zk_security.py. A change is written to ZooKeeper (off the
event loop) and put in force here once written. Every broker also reads the whole table
again whenever a change notification appears (a change made through any broker), and puts
that read in force unless a change of its own completed while it was reading: that change's
own notification brings a newer read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from ..cluster import zk_security
from ..cluster.zk import ZkClient
from ..security.acl import AclBinding
from ..security.scram import ScramCredentials
from .acl_store import AclStore
from .config import BrokerConfig
from .quotas import CredentialStore


class _Generation:
    """Counts this broker's own completed changes (read and bumped on the event loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.count = 0

    def apply_if_unchanged(self, seen: int, apply: Callable[[], None]) -> None:
        """From any thread: run ``apply`` on the loop unless a change completed since
        ``seen``."""

        def run() -> None:
            if self.count == seen:
                apply()

        self.loop.call_soon_threadsafe(run)


class ZkAclStore(AclStore):
    """The cluster's ACL table (see the module docstring)."""

    def __init__(self, config: BrokerConfig, zk: ZkClient, loop: asyncio.AbstractEventLoop):
        super().__init__(config)
        self.zk = zk
        self._generation = _Generation(loop)

    def load(self) -> None:
        """Read the table and watch for changes (blocking: call it off the event loop)."""
        acls, _ = zk_security.read_acls(self.zk)
        self.authorizer.replace(acls)
        # the watch lasts as long as the ZooKeeper session, which ends with the broker
        zk_security.watch_acls(self.zk, self._changed)

    def _changed(self) -> None:  # a kazoo thread
        seen = self._generation.count
        acls, _ = zk_security.read_acls(self.zk)
        self._generation.apply_if_unchanged(seen, lambda: self.authorizer.replace(acls))

    async def change(
        self, make: Callable[[tuple[AclBinding, ...]], Iterable[AclBinding]]
    ) -> tuple[AclBinding, ...]:
        async with self._lock:
            loop = asyncio.get_running_loop()
            new = await loop.run_in_executor(None, zk_security.change_acls, self.zk, make)
            self._generation.count += 1
            self.authorizer.replace(new)
            return new


class ZkCredentialStore(CredentialStore):
    """The cluster's SCRAM credentials (see the module docstring)."""

    def __init__(self, data_dir: str, zk: ZkClient, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(data_dir)
        self.zk = zk
        self._generation = _Generation(loop)

    def load(self) -> None:
        self.credentials, _ = zk_security.read_credentials(self.zk)
        zk_security.watch_credentials(self.zk, self._changed)  # as long as the session

    def _changed(self) -> None:  # a kazoo thread
        seen = self._generation.count
        table, _ = zk_security.read_credentials(self.zk)
        self._generation.apply_if_unchanged(seen, lambda: self._set(table))

    def _set(self, table: ScramCredentials) -> None:
        self.credentials = table

    async def replace(self, make: Any) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            new = await loop.run_in_executor(None, zk_security.change_credentials, self.zk, make)
            self._generation.count += 1
            self.credentials = new
