"""Secrets in ``server.properties``: encrypted values and Kafka's config providers.

A broker's configuration names passwords (``sasl.jaas.config`` users, ``ssl.*.password``)
that should not sit in a file in clear text, nor be answered to DescribeConfigs, nor be
printed in a log line or an error. Two ways keep them out of the file:

- **Encrypted values** (edplog's own): ``ENC[v1:<key id>:<base64>]`` anywhere in a value is
  AES-256-GCM ciphertext made by ``edplog secrets encrypt``. The base64 holds the 12-byte
  nonce, the ciphertext and the 16-byte tag; the text ``v1:<key id>`` is authenticated with
  it (associated data), so a changed version, key id or ciphertext is refused, never
  decrypted to garbage. The key (32 random bytes, base64 on one line) comes from a file
  named by ``config.secret.key.file`` (made by ``edplog secrets keygen``, mode 0600) or an
  environment variable named by ``config.secret.key.env``. Its id (the first 8 hex digits
  of its SHA-256) lets a wrong key be told apart from an edited value.
- **Config providers** (Kafka's KIP-297 and KIP-421 syntax): ``config.providers=file,env,dir``
  with ``config.providers.<name>.class`` one of Kafka's ``FileConfigProvider``,
  ``EnvVarConfigProvider`` or ``DirectoryConfigProvider``; then ``${file:/path:key}`` is
  ``key`` of the properties file ``/path``, ``${env:NAME}`` the environment variable ``NAME``,
  ``${dir:/path:name}`` the contents of the file ``/path/name``. Their parameters
  ``config.providers.<name>.param.allowed.paths`` (file, dir: KIP-993) and
  ``...param.allowlist.pattern`` (env: KIP-887) are honoured; any other parameter, class or
  unlisted provider is refused, where Kafka would leave the reference unresolved.

:func:`resolve` replaces both before the broker reads its properties, and returns the
names of the properties whose values held one: they are answered as sensitive (value null),
and the texts put in are removed from any configuration error (:func:`scrub`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import InvalidConfigError

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "config.secret.key.file"
KEY_ENV = "config.secret.key.env"
PROVIDERS = "config.providers"
PROVIDER_CLASSES = {
    "org.apache.kafka.common.config.provider.FileConfigProvider": "file",
    "org.apache.kafka.common.config.provider.EnvVarConfigProvider": "env",
    "org.apache.kafka.common.config.provider.DirectoryConfigProvider": "dir",
}
_PARAMS = {"file": {"allowed.paths"}, "dir": {"allowed.paths"}, "env": {"allowlist.pattern"}}
# ``${...}`` (group 1: what is inside) or ``ENC[...]``.
_SECRET = re.compile(r"\$\{([^}]*)\}|ENC\[[^\]]*\]")
_MASK = "<secret>"


class SecretError(ValueError):
    """A key that cannot be read, or a value that cannot be decrypted."""


@dataclass(frozen=True)
class SecretKey:
    """An AES-256-GCM key and its id (what an encrypted value records)."""

    key: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.key).hexdigest()[:8]

    @classmethod
    def generate(cls) -> SecretKey:
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    @classmethod
    def from_text(cls, text: str, origin: str) -> SecretKey:
        """A key as ``keygen`` writes it: base64 of 32 bytes, on one line."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(f"{origin}: not a key (base64 of {KEY_BYTES} bytes)") from None
        if len(key) != KEY_BYTES:
            raise SecretError(f"{origin}: a key is {KEY_BYTES} bytes, this one {len(key)}")
        return cls(key)

    @classmethod
    def from_file(cls, path: str | Path) -> SecretKey:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"cannot read the key file {path}: {exc}") from None
        return cls.from_text(text, f"key file {path}")

    @classmethod
    def from_env(cls, name: str) -> SecretKey:
        text = os.environ.get(name)
        if not text:
            raise SecretError(f"the environment variable {name} (the key) is not set")
        return cls.from_text(text, f"environment variable {name}")

    def text(self) -> str:
        return base64.b64encode(self.key).decode("ascii")

    def write(self, path: str | Path) -> None:
        """Write the key to a new file readable by its owner only (0600); never overwrite."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(self.text() + "\n")

    def encrypt(self, plaintext: str) -> str:
        """``ENC[v1:<key id>:<base64 nonce+ciphertext+tag>]``."""
        header = f"{VERSION}:{self.key_id}"
        nonce = _random.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.key).encrypt(nonce, plaintext.encode("utf-8"), header.encode())
        return f"ENC[{header}:{base64.b64encode(nonce + sealed).decode('ascii')}]"

    def decrypt(self, token: str) -> str:
        """The text of ``ENC[...]`` (or of what is between its brackets)."""
        inner = token[4:-1] if token.startswith("ENC[") and token.endswith("]") else token
        version, _, rest = inner.partition(":")
        key_id, _, data = rest.partition(":")
        if version != VERSION:
            raise SecretError(f"cannot decrypt: unknown version {version!r} (expected {VERSION})")
        if key_id != self.key_id:
            raise SecretError(
                f"cannot decrypt: wrong key or edited value (made with key {key_id}, "
                f"this key is {self.key_id})"
            )
        try:
            raw = base64.b64decode(data, validate=True)
            plain = AESGCM(self.key).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{version}:{key_id}".encode()
            )
            return plain.decode("utf-8")
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            raise SecretError("cannot decrypt: wrong key or edited value") from None


@dataclass
class Resolved:
    """Properties with secrets put in, and what :func:`scrub` must hide."""

    properties: dict[str, str]
    #: Names of the properties whose values held ``ENC[...]`` or ``${...}``.
    sensitive: set[str]
    #: The texts put in (decrypted values, provider values).
    secrets: set[str]


def resolve(props: Mapping[str, str]) -> Resolved:
    """Decrypt ``ENC[...]`` and resolve ``${provider:...}`` in every value.

    The settings of both (``config.secret.key.*``, ``config.providers*``) are consumed here
    and not passed on. An error names the property and the reference, never a secret."""
    own = {k for k in props if k in (KEY_FILE, KEY_ENV) or k.split(".")[:2] == PROVIDERS.split(".")}
    key_holder: list[SecretKey] = []
    providers = _providers(props)
    out: dict[str, str] = {}
    sensitive: set[str] = set()
    put_in: set[str] = set()
    for name, value in props.items():
        if name in own:
            continue

        def put(m: re.Match[str], name: str = name) -> str:
            if m.group(1) is not None:
                plain = _provide(providers, name, m.group(0), m.group(1))
            else:
                if not key_holder:
                    key_holder.append(_key(props, name))
                try:
                    plain = key_holder[0].decrypt(m.group(0))
                except SecretError as exc:
                    raise InvalidConfigError(f"{name}: {exc}") from None
            put_in.add(plain)
            return plain

        # One pass: what is put in is taken as it is, never searched again.
        value, count = _SECRET.subn(put, value)
        if count:
            sensitive.add(name)
        out[name] = value
    return Resolved(out, sensitive, {s for s in put_in if s})


def scrub(text: str, secrets: set[str]) -> str:
    """``text`` with every secret (longest first) replaced by ``<secret>``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


