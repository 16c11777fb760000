"""SASL authentication as a Kafka broker does it: PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER.

A SASL listener's connection first agrees on a mechanism (SaslHandshake v1), then sends the
mechanism's messages in SaslAuthenticate requests (KIP-152). :class:`SaslSession` holds that
exchange for one connection; the broker's handlers feed it and, once it has succeeded, the
connection takes its principal (``User:<name>``).

- ``PLAIN`` (RFC 4616): one message ``authzid NUL user NUL password``, checked against the
  users of the listener's JAAS-style configuration (Kafka's PlainLoginModule options
  ``user_<name>="<password>"``, see :func:`parse_jaas`). The passwords are compared in
  constant time. An authorization id other than the user is refused, as Kafka refuses it.
- ``SCRAM-SHA-256`` and ``SCRAM-SHA-512`` (RFC 5802, RFC 7677), through ``scramp``, against
  the stored keys of :class:`~edplog.security.scram.ScramCredentials` (the broker never holds
  a password). A user with no credential is run through the exchange with a made-up one,
  derived from the user name and a secret of this process, so that an unknown user and a
  wrong password fail at the same step with the same error.
- ``OAUTHBEARER`` (RFC 7628): one message carrying a signed JWT, validated by the listener's
  :class:`~edplog.security.oauth.OAuthValidator` (KIP-768's checks); the principal is the
  token's subject claim.

Re-authentication (KIP-368): with ``connections.max.reauth.ms`` set, a successful login
tells the client its session lifetime (the setting, or less when an OAUTHBEARER token
expires sooner); the client logs in again on the same connection before that, with
SaslHandshake and SaslAuthenticate, using the same mechanism and proving the same principal.
A different mechanism or principal fails the connection. The connection enforces the
expiry (broker/connection.py).

Failed logins are slowed down per client address (:class:`FailedLogins`): the answer to a
failure waits ``connection.failed.authentication.delay.ms`` (Kafka's setting), doubled for
each further failure from the same address within a minute, up to 32 times.

Every failure is an :class:`SaslError` with a message for the client; the broker answers it
as SASL_AUTHENTICATION_FAILED (58) and closes the connection.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .oauth import OAUTHBEARER, OAuthError, OAuthValidator
from .principal import Principal
from .scram import MAX_ITERATIONS, ScramCredential, ScramCredentials

PLAIN = "PLAIN"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
MECHANISMS = (PLAIN, *SCRAM_MECHANISMS, OAUTHBEARER)
PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"

# Secret of this process for the made-up credentials of unknown users.
_DECOY_KEY = os.urandom(32)


class SaslError(Exception):
    """Authentication failed; the message is what the client is told."""


class SaslConfigError(ValueError):
    """A JAAS configuration or mechanism list that cannot be used."""


_JAAS_OPTION = re.compile(r'\s*([A-Za-z0-9_.\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))')


def parse_jaas(text: str) -> tuple[str, str, dict[str, str]]:
    """``<LoginModule> <flag> key="value" ... ;`` as Kafka's ``sasl.jaas.config`` holds it:
    (module, flag, options). Quoted values may escape ``"`` and ``\\`` with a backslash."""
    text = text.strip()
    if not text.endswith(";"):
        raise SaslConfigError("a JAAS configuration ends with ';'")
    body = text[:-1].strip()
    head = body.split(None, 2)
    if len(head) < 2:
        raise SaslConfigError("a JAAS configuration is '<LoginModule> <flag> options;'")
    module, flag = head[0], head[1].lower()
    if flag not in ("required", "requisite", "sufficient", "optional"):
        raise SaslConfigError(f"{flag!r} is not a JAAS control flag")
    rest = head[2] if len(head) > 2 else ""
    options: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        if rest[pos:].strip() == "":
            break
        m = _JAAS_OPTION.match(rest, pos)
        if m is None:
            raise SaslConfigError(f"cannot read the JAAS options at {rest[pos : pos + 20]!r}")
        value = m.group(2) if m.group(2) is not None else m.group(3)
        options[m.group(1)] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return module, flag, options


