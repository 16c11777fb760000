"""OAUTHBEARER logins (RFC 7628) with JSON Web Tokens, validated as Kafka's broker-side
validator (KIP-768) validates them.

A client sends ``n,[a=<authzid>],`` then ``\\x01``-separated ``key=value`` pairs, among them
``auth=Bearer <token>``, and an empty pair to end (``\\x01\\x01``). The token is a signed JWT
from the organisation's identity provider; the broker accepts it when

- its signature verifies with a key of the configured key set (JWKS, RFC 7517: a file or an
  HTTP(S) URL), chosen by the token's ``kid``, with an asymmetric algorithm (RSA, RSA-PSS,
  ECDSA, EdDSA). ``none`` and the HMAC algorithms are refused: a shared-secret token would let
  anyone who can validate tokens also mint them;
- it has not expired (``exp`` is required; ``nbf`` and ``iat`` are honoured when present),
  with ``sasl.oauthbearer.clock.skew.seconds`` of leeway;
- its audience and issuer are the expected ones, when ``sasl.oauthbearer.expected.audience``
  / ``sasl.oauthbearer.expected.issuer`` are set;
- its principal claim (``sasl.oauthbearer.sub.claim.name``, ``sub`` by default) is a non-empty
  string; the connection's principal is then ``User:<that>``. An authorization id other than
  the principal is refused, as for PLAIN.

The key set is read once when the broker starts (a broker that cannot read it does not
start) and again every ``sasl.oauthbearer.jwks.endpoint.refresh.ms`` on a thread of its own,
so a login never waits for the network. A token signed with a key id the set lacks starts a
refresh at once (the provider may have rotated its keys), no more often than the retry
backoff allows, and that login fails: the client's next attempt meets the new set. A refresh
that fails keeps the set in force and is logged.

Validation uses PyJWT with ``cryptography``; nothing here implements a primitive.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

log = logging.getLogger("edplog.security")

OAUTHBEARER = "OAUTHBEARER"
LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
#: Kafka's broker-side validators (the package moved in Kafka 3.x); both mean this one.
VALIDATOR_CLASSES = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
)
#: Signature algorithms a token may use: asymmetric only (see the module docstring).
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
#: The ``sasl.oauthbearer.*`` settings a listener reads, with Kafka's defaults.
SETTINGS = {
    "sasl.oauthbearer.jwks.endpoint.url": None,
    "sasl.oauthbearer.expected.audience": "",
    "sasl.oauthbearer.expected.issuer": "",
    "sasl.oauthbearer.sub.claim.name": "sub",
    "sasl.oauthbearer.scope.claim.name": "scope",
    "sasl.oauthbearer.clock.skew.seconds": "30",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms": "3600000",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms": "100",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms": "10000",
}
FETCH_TIMEOUT_S = 10.0
MAX_JWKS_BYTES = 1 << 20
MAX_TOKEN_BYTES = 64 * 1024


class OAuthError(Exception):
    """A token or message refused; the message is what the client is told."""


class OAuthConfigError(ValueError):
    """Settings or a key set that cannot be used."""


@dataclass(frozen=True)
class OAuthSettings:
    """One listener's OAUTHBEARER validation settings (``SETTINGS``)."""

    jwks_url: str
    audience: tuple[str, ...] = ()
    issuer: str | None = None
    sub_claim: str = "sub"
    scope_claim: str = "scope"
    clock_skew_s: int = 30
    refresh_ms: int = 3_600_000
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 10_000

    @classmethod
    def from_settings(cls, get: Callable[[str], str | None]) -> OAuthSettings:
        """From ``get(name)`` (the listener's value of each ``SETTINGS`` name, or None)."""

        def value(name: str) -> str:
            found = get(name)
            default = SETTINGS[name]
            return (found if found is not None else default or "").strip()

        url = value("sasl.oauthbearer.jwks.endpoint.url")
        if not url:
            raise OAuthConfigError(
                "sasl.oauthbearer.jwks.endpoint.url is not set: OAUTHBEARER validates tokens "
                "against a JWKS key set (a file:// path or an http(s):// URL)"
            )
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme not in ("file", "http", "https"):
            raise OAuthConfigError(
                f"sasl.oauthbearer.jwks.endpoint.url={url!r}: a file://, http:// or https:// URL"
            )

        def number(name: str, minimum: int) -> int:
            text = value(name)
            try:
                n = int(text)
            except ValueError:
                raise OAuthConfigError(f"{name}={text!r} is not a whole number") from None
            if n < minimum:
                raise OAuthConfigError(f"{name}={n}: at least {minimum}")
            return n

        audience = tuple(
            a.strip() for a in value("sasl.oauthbearer.expected.audience").split(",") if a.strip()
        )
        return cls(
            jwks_url=url,
            audience=audience,
            issuer=value("sasl.oauthbearer.expected.issuer") or None,
            sub_claim=value("sasl.oauthbearer.sub.claim.name") or "sub",
            scope_claim=value("sasl.oauthbearer.scope.claim.name") or "scope",
            clock_skew_s=number("sasl.oauthbearer.clock.skew.seconds", 0),
            refresh_ms=number("sasl.oauthbearer.jwks.endpoint.refresh.ms", 1000),
            retry_backoff_ms=number("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", 0),
            retry_backoff_max_ms=number("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", 0),
        )