def _key(props: Mapping[str, str], name: str) -> SecretKey:
    path, env = props.get(KEY_FILE, "").strip(), props.get(KEY_ENV, "").strip()
    if path and env:
        raise InvalidConfigError(f"{KEY_FILE} and {KEY_ENV}: name the key one way, not both")
    if not path and not env:
        raise InvalidConfigError(
            f"{name} holds an encrypted value (ENC[...]) but neither {KEY_FILE} nor {KEY_ENV} "
            "names the key"
        )
    try:
        return SecretKey.from_file(path) if path else SecretKey.from_env(env)
    except SecretError as exc:
        raise InvalidConfigError(f"{KEY_FILE if path else KEY_ENV}: {exc}") from None


@dataclass(frozen=True)
class _Provider:
    kind: str
    allowed_paths: tuple[Path, ...] | None = None
    allowlist: re.Pattern[str] | None = None


def _providers(props: Mapping[str, str]) -> dict[str, _Provider]:
    names = [n.strip() for n in props.get(PROVIDERS, "").split(",") if n.strip()]
    out: dict[str, _Provider] = {}
    for name in names:
        cls = props.get(f"{PROVIDERS}.{name}.class", "").strip()
        if cls not in PROVIDER_CLASSES:
            known = ", ".join(sorted(PROVIDER_CLASSES))
            raise InvalidConfigError(
                f"{PROVIDERS}.{name}.class={cls!r}: not a config provider edplog has "
                f"(one of {known})"
            )
        kind = PROVIDER_CLASSES[cls]
        prefix = f"{PROVIDERS}.{name}.param."
        params = {k[len(prefix) :]: v for k, v in props.items() if k.startswith(prefix)}
        for param in params:
            if param not in _PARAMS[kind]:
                raise InvalidConfigError(
                    f"{prefix}{param}: not a parameter of {cls.rsplit('.', 1)[1]} "
                    f"(it has {', '.join(sorted(_PARAMS[kind]))})"
                )
        allowed = None
        if "allowed.paths" in params:
            allowed = tuple(
                Path(p.strip()).resolve() for p in params["allowed.paths"].split(",") if p.strip()
            )
        pattern = None
        if "allowlist.pattern" in params:
            try:
                pattern = re.compile(params["allowlist.pattern"])
            except re.error as exc:
                raise InvalidConfigError(f"{prefix}allowlist.pattern: {exc}") from None
        out[name] = _Provider(kind, allowed, pattern)
    for key in props:
        parts = key.split(".")
        if key.startswith(PROVIDERS + ".") and (len(parts) < 4 or parts[2] not in out):
            raise InvalidConfigError(
                f"{key}: {parts[2] if len(parts) > 2 else key} is not a provider of {PROVIDERS}"
            )
    return out


