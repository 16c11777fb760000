"""SCRAM credentials against RFC 7677's SCRAM-SHA-256 example: the stored and server keys
made from the example's password verify the example's client proof and reproduce its
server signature; the JSON form round-trips; the table's alterations are copies."""

from __future__ import annotations

import base64
import hashlib
import hmac

from edplog.security.scram import (
    ScramCredentials,
    credential_from_password,
    credential_from_salted_password,
    salted_password,
)

# RFC 7677, section 3.
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST_BARE = "n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL_NO_PROOF = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_rfc7677_exchange_verifies_with_the_stored_keys() -> None:
    """The stored key checks the RFC's client proof (H(proof XOR signature) == StoredKey) and
    the server key yields the RFC's server signature; a wrong password's keys do not."""
    cred = credential_from_password("SCRAM-SHA-256", "pencil", salt=SALT, iterations=4096)
    auth = f"{CLIENT_FIRST_BARE},{SERVER_FIRST},{CLIENT_FINAL_NO_PROOF}".encode()
    client_signature = hmac.digest(cred.stored_key, auth, "sha256")
    client_key = bytes(a ^ b for a, b in zip(PROOF, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == cred.stored_key
    assert hmac.digest(cred.server_key, auth, "sha256") == SERVER_SIGNATURE
    wrong = credential_from_password("SCRAM-SHA-256", "pencil2", salt=SALT, iterations=4096)
    assert wrong.stored_key != cred.stored_key


def test_salted_password_path_equals_password_path() -> None:
    """What AlterUserScramCredentials carries (the salted password) gives the same stored
    credential as the password itself, for both mechanisms."""
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        direct = credential_from_password(mech, "secret", salt=b"salt-1234", iterations=4096)
        salted = salted_password(mech, "secret", b"salt-1234", 4096)
        assert credential_from_salted_password(mech, b"salt-1234", 4096, salted) == direct


def test_table_round_trips_and_alterations_are_copies() -> None:
    """to_json/from_json give back the same credentials; altered() leaves the original
    table as it was; deleting a user's last mechanism removes the user."""
    a256 = credential_from_password("SCRAM-SHA-256", "a", iterations=4096)
    a512 = credential_from_password("SCRAM-SHA-512", "a", iterations=8192)
    table = ScramCredentials().altered([], [("alice", a256), ("alice", a512)])
    back = ScramCredentials.from_json(table.to_json())
    assert back.lookup("alice", "SCRAM-SHA-512") == a512
    assert back.lookup("alice", "SCRAM-SHA-256") == a256
    fewer = back.altered([("alice", "SCRAM-SHA-256"), ("alice", "SCRAM-SHA-512")], [])
    assert fewer.users() == [] and back.users() == ["alice"]
    assert fewer.lookup("alice", "SCRAM-SHA-256") is None
