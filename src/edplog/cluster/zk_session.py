"""A ZooKeeper session (kazoo) and the watch recipes the cluster code uses.

:class:`ZkSession` connects (creating the chroot and the base paths of edplog's layout),
hands kazoo's state changes to listeners on a thread of its own (they may call ZooKeeper;
kazoo's own listeners may not), and re-delivers what registered for a new session after an
expiry. Watches are kazoo's DataWatch / ChildrenWatch recipes, which re-register themselves
after a session expiry, so a watcher sees the latest data again; watch callbacks run on
kazoo's callback thread. The paths and encodings are in zk_codec.py; what edplog reads and
writes through a session is :class:`.zk.ZkClient`.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.protocol.states import KazooState
from kazoo.security import CREATOR_ALL_ACL, READ_ACL_UNSAFE

from .zk_codec import BASE_PATHS, CONTROLLER_EPOCH, _split_chroot

log = logging.getLogger("edplog.cluster")


class WatchHandle:
    """A registered watch; cancel() stops it at its next notification (kazoo's recipes stop
    when their function returns False). ``cancelled`` is also set when a watch ended by
    itself (its znode was deleted)."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def run_watcher(cb: Callable[..., None], *args: Any) -> None:
    """cb(*args), logging what it raises: an exception in a watcher must not stop kazoo's
    callback thread or the recipe."""
    try:
        cb(*args)
    except Exception:
        log.exception("zookeeper watch callback failed")


#: Znodes that hold secrets (SCRAM keys): with zookeeper.set.acl no one but their creator
#: may even read them, as Kafka marks /config/users.
SENSITIVE_PATHS = ("/config/users",)


class _Handler(SequentialThreadingHandler):  # type: ignore[misc]
    """kazoo's threading handler with connections made from one local address (when given)
    and over TLS with this client's own context (when given): the context is built from
    the broker's ``zookeeper.ssl.*`` settings, not from kazoo's file arguments."""

    def __init__(self, source_host: str | None, tls: ssl.SSLContext | None) -> None:
        super().__init__()
        self.source_host = source_host
        self.tls = tls

    def create_connection(self, *args: Any, **kwargs: Any) -> socket.socket:
        host, port = kwargs["address"] if "address" in kwargs else args[0]
        timeout = kwargs.get("timeout")
        source = (self.source_host, 0) if self.source_host else None
        sock = socket.create_connection((host, port), timeout, source_address=source)
        if self.tls is None:
            return sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return self.tls.wrap_socket(sock, server_hostname=kwargs.get("hostname") or host)
        except BaseException:
            sock.close()
            raise