def plain_users(jaas: str) -> dict[str, str]:
    """The ``user_<name>="<password>"`` options of a PlainLoginModule configuration."""
    module, _, options = parse_jaas(jaas)
    if module != PLAIN_LOGIN_MODULE:
        raise SaslConfigError(f"PLAIN needs {PLAIN_LOGIN_MODULE}, not {module}")
    return {k[len("user_") :]: v for k, v in options.items() if k.startswith("user_")}


class FailedLogins:
    """Failed authentications per client address, and how long each failure's answer waits
    (see the module docstring). Bounded: at most ``MAX_ADDRESSES`` are remembered."""

    WINDOW_S = 60.0
    MAX_FACTOR = 32
    MAX_ADDRESSES = 65536

    def __init__(self, delay_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.delay_s = delay_ms / 1000.0
        self._clock = clock
        self._recent: dict[str, tuple[int, float]] = {}  # host -> (failures, window start)

    def failed(self, host: str | None) -> float:
        """Count a failure from ``host``; the seconds its answer waits."""
        now = self._clock()
        key = host or ""
        count, start = self._recent.get(key, (0, now))
        if now - start > self.WINDOW_S:
            count, start = 0, now
        count += 1
        if key not in self._recent and len(self._recent) >= self.MAX_ADDRESSES:
            self._forget_old(now)
        self._recent[key] = (count, start)
        return self.delay_s * min(2 ** (count - 1), self.MAX_FACTOR)

    def _forget_old(self, now: float) -> None:
        old = [h for h, (_, start) in self._recent.items() if now - start > self.WINDOW_S]
        for h in old or list(self._recent)[: self.MAX_ADDRESSES // 2]:
            del self._recent[h]


@dataclass
class SaslSettings:
    """What one listener accepts: its mechanisms, the PLAIN users, the SCRAM table, the
    OAUTHBEARER validator, the session lifetime per mechanism (``connections.max.reauth.ms``,
    0: none) and the failed-login account."""

    mechanisms: tuple[str, ...]
    plain_users: Mapping[str, str]
    scram: Callable[[], ScramCredentials]
    oauth: OAuthValidator | None = None
    reauth_ms: Mapping[str, int] = field(default_factory=dict)
    failures: FailedLogins | None = None


def _decoy(user: str, mechanism: str) -> ScramCredential:
    """A credential no password opens, the same for the same user within this process."""
    digest = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
    salt = hmac.digest(_DECOY_KEY, f"salt:{mechanism}:{user}".encode(), "sha256")[:16]
    key = hmac.digest(_DECOY_KEY, f"key:{mechanism}:{user}".encode(), digest)
    return ScramCredential(mechanism, salt, MAX_ITERATIONS // 4, key, key)


class SaslSession:
    """One connection's SASL exchange (see the module docstring)."""

    def __init__(self, settings: SaslSettings) -> None:
        self.settings = settings
        self.mechanism: str | None = None
        self.principal: Principal | None = None
        self.failed = False
        self._scram: object | None = None
        self._scram_user: str | None = None
        # OAUTHBEARER: when the token expires (epoch seconds).
        self._token_expires: float | None = None
        # While re-authenticating: the principal the new login must prove.
        self._previous: Principal | None = None
        # After each login: when its session ends (time.monotonic(); None: never).
        self.expires_at: float | None = None
        self.logins = 0
        # The last failure's message, and the user a PLAIN or SCRAM login named (the audit
        # log records both; the client is told only the message).
        self.error: str | None = None
        self.attempted: str | None = None

    def handshake(self, mechanism: str) -> bool:
        """Choose ``mechanism``; False (and nothing chosen) when the listener lacks it."""
        if mechanism not in self.settings.mechanisms or self.principal is not None:
            return False
        self.mechanism = mechanism
        return True

    def reauthenticate(self, mechanism: str) -> None:
        """SaslHandshake on an authenticated connection: a new login of the same principal
        with the same mechanism begins (raises :class:`SaslError` otherwise, and the session
        is failed for good)."""
        if self.principal is None or self.failed:
            raise SaslError("re-authentication before authentication")
        if mechanism != self.mechanism:
            self.failed = True
            raise SaslError(
                f"re-authentication must use the connection's mechanism {self.mechanism}, "
                f"not {mechanism}"
            )
        self._previous, self.principal = self.principal, None
        self._scram = None

    def lifetime_ms(self) -> int:
        """The session lifetime of the login that just succeeded (0: unlimited), and the
        moment it ends is kept in ``expires_at``."""
        limit = self.settings.reauth_ms.get(self.mechanism or "", 0)
        if limit <= 0:
            self.expires_at = None
            return 0
        if self._token_expires is not None:
            limit = min(limit, int((self._token_expires - time.time()) * 1000))
        limit = max(limit, 1)
        self.expires_at = time.monotonic() + limit / 1000.0
        return limit

    def step(self, message: bytes) -> bytes:
        """The answer to one SaslAuthenticate message; raises :class:`SaslError` (after
        which the session is failed for good)."""
        if self.failed:
            raise SaslError("authentication already failed on this connection")
        try:
            if self.mechanism is None:
                raise SaslError("SaslAuthenticate before SaslHandshake chose a mechanism")
            if self.principal is not None:
                raise SaslError("already authenticated")
            if self.mechanism == PLAIN:
                answer = self._plain(message)
            elif self.mechanism == OAUTHBEARER:
                answer = self._oauth(message)
            else:
                answer = self._scram_step(message)
            if self.principal is not None:
                self._check_same_principal()
                self.logins += 1
            return answer
        except SaslError as exc:
            self.failed = True
            self.principal = None
            self.error = str(exc)
            self.attempted = self.attempted or self._scram_user
            raise

    def _check_same_principal(self) -> None:
        previous, self._previous = self._previous, None
        if previous is not None and previous != self.principal:
            raise SaslError(
                f"re-authentication as {self.principal} on a connection of {previous} "
                "is not allowed"
            )

    # ---- OAUTHBEARER ---------------------------------------------------------------------

    def _oauth(self, message: bytes) -> bytes:
        validator = self.settings.oauth
        if validator is None:
            raise SaslError("OAUTHBEARER is not configured on this listener")
        try:
            token = validator.login(message)
        except OAuthError as exc:
            raise SaslError(f"authentication failed: {exc}") from None
        self._token_expires = token.expires_at
        self.principal = Principal("User", token.principal)
        return b""

    # ---- PLAIN -----------------------------------------------------------------------------

    def _plain(self, message: bytes) -> bytes:
        parts = message.split(b"\x00")
        if len(parts) != 3:
            raise SaslError("a PLAIN message is authzid NUL user NUL password")
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise SaslError("a PLAIN message is UTF-8") from None
        if not user or not password:
            raise SaslError("the PLAIN user or password is empty")
        self.attempted = user
        if authzid and authzid != user:
            raise SaslError("an authorization id other than the user is not allowed")
        expected = self.settings.plain_users.get(user)
        # Compared even for an unknown user, so that both take the same time.
        ok = hmac.compare_digest(
            hashlib.sha256(password.encode()).digest(),
            hashlib.sha256(
                (expected if expected is not None else "\x00" + password).encode()
            ).digest(),
        )
        if expected is None or not ok:
            raise SaslError("authentication failed: invalid user name or password")
        self.principal = Principal("User", user)
        return b""

    # ---- SCRAM -----------------------------------------------------------------------------

    def _scram_step(self, message: bytes) -> bytes:
        from scramp import ScramException, ScramMechanism

        mechanism = self.mechanism
        assert mechanism is not None
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslError("a SCRAM message is UTF-8") from None
        try:
            if self._scram is None:
                table = self.settings.scram()

                def credential(user: str) -> tuple[bytes, bytes, bytes, int]:
                    self._scram_user = user
                    found = table.lookup(user, mechanism)
                    c = found if found is not None else _decoy(user, mechanism)
                    return c.salt, c.stored_key, c.server_key, c.iterations

                server = ScramMechanism(mechanism).make_server(credential)
                server.set_client_first(text)
                self._scram = server
                return str(server.get_server_first()).encode()
            server = self._scram
            self._scram = None
            server.set_client_final(text)  # type: ignore[attr-defined]
            final = str(server.get_server_final()).encode()  # type: ignore[attr-defined]
        except ScramException as exc:
            raise SaslError(f"authentication failed: {exc}") from None
        user = self._scram_user or ""
        if self.settings.scram().lookup(user, mechanism) is None:
            raise SaslError("authentication failed: invalid user name or password")
        self.principal = Principal("User", user)
        return final