def _provide(providers: dict[str, _Provider], name: str, ref: str, inner: str) -> str:
    provider_name, sep, rest = inner.partition(":")
    where = f"{name}: {ref}"
    provider = providers.get(provider_name)
    if not sep or provider is None:
        listed = ", ".join(providers) or "none"
        raise InvalidConfigError(
            f"{where}: no config provider {provider_name!r} ({PROVIDERS} lists {listed})"
        )
    if provider.kind == "env":
        var = rest[1:] if rest.startswith(":") else rest  # ${env::NAME} is Kafka's too
        if provider.allowlist is not None and not provider.allowlist.fullmatch(var):
            raise InvalidConfigError(f"{where}: {var} is not allowed by allowlist.pattern")
        if var not in os.environ:
            raise InvalidConfigError(f"{where}: the environment variable {var} is not set")
        return os.environ[var]
    path, sep, key = rest.rpartition(":")
    if not sep or not path or not key:
        raise InvalidConfigError(f"{where}: expected ${{{provider_name}:<path>:<key>}}")
    target = Path(path) / key if provider.kind == "dir" else Path(path)
    if provider.allowed_paths is not None:
        real = target.resolve()
        if not any(real == a or a in real.parents for a in provider.allowed_paths):
            raise InvalidConfigError(f"{where}: {path} is outside allowed.paths")
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfigError(
            f"{where}: cannot read {target}: {exc.__class__.__name__}"
        ) from None
    if provider.kind == "dir":
        return text
    from ..config import parse_properties  # the same .properties reader

    values = parse_properties(text)
    if key not in values:
        raise InvalidConfigError(f"{where}: {path} has no key {key}")
    return values[key]
