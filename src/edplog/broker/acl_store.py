"""The broker's ACLs: the authorizer in force and ``acls.json`` in the data dir behind it.

Changes (CreateAcls, DeleteAcls) are serialised, written to disk and only then put in force,
so an answered change survives a restart and a failed write changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable

from ..security.acl import AclAuthorizer, AclBinding
from .config import BrokerConfig
from .quotas import JsonStateFile

ACLS_FILE = "acls.json"


class AclStore:
    """The ACL table of a single broker, persisted in ``acls.json``."""

    def __init__(self, config: BrokerConfig) -> None:
        self.file = JsonStateFile(os.path.join(config.data_dir, ACLS_FILE))
        self.authorizer = AclAuthorizer(
            super_users=config.super_users,
            allow_if_no_acl=config.allow_everyone_if_no_acl_found,
        )
        self._lock = asyncio.Lock()

    def load(self) -> None:
        data = self.file.load()
        if data is not None:
            self.authorizer.replace(AclAuthorizer.from_json(data["acls"]))

    async def change(
        self, make: Callable[[tuple[AclBinding, ...]], Iterable[AclBinding]]
    ) -> tuple[AclBinding, ...]:
        """Put ``make(current ACLs)`` in force once it is on disk; the new table."""
        async with self._lock:
            new = tuple(dict.fromkeys(make(self.authorizer.acls)))
            document = {"version": 0, "acls": [a.to_json() for a in new]}
            await asyncio.get_running_loop().run_in_executor(None, self.file.save, document)
            self.authorizer.replace(new)
            return new