@dataclass(frozen=True)
class SigningKey:
    """One key of the set, with the algorithm its JWK names (None: any it suits)."""

    jwk: jwt.PyJWK
    alg: str | None


def read_jwks(url: str, timeout_s: float = FETCH_TIMEOUT_S) -> dict[str | None, SigningKey]:
    """The signing keys of the JWKS at ``url``, by key id; raises :class:`OAuthConfigError`."""
    try:
        if url.lower().startswith("file:"):
            path = urllib.request.url2pathname(urllib.parse.urlsplit(url).path)
            with open(path, "rb") as f:
                raw = f.read(MAX_JWKS_BYTES + 1)
        else:
            with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 - checked scheme
                raw = answer.read(MAX_JWKS_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise OAuthConfigError(f"cannot read the JWKS at {url}: {exc}") from None
    if len(raw) > MAX_JWKS_BYTES:
        raise OAuthConfigError(f"the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes")
    try:
        document = json.loads(raw)
        entries = document["keys"]
        if not isinstance(entries, list):
            raise TypeError("'keys' is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise OAuthConfigError(f"the JWKS at {url} is not a JWK set: {exc}") from None
    keys: dict[str | None, SigningKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") == "oct" or entry.get("alg", ALGORITHMS[0]) not in ALGORITHMS:
            continue  # a shared-secret or unknown-algorithm key signs nothing we accept
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            log.warning("JWKS at %s: key %r left out: %s", url, entry.get("kid"), exc)
            continue
        alg = entry.get("alg")
        keys[entry.get("kid")] = SigningKey(key, alg if isinstance(alg, str) else None)
    if not keys:
        raise OAuthConfigError(f"the JWKS at {url} holds no usable signing key")
    return keys


class JwksKeys:
    """The key set in force, refreshed on a thread of its own (see the module docstring)."""

    def __init__(
        self,
        settings: OAuthSettings,
        reader: Callable[[str], dict[str | None, SigningKey]] = read_jwks,
    ) -> None:
        self.settings = settings
        self._reader = reader
        self._keys: dict[str | None, SigningKey] = {}
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_attempt = 0.0
        self._backoff_s = settings.retry_backoff_ms / 1000.0
        self.refreshes = 0

    def load(self) -> None:
        """Read the set now (at start: raises :class:`OAuthConfigError` if it cannot)."""
        self._last_attempt = time.monotonic()
        self._keys = self._reader(self.settings.jwks_url)
        self.refreshes += 1

    def start(self) -> None:
        """Keep the set fresh every ``refresh_ms`` until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="jwks-refresh", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stopped.set()
        self._wake.set()

    def key(self, kid: str | None) -> SigningKey | None:
        """The key for a token's ``kid``; a token without one may use a set of one key."""
        keys = self._keys
        found = keys.get(kid)
        if found is None and kid is None and len(keys) == 1:
            found = next(iter(keys.values()))
        return found

    def expedite(self) -> None:
        """A key id was missing: refresh soon (no sooner than the retry backoff)."""
        self._wake.set()

    def _run(self) -> None:
        period = self.settings.refresh_ms / 1000.0
        backoff_max = self.settings.retry_backoff_max_ms / 1000.0
        base = self.settings.retry_backoff_ms / 1000.0
        while not self._stopped.is_set():
            woken = self._wake.wait(max(0.0, self._last_attempt + period - time.monotonic()))
            if self._stopped.is_set():
                return
            self._wake.clear()
            if woken:
                wait = self._last_attempt + self._backoff_s - time.monotonic()
                if wait > 0 and self._stopped.wait(wait):
                    return
            try:
                self.load()
                self._backoff_s = base
            except OAuthConfigError as exc:
                self._last_attempt = time.monotonic()
                self._backoff_s = min(max(self._backoff_s * 2, base), backoff_max)
                log.warning("JWKS refresh failed, the key set in force stays: %s", exc)


@dataclass(frozen=True)
class Token:
    """A validated token: the principal's name, its expiry (epoch seconds), its scope."""

    principal: str
    expires_at: float
    scope: tuple[str, ...]


def parse_client_message(message: bytes) -> tuple[str | None, str, dict[str, str]]:
    """RFC 7628's client response: (authzid or None, the bearer token, the extensions)."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthError("an OAUTHBEARER message is UTF-8") from None
    header, sep, rest = text.partition("\x01")
    if not sep or (not rest.endswith("\x01\x01") and rest != "\x01"):
        raise OAuthError(
            "an OAUTHBEARER message is 'n,,' then key=value pairs, each ending in \\x01"
        )
    gs2 = header.split(",")
    if len(gs2) != 3 or gs2[0] not in ("n", "y") or gs2[2] != "":
        raise OAuthError("an OAUTHBEARER message starts with the GS2 header 'n,,' or 'n,a=<id>,'")
    authzid = None
    if gs2[1]:
        if not gs2[1].startswith("a="):
            raise OAuthError("the GS2 header's second field is 'a=<authorization id>' or empty")
        authzid = gs2[1][2:].replace("=2C", ",").replace("=3D", "=")
    pairs: dict[str, str] = {}
    for item in rest[:-2].split("\x01") if rest != "\x01" else []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise OAuthError("an OAUTHBEARER key=value pair lacks its '='")
        if key in pairs:
            raise OAuthError(f"the OAUTHBEARER key {key!r} is given twice")
        pairs[key] = value
    auth = pairs.pop("auth", None)
    if auth is None:
        raise OAuthError("the OAUTHBEARER message has no auth=Bearer <token>")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise OAuthError("auth is 'Bearer <token>'")
    return authzid, token.strip(), pairs


class OAuthValidator:
    """Validates one listener's bearer tokens against its key set."""

    def __init__(self, settings: OAuthSettings, keys: JwksKeys | None = None) -> None:
        self.settings = settings
        self.keys = keys if keys is not None else JwksKeys(settings)

    def validate(self, token: str) -> Token:
        """The token's principal, expiry and scope; raises :class:`OAuthError`."""
        s = self.settings
        if len(token) > MAX_TOKEN_BYTES:
            raise OAuthError(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise OAuthError(f"the token is not a signed JWT: {exc}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise OAuthError(
                f"the token's algorithm {alg!r} is not accepted (asymmetric signatures only)"
            )
        kid = header.get("kid")
        key = self.keys.key(kid if isinstance(kid, str) else None)
        if key is None:
            self.keys.expedite()
            raise OAuthError(f"no key in the key set has the token's key id {kid!r}")
        if key.alg not in (None, alg):
            raise OAuthError(f"the token's algorithm {alg} is not its key's ({key.alg})")
        try:
            claims: Mapping[str, Any] = jwt.decode(
                token,
                key.jwk.key,
                algorithms=[alg],
                audience=list(s.audience) or None,
                issuer=s.issuer,
                leeway=s.clock_skew_s,
                options={"require": ["exp"], "verify_aud": bool(s.audience)},
            )
        except jwt.ExpiredSignatureError:
            raise OAuthError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise OAuthError("the token's audience is not an expected one") from None
        except jwt.InvalidIssuerError:
            raise OAuthError("the token's issuer is not the expected one") from None
        except jwt.InvalidSignatureError:
            raise OAuthError("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise OAuthError(f"the token is not valid: {exc}") from None
        principal = claims.get(s.sub_claim)
        if not isinstance(principal, str) or not principal.strip():
            raise OAuthError(f"the token's {s.sub_claim!r} claim is not a non-empty string")
        scope_claim = claims.get(s.scope_claim)
        if scope_claim is None:
            scope: tuple[str, ...] = ()
        elif isinstance(scope_claim, str):
            scope = tuple(scope_claim.split())
        elif isinstance(scope_claim, list) and all(isinstance(x, str) for x in scope_claim):
            scope = tuple(scope_claim)
        else:
            raise OAuthError(f"the token's {s.scope_claim!r} claim is not a string or a list")
        return Token(principal.strip(), float(claims["exp"]), scope)

    def login(self, message: bytes) -> Token:
        """Validate one client message: the token, and an authzid that names its principal."""
        authzid, token, _extensions = parse_client_message(message)
        checked = self.validate(token)
        if authzid is not None and authzid != checked.principal:
            raise OAuthError("an authorization id other than the token's principal is not allowed")
        return checked
