"""SCRAM credentials (RFC 5802, RFC 7677) as Kafka keeps them: never the password.

A client that sets a credential (AlterUserScramCredentials, KIP-554) sends the salt, the
iteration count and ``SaltedPassword = Hi(password, salt, i)`` (PBKDF2-HMAC); the broker
keeps only what a SCRAM server needs to verify a login later —

- ``StoredKey = H(HMAC(SaltedPassword, "Client Key"))``, which checks the client's proof;
- ``ServerKey = HMAC(SaltedPassword, "Server Key")``, which signs the server's answer —

so neither the password nor the salted password is stored, and a leaked credential file
does not let anyone log in. :class:`ScramCredentials` is the table the SASL layer asks
(``lookup(user, mechanism)``); the broker persists it (``to_json``/``from_json``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Kafka's mechanism numbers on the wire (ScramMechanism), and their hashes.
MECHANISMS: dict[int, str] = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
MECHANISM_IDS: dict[str, int] = {name: i for i, name in MECHANISMS.items()}
_HASHES: dict[str, str] = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
#: Kafka's bounds on the iteration count of a stored credential.
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384


@dataclass(frozen=True)
class ScramCredential:
    """What the server keeps of one user's password for one mechanism."""

    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "salt": self.salt.hex(),
            "iterations": self.iterations,
            "stored_key": self.stored_key.hex(),
            "server_key": self.server_key.hex(),
        }

    @classmethod
    def from_json(cls, mechanism: str, data: Mapping[str, Any]) -> ScramCredential:
        if mechanism not in _HASHES:
            raise ValueError(f"unknown SCRAM mechanism {mechanism!r}")
        iterations = data["iterations"]
        if not isinstance(iterations, int) or iterations <= 0:
            raise ValueError(f"bad iteration count {iterations!r}")
        return cls(
            mechanism,
            bytes.fromhex(data["salt"]),
            iterations,
            bytes.fromhex(data["stored_key"]),
            bytes.fromhex(data["server_key"]),
        )


def hash_name(mechanism: str) -> str:
    """hashlib's name for the mechanism's hash (``sha256`` / ``sha512``)."""
    return _HASHES[mechanism]


def credential_from_salted_password(
    mechanism: str, salt: bytes, iterations: int, salted_password: bytes
) -> ScramCredential:
    """The stored form of a credential from what AlterUserScramCredentials carries."""
    digest = _HASHES[mechanism]
    client_key = hmac.digest(salted_password, b"Client Key", digest)
    stored_key = hashlib.new(digest, client_key).digest()
    server_key = hmac.digest(salted_password, b"Server Key", digest)
    return ScramCredential(mechanism, bytes(salt), iterations, stored_key, server_key)


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """``Hi(password, salt, i)``: what a client computes before it sends a credential."""
    return hashlib.pbkdf2_hmac(_HASHES[mechanism], password.encode(), salt, iterations)


def credential_from_password(
    mechanism: str, password: str, *, salt: bytes | None = None, iterations: int = MIN_ITERATIONS
) -> ScramCredential:
    """A credential made from a password here (tools, tests); the password is not kept."""
    salt = os.urandom(32) if salt is None else salt
    return credential_from_salted_password(
        mechanism, salt, iterations, salted_password(mechanism, password, salt, iterations)
    )


class ScramCredentials:
    """Every user's SCRAM credentials, by user then mechanism name (immutable once built:
    a change makes a new table, so a reader never sees half of an alteration)."""

    def __init__(self, table: Mapping[str, Mapping[str, ScramCredential]] | None = None) -> None:
        self._table: dict[str, dict[str, ScramCredential]] = {
            user: dict(creds) for user, creds in (table or {}).items() if creds
        }

    def lookup(self, user: str, mechanism: str) -> ScramCredential | None:
        """The credential the SASL layer verifies a login of ``user`` with, if any."""
        creds = self._table.get(user)
        return None if creds is None else creds.get(mechanism)

    def users(self) -> list[str]:
        return sorted(self._table)

    def of(self, user: str) -> dict[str, ScramCredential]:
        """A user's credentials by mechanism ({} for a user without any)."""
        return dict(self._table.get(user, {}))

    def altered(
        self,
        deletions: Iterable[tuple[str, str]],
        upsertions: Iterable[tuple[str, ScramCredential]],
    ) -> ScramCredentials:
        """A new table with ``(user, mechanism)`` deleted and ``(user, credential)`` set."""
        table = {user: dict(creds) for user, creds in self._table.items()}
        for user, mechanism in deletions:
            table.get(user, {}).pop(mechanism, None)
        for user, cred in upsertions:
            table.setdefault(user, {})[cred.mechanism] = cred
        return ScramCredentials(table)

    def to_json(self) -> dict[str, Any]:
        return {
            user: {mech: cred.to_json() for mech, cred in sorted(creds.items())}
            for user, creds in sorted(self._table.items())
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScramCredentials:
        """The table ``to_json`` wrote; raises ValueError/KeyError/TypeError when damaged."""
        if not isinstance(data, Mapping):
            raise TypeError("the credentials are not a JSON object")
        return cls(
            {
                str(user): {
                    mech: ScramCredential.from_json(mech, cred) for mech, cred in creds.items()
                }
                for user, creds in data.items()
            }
        )

    def __len__(self) -> int:
        return len(self._table)
