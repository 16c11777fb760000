"""Which groups a user is in, for ``Group:<name>`` principals in role bindings and ACLs.

Kafka has no groups; edplog lets role bindings and ACLs name ``Group:<name>`` and finds a
user's groups in one of two places (``authorizer.*`` settings, :class:`GroupSettings`):

* a local file (``authorizer.groups.file``), one group per line::

      # group: members (user names, separated by commas)
      ops: alice, bob
      analytics: carol

  re-read when it changes (:meth:`FileGroups.refresh`, which the broker calls every
  ``authorizer.roles.reload.interval.ms``);
* an LDAP directory (``authorizer.ldap.*``, with ``ldap3``): :class:`LdapGroups` reads every
  user (their DN and name) and every group (its name and members) in a background thread,
  at start and then every ``authorizer.ldap.refresh.interval.ms``, so a decision never waits
  for the directory. Until the first read completes a user has no groups; when a read fails
  the last membership read stays in force.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger("edplog.security")

#: The settings this module reads (docs/security.md, "Roles").
GROUP_PROPERTIES = frozenset(
    {
        "authorizer.roles.reload.interval.ms",
        "authorizer.groups.file",
        "authorizer.ldap.url",
        "authorizer.ldap.bind.dn",
        "authorizer.ldap.bind.password",
        "authorizer.ldap.user.search.base",
        "authorizer.ldap.user.search.filter",
        "authorizer.ldap.user.name.attribute",
        "authorizer.ldap.group.search.base",
        "authorizer.ldap.group.search.filter",
        "authorizer.ldap.group.name.attribute",
        "authorizer.ldap.group.member.attribute",
        "authorizer.ldap.refresh.interval.ms",
        "authorizer.ldap.timeout.ms",
        "authorizer.ldap.ssl.truststore.location",
    }
)

Membership = Mapping[str, frozenset[str]]  # user name -> group names


class GroupSource(Protocol):
    def groups_of(self, user: str) -> frozenset[str]:
        """The groups ``user`` is in (empty when unknown)."""
        ...


class NoGroups:
    """No group source configured: nobody is in a group."""

    def groups_of(self, user: str) -> frozenset[str]:
        return frozenset()


def _invert(groups: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    users: dict[str, set[str]] = {}
    for group, members in groups.items():
        for user in members:
            users.setdefault(user, set()).add(group)
    return {user: frozenset(gs) for user, gs in users.items()}


def parse_groups_file(text: str, origin: str = "groups file") -> dict[str, frozenset[str]]:
    """``group: user, user`` lines (``#`` comments, blank lines) -> user -> groups."""
    groups: dict[str, set[str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        group, sep, members = line.partition(":")
        group = group.strip()
        if not sep or not group:
            raise ValueError(f"{origin} line {number}: expected 'group: user, user', got {raw!r}")
        users = {m.strip() for m in members.split(",") if m.strip()}
        groups.setdefault(group, set()).update(users)
    return _invert(groups)


class FileGroups:
    """Group membership from ``authorizer.groups.file`` (format: the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, frozenset[str]] = {}
        self.refresh(strict=True)

    def groups_of(self, user: str) -> frozenset[str]:
        return self._users.get(user, frozenset())

    def refresh(self, strict: bool = False) -> bool:
        """Re-read the file if it changed; True when the membership changed. A file that
        cannot be read keeps the membership in force (logged), or with ``strict`` (at
        start) raises ValueError."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return False
            users = parse_groups_file(Path(self.path).read_text(), self.path)
        except (OSError, ValueError) as exc:
            if strict:
                raise ValueError(f"authorizer.groups.file: {exc}") from None
            log.error("authorizer.groups.file not re-read (the groups in force stay): %s", exc)
            return False
        self._stamp = stamp
        changed = users != self._users
        self._users = users
        return changed


@dataclass(frozen=True)
class LdapSettings:
    url: str
    user_base: str
    group_base: str
    bind_dn: str | None = None
    bind_password: str | None = None
    user_filter: str = "(objectClass=inetOrgPerson)"
    user_name_attribute: str = "uid"
    group_filter: str = "(objectClass=groupOfNames)"
    group_name_attribute: str = "cn"
    member_attribute: str = "member"
    refresh_interval_ms: int = 300_000
    timeout_ms: int = 10_000
    # ldaps://: the CA certificates (PEM) the directory's certificate must chain to (None:
    # the system's).
    truststore: str | None = None


@dataclass(frozen=True)
class GroupSettings:
    """The ``authorizer.*`` settings of roles and groups, validated."""

    reload_interval_ms: int = 2000
    groups_file: str | None = None
    ldap: LdapSettings | None = None
    configured: frozenset[str] = frozenset()

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> GroupSettings:
        """Read the ``authorizer.*`` settings of :data:`GROUP_PROPERTIES` from ``props``;
        ValueError naming the setting when one is wrong."""
        mine = {k: v.strip() for k, v in props.items() if k in GROUP_PROPERTIES}
        reload_ms = _positive(mine, "authorizer.roles.reload.interval.ms", 2000)
        groups_file = mine.get("authorizer.groups.file") or None
        ldap_keys = [k for k in mine if k.startswith("authorizer.ldap.")]
        ldap = None
        if ldap_keys:
            if groups_file is not None:
                raise ValueError(
                    "authorizer.groups.file and authorizer.ldap.* are both set: groups come "
                    "from one source"
                )
            ldap = _ldap_settings(mine)
        return cls(reload_ms, groups_file, ldap, frozenset(mine))


def _positive(props: Mapping[str, str], key: str, default: int) -> int:
    text = props.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{key}={text!r}: not an integer") from None
    if value <= 0:
        raise ValueError(f"{key}={text!r}: must be positive")
    return value


def _ldap_settings(props: Mapping[str, str]) -> LdapSettings:
    for key in ("url", "user.search.base", "group.search.base"):
        if not props.get(f"authorizer.ldap.{key}"):
            raise ValueError(f"authorizer.ldap.{key} is required when authorizer.ldap.* is set")
    url = props["authorizer.ldap.url"]
    parts = urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ValueError(
            f"authorizer.ldap.url={url!r}: ldap://host[:port] or ldaps://host[:port] "
            "(StartTLS is not implemented)"
        )
    truststore = props.get("authorizer.ldap.ssl.truststore.location") or None
    if truststore is not None and parts.scheme != "ldaps":
        raise ValueError("authorizer.ldap.ssl.truststore.location is for an ldaps:// URL")
    if truststore is not None and not os.path.isfile(truststore):
        raise ValueError(f"authorizer.ldap.ssl.truststore.location={truststore!r}: no such file")
    bind_dn = props.get("authorizer.ldap.bind.dn") or None
    password = props.get("authorizer.ldap.bind.password")
    if (bind_dn is None) != (password is None):
        raise ValueError(
            "authorizer.ldap.bind.dn and authorizer.ldap.bind.password go together "
            "(neither: an anonymous bind)"
        )
    defaults = LdapSettings(url, "", "")
    get = props.get
    return LdapSettings(
        url=url,
        user_base=props["authorizer.ldap.user.search.base"],
        group_base=props["authorizer.ldap.group.search.base"],
        bind_dn=bind_dn,
        bind_password=password,
        user_filter=get("authorizer.ldap.user.search.filter") or defaults.user_filter,
        user_name_attribute=get("authorizer.ldap.user.name.attribute")
        or defaults.user_name_attribute,
        group_filter=get("authorizer.ldap.group.search.filter") or defaults.group_filter,
        group_name_attribute=get("authorizer.ldap.group.name.attribute")
        or defaults.group_name_attribute,
        member_attribute=get("authorizer.ldap.group.member.attribute") or defaults.member_attribute,
        refresh_interval_ms=_positive(
            props, "authorizer.ldap.refresh.interval.ms", defaults.refresh_interval_ms
        ),
        timeout_ms=_positive(props, "authorizer.ldap.timeout.ms", defaults.timeout_ms),
        truststore=truststore,
    )


def read_ldap_membership(settings: LdapSettings) -> dict[str, frozenset[str]]:
    """Read every user and group from the directory (blocking) -> user -> groups.

    A member value is a user's DN (``member``, ``uniqueMember``) or a user name
    (``memberUid``): DNs are matched (case-insensitively) with the users found under the
    user search base, and a value that is no known user DN is taken as a name."""
    import ldap3  # only brokers that use LDAP need it loaded

    parts = urlsplit(settings.url)
    # ldap3 packs the receive timeout into a socket option: whole seconds.
    timeout_s = max(1, round(settings.timeout_ms / 1000))
    tls = None
    if parts.scheme == "ldaps":
        # The directory's certificate must chain to the trust store and name the host
        # (ldap3 checks the name after the handshake). ldap3 builds the context with
        # ssl.create_default_context, whose minimum is TLS 1.2.
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.truststore)
    server = ldap3.Server(
        parts.hostname or "",
        port=parts.port or (636 if tls else 389),
        use_ssl=tls is not None,
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=timeout_s,
    )
    conn = ldap3.Connection(
        server,
        user=settings.bind_dn,
        password=settings.bind_password,
        auto_bind=True,
        read_only=True,
        receive_timeout=timeout_s,
        raise_exceptions=True,
    )
    try:
        name_attr = settings.user_name_attribute
        users: dict[str, str] = {}
        for entry in _search(conn, settings.user_base, settings.user_filter, name_attr):
            names = _values(entry, name_attr)
            if names:
                users[_dn_key(entry["dn"])] = names[0]
        groups: dict[str, set[str]] = {}
        attrs = [settings.group_name_attribute, settings.member_attribute]
        for entry in _search(conn, settings.group_base, settings.group_filter, *attrs):
            names = _values(entry, settings.group_name_attribute)
            if not names:
                continue
            members = groups.setdefault(names[0], set())
            for value in _values(entry, settings.member_attribute):
                user = users.get(_dn_key(value))
                if user is not None:
                    members.add(user)
                elif "=" not in value:
                    members.add(value)
        return _invert(groups)
    finally:
        conn.unbind()


def _search(conn: Any, base: str, search_filter: str, *attributes: str) -> list[Any]:
    entries = conn.extend.standard.paged_search(
        base, search_filter, attributes=list(attributes), paged_size=500, generator=False
    )
    return [e for e in entries if e.get("type") == "searchResEntry"]


def _values(entry: Mapping[str, Any], attribute: str) -> list[str]:
    attributes = entry.get("attributes") or {}
    for key, value in attributes.items():
        if key.lower() == attribute.lower():
            return [str(v) for v in (value if isinstance(value, list) else [value])]
    return []


def _dn_key(dn: str) -> str:
    """A DN compared the way directories compare them, near enough: case and the spaces
    around separators do not matter."""
    return ",".join(
        "=".join(part.strip() for part in rdn.split("=", 1)) for rdn in dn.lower().split(",")
    )


class LdapGroups:
    """Group membership read from LDAP in a background thread (see the module docstring).

    ``on_change`` is called from that thread after a read that changed the membership (the
    broker hands it to its event loop, where the authorizer drops its cached decisions)."""

    def __init__(
        self,
        settings: LdapSettings,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.on_change = on_change
        self._users: dict[str, frozenset[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reads = 0  # successful reads, for tests and logs
        self.last_error: str | None = None
        self._wake = threading.Event()

    def groups_of(self, user: str) -> frozenset[str]:
        return self._users.get(user, frozenset())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edplog-ldap-groups", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.settings.timeout_ms / 1000 * 3 + 1)

    def refresh_now(self) -> None:
        """Ask the thread for a read now (instead of at the end of the interval)."""
        self._wake.set()

    def read_once(self) -> bool:
        """One read (blocking); True when the membership changed."""
        try:
            users = read_ldap_membership(self.settings)
        except Exception as exc:  # the directory may be down: keep what we had
            self.last_error = str(exc) or type(exc).__name__
            log.warning("LDAP groups not read from %s: %s", self.settings.url, self.last_error)
            return False
        self.last_error = None
        self.reads += 1
        changed = users != self._users
        self._users = users
        if changed:
            log.info("LDAP groups read from %s: %d users in groups", self.settings.url, len(users))
        return changed

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.read_once():
                self.on_change()
            self._wake.wait(self.settings.refresh_interval_ms / 1000)
            self._wake.clear()