class ZkSession:
    """One ZooKeeper session (kazoo): connection, session state, watches. Thread-safe."""

    def __init__(
        self,
        connect: str,
        session_timeout_ms: int = 18000,
        connect_timeout_s: float = 10,
        source_host: str | None = None,
        tls: ssl.SSLContext | None = None,
        set_acl: bool = False,
    ) -> None:
        self.connect = connect
        self.hosts, self.chroot = _split_chroot(connect)
        self.session_timeout_ms = session_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        # ``source_host``: connect from this address (a broker's own), so that the network
        # between it and ZooKeeper is the path its session takes. ``tls``: connect over TLS
        # with this context (its certificate is the client's identity to ZooKeeper).
        # ``set_acl`` (zookeeper.set.acl): every znode this client creates is writable only
        # by the identity that created it, readable by all (SENSITIVE_PATHS: by nobody else).
        self.tls = tls
        self.set_acl = set_acl
        self._handler = (
            _Handler(source_host, tls) if source_host is not None or tls is not None else None
        )
        self.kazoo = self._client(connect)
        self._listeners: list[Callable[[str], None]] = []
        self._states: queue.Queue[str | None] = queue.Queue()
        self._dispatcher: threading.Thread | None = None
        self._lost = False
        self._on_new_session: list[tuple[WatchHandle, Callable[[], None]]] = []
        self._lock = threading.Lock()

    # ---- lifecycle ----

    def start(self) -> None:
        """Connect; create the chroot (with a client without chroot) and the base paths."""
        if self.chroot:
            bootstrap = self._client(self.hosts)
            bootstrap.start(timeout=self.connect_timeout_s)
            try:
                bootstrap.ensure_path(self.chroot)
            finally:
                bootstrap.stop()
                bootstrap.close()
        self._dispatcher = threading.Thread(
            target=self._dispatch_states, name="zk-state", daemon=True
        )
        self._dispatcher.start()
        self.kazoo.add_listener(self._kazoo_state)
        self.kazoo.start(timeout=self.connect_timeout_s)
        for path in BASE_PATHS:
            self.kazoo.ensure_path(path)
        try:
            self.kazoo.create(CONTROLLER_EPOCH, b"0")
        except NodeExistsError:
            pass

    def _client(self, hosts: str) -> KazooClient:
        return KazooClient(
            hosts=hosts,
            timeout=self.session_timeout_ms / 1000,
            handler=self._handler,
            default_acl=CREATOR_ALL_ACL + READ_ACL_UNSAFE if self.set_acl else None,
        )

    def acl_for(self, path: str) -> list[Any] | None:
        """The ACL to create ``path`` with: None for the client's default, only the creator
        for a sensitive path (credentials) when ``set_acl`` is on."""
        if self.set_acl and any(path.startswith(p) for p in SENSITIVE_PATHS):
            return list(CREATOR_ALL_ACL)
        return None

    def stop(self) -> None:
        self.kazoo.stop()
        self.kazoo.close()
        self._states.put(None)
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(10)

    def add_state_listener(self, cb: Callable[[str], None]) -> None:
        """cb("CONNECTED" | "SUSPENDED" | "LOST") on each change, in order, on a thread of this
        client (it may call ZooKeeper; kazoo's own listeners may not)."""
        self._listeners.append(cb)

    def _kazoo_state(self, state: str) -> None:
        # Runs on kazoo's connection thread: hand over, never block here.
        self._states.put(str(state))

    def _dispatch_states(self) -> None:
        while True:
            state = self._states.get()
            if state is None:
                return
            if state == KazooState.LOST:
                self._lost = True
            elif state == KazooState.CONNECTED and self._lost:
                self._lost = False
                self._on_new_session = [(h, f) for h, f in self._on_new_session if not h.cancelled]
                for _, refresh in list(self._on_new_session):
                    run_watcher(refresh)
            for cb in list(self._listeners):
                run_watcher(cb, state)

    @property
    def session_id(self) -> int:
        client_id = self.kazoo.client_id
        return int(client_id[0]) if client_id else 0

    @property
    def connected(self) -> bool:
        return bool(self.kazoo.connected)

    def subtree(self, path: str) -> list[str]:
        """path and every znode under it, parents before children."""
        out = [path]
        try:
            children = self.kazoo.get_children(path)
        except NoNodeError:
            return []
        for child in sorted(children):
            out.extend(self.subtree(f"{path}/{child}"))
        return out

    def owns(self, path: str) -> bool:
        """Whether ``path`` is an ephemeral znode of this session (a broker checks its
        registration survived a reconnection)."""
        return self._owned(path)

    def _owned(self, path: str) -> bool:
        stat = self.kazoo.exists(path)
        return stat is not None and stat.ephemeralOwner == self.session_id

    # ---- watches ----

    def watch_path(self, path: str, cb: Callable[[bytes | None], None]) -> WatchHandle:
        """cb(data | None) now and on each change of any znode, until cancelled."""
        handle = WatchHandle()

        def on_data(data: bytes | None, _stat: Any) -> bool | None:
            if handle.cancelled:
                return False
            run_watcher(cb, data)
            return None

        self.kazoo.DataWatch(path, on_data)
        return handle

    def watch_children(self, path: str, cb: Callable[[list[str]], None]) -> WatchHandle:
        """cb(sorted children) now and on each change of an existing znode, until cancelled."""
        handle = WatchHandle()

        def on_children(children: list[str]) -> bool | None:
            if handle.cancelled:
                return False
            run_watcher(cb, sorted(children))
            return None

        self.kazoo.ChildrenWatch(path, on_children)
        return handle

    def _watch_data(
        self, path: str, decode: Callable[[bytes, Any], Any], cb: Callable[[Any], None]
    ) -> WatchHandle:
        """cb(decoded | None) now and on each change; stops after the znode is deleted (cb(None)
        last). A znode that does not exist yet is waited for."""
        handle = WatchHandle()
        seen = [False]

        def on_data(data: bytes | None, stat: Any) -> bool | None:
            if handle.cancelled:
                return False
            if data is None or stat is None:
                run_watcher(cb, None)
                if seen[0]:
                    handle.cancel()  # ended by itself: the znode is gone
                    return False
                return None
            seen[0] = True
            run_watcher(cb, decode(data, stat))
            return None

        self.kazoo.DataWatch(path, on_data)
        return handle
