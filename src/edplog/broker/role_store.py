"""The broker's role bindings and group membership, kept in force in its authorizer.

The bindings live in ``role-bindings.json`` beside ``acls.json`` in the data directory;
``edplog security role-bindings add|remove`` (or :mod:`edplog.security.roles`) rewrites that
file atomically, and the broker re-reads it when it changes (checked every
``authorizer.roles.reload.interval.ms``, like the TLS key store reload): the command needs no
network API of its own to secure, and a binding added while the broker is down is in force at
its start. ``authorizer.groups.file`` is checked on the same tick; LDAP groups are read by
their own thread (security/groups.py). Every change drops the authorizer's cached decisions.

A clustered broker's bindings are the cluster's, in ZooKeeper (``/edplog/role-bindings``,
cluster/zk_security.py; :class:`ZkRoleStore`), watched by every broker, so a binding added
through any of them (``edplog security role-bindings add --zookeeper ...``) is in force on
all. Its groups come from its own settings, as on a single node. A ``role-bindings.json``
left in a clustered broker's data directory stops the start: it would not be read.
"""

from __future__ import annotations

import asyncio
import logging
import os

from ..cluster import zk_security
from ..cluster.zk import ZkClient
from ..errors import InvalidConfigError
from ..security.acl import AclAuthorizer
from ..security.groups import FileGroups, LdapGroups
from ..security.roles import RoleBinding, RoleError, bindings_path, read_bindings
from .config import BrokerConfig

log = logging.getLogger("edplog.broker")

_Stamp = tuple[int, int, int] | None


def _stamp(path: str) -> _Stamp:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class RoleStore:
    """Loads the role bindings and the group source into ``authorizer`` and follows them."""

    def __init__(self, config: BrokerConfig, authorizer: AclAuthorizer) -> None:
        self.path = str(bindings_path(config.data_dir))
        self.settings = config.roles
        self.authorizer = authorizer
        self.file_groups: FileGroups | None = None
        self.ldap_groups: LdapGroups | None = None
        self._stamp: _Stamp = None
        self._task: asyncio.Task[None] | None = None
        self.follows_file = True

    def _read_bindings(self) -> tuple[RoleBinding, ...]:
        self._stamp = _stamp(self.path)
        return read_bindings(self.path)

    def load(self) -> None:
        """Read the bindings and the groups file (blocking); a file that cannot be read
        stops the start (a broker must not guess who may do what)."""
        try:
            bindings = self._read_bindings()
        except RoleError as exc:
            raise InvalidConfigError(str(exc)) from None
        self.authorizer.replace_bindings(bindings)
        if self.settings.groups_file is not None:
            try:
                self.file_groups = FileGroups(self.settings.groups_file)
            except ValueError as exc:
                raise InvalidConfigError(str(exc)) from None
            self.authorizer.set_groups(self.file_groups)
        if bindings:
            log.info("%d role bindings in force (%s)", len(bindings), self.path)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.settings.ldap is not None:
            authorizer = self.authorizer

            def changed() -> None:  # from the LDAP thread: the cache belongs to the loop
                loop.call_soon_threadsafe(authorizer.groups_changed)

            self.ldap_groups = LdapGroups(self.settings.ldap, on_change=changed)
            authorizer.set_groups(self.ldap_groups)
            self.ldap_groups.start()
        self._task = loop.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.ldap_groups is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.ldap_groups.stop)

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        interval_s = self.settings.reload_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                bindings, groups_changed = await loop.run_in_executor(None, self._check)
            except Exception:
                log.exception("role bindings and groups not re-read")
                continue
            if bindings is not None:
                self.authorizer.replace_bindings(bindings)
                log.info("role bindings re-read: %d in force", len(bindings))
            if groups_changed:
                self.authorizer.groups_changed()
                log.info("authorizer.groups.file re-read")

    def _check(self) -> tuple[tuple[RoleBinding, ...] | None, bool]:
        """(the new bindings, or None when the file did not change; whether the groups file
        changed the membership). A damaged file keeps the bindings in force (logged)."""
        bindings = None
        stamp = _stamp(self.path)
        if self.follows_file and stamp != self._stamp:
            try:
                bindings = read_bindings(self.path)
                self._stamp = stamp
            except RoleError as exc:
                log.error("role bindings not re-read (those in force stay): %s", exc)
        groups_changed = self.file_groups is not None and self.file_groups.refresh()
        return bindings, groups_changed


class ZkRoleStore(RoleStore):
    """A clustered broker's role bindings: the cluster's, in ZooKeeper (module docstring)."""

    def __init__(
        self,
        config: BrokerConfig,
        authorizer: AclAuthorizer,
        zk: ZkClient,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(config, authorizer)
        self.zk = zk
        self.loop = loop
        self.follows_file = False

    def _read_bindings(self) -> tuple[RoleBinding, ...]:
        if read_bindings(self.path):
            raise RoleError(
                f"{self.path}: a clustered broker's role bindings are the cluster's, in "
                "ZooKeeper; add them with edplog security role-bindings add --zookeeper "
                "<zookeeper.connect> (or --config), then remove this file"
            )
        bindings, _ = zk_security.read_role_bindings(self.zk)
        # the watch lasts as long as the ZooKeeper session, which ends with the broker
        zk_security.watch_role_bindings(self.zk, self._changed)
        return bindings

    def _changed(self, bindings: tuple[RoleBinding, ...]) -> None:  # a kazoo thread
        def apply() -> None:
            self.authorizer.replace_bindings(bindings)
            log.info("role bindings changed in ZooKeeper: %d in force", len(bindings))

        self.loop.call_soon_threadsafe(apply)
