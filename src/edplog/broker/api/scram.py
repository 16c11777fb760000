"""DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554).

Only what a SCRAM server needs is stored (:mod:`edplog.security.scram`): the client sends a
salted password, the broker derives the stored and server keys from it and drops it. The
request is judged per user, with Kafka's errors: a mechanism other than SCRAM-SHA-256/512 is
UNSUPPORTED_SASL_MECHANISM, an iteration count outside 4096..16384 or an empty name
UNACCEPTABLE_CREDENTIAL, a user named twice for one mechanism DUPLICATE_RESOURCE, and deleting
a credential that does not exist RESOURCE_NOT_FOUND. A user with any error has none of its
alterations applied; the others are written together, then answered.
"""

from __future__ import annotations

from typing import Any

from ...security.scram import (
    MAX_ITERATIONS,
    MECHANISMS,
    MIN_ITERATIONS,
    ScramCredential,
    ScramCredentials,
    credential_from_salted_password,
)
from ..context import ErrorCode, RequestContext, Services, code_for, message_for
from .registry import ApiSpec

Body = dict[str, Any]


def describe_error(req: Body, code: ErrorCode) -> Body:
    return {"throttle_time_ms": 0, "error_code": code, "error_message": None, "results": []}


async def describe_user_scram_credentials(
    ctx: RequestContext, services: Services, req: Body
) -> Body:
    """Mechanisms and iteration counts per user (never a key); all users when none named."""
    assert services.credentials is not None
    table = services.credentials.credentials
    names = req["users"]
    results = []
    if not names:
        users = table.users()
        duplicates: set[str] = set()
    else:
        requested = [u["name"] for u in names]
        users = list(dict.fromkeys(requested))
        duplicates = {u for u in users if requested.count(u) > 1}
    for user in users:
        creds = table.of(user)
        if user in duplicates:
            code, message = ErrorCode.DUPLICATE_RESOURCE, f"user {user!r} is named twice"
        elif not creds:
            code, message = ErrorCode.RESOURCE_NOT_FOUND, f"user {user!r} has no credentials"
        else:
            code, message = ErrorCode.NONE, None
        infos = (
            []
            if code
            else [
                {"mechanism": _mechanism_id(m), "iterations": c.iterations}
                for m, c in sorted(creds.items())
            ]
        )
        results.append(
            {"user": user, "error_code": code, "error_message": message, "credential_infos": infos}
        )
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "results": results,
    }


def _mechanism_id(name: str) -> int:
    return next(i for i, n in MECHANISMS.items() if n == name)


def _check(
    req: Body, table: ScramCredentials
) -> tuple[dict[str, tuple[int, str]], list[tuple[str, str]], list[tuple[str, ScramCredential]]]:
    """(errors by user, deletions, upsertions) — only users without an error keep theirs."""
    errors: dict[str, tuple[int, str]] = {}
    seen: dict[tuple[str, int], int] = {}

    def fail(user: str, code: int, message: str) -> None:
        errors.setdefault(user, (code, message))

    items = [("delete", d) for d in req["deletions"]] + [("upsert", u) for u in req["upsertions"]]
    for _, item in items:
        key = (item["name"], item["mechanism"])
        seen[key] = seen.get(key, 0) + 1
    deletions: list[tuple[str, str]] = []
    upsertions: list[tuple[str, ScramCredential]] = []
    for kind, item in items:
        user, mech_id = item["name"], item["mechanism"]
        mechanism = MECHANISMS.get(mech_id)
        if not user:
            fail(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "the user name is empty")
        elif mechanism is None:
            fail(user, ErrorCode.UNSUPPORTED_SASL_MECHANISM, f"unknown SCRAM mechanism {mech_id}")
        elif seen[(user, mech_id)] > 1:
            fail(user, ErrorCode.DUPLICATE_RESOURCE, f"{mechanism} of {user!r} is altered twice")
        elif kind == "delete":
            if table.lookup(user, mechanism) is None:
                fail(user, ErrorCode.RESOURCE_NOT_FOUND, f"{user!r} has no {mechanism} credential")
            else:
                deletions.append((user, mechanism))
        else:
            iterations = item["iterations"]
            if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
                fail(
                    user,
                    ErrorCode.UNACCEPTABLE_CREDENTIAL,
                    f"{iterations} iterations is outside {MIN_ITERATIONS}..{MAX_ITERATIONS}",
                )
            elif not item["salted_password"] or not item["salt"]:
                fail(user, ErrorCode.UNACCEPTABLE_CREDENTIAL, "empty salt or salted password")
            else:
                upsertions.append(
                    (
                        user,
                        credential_from_salted_password(
                            mechanism,
                            bytes(item["salt"]),
                            iterations,
                            bytes(item["salted_password"]),
                        ),
                    )
                )
    deletions = [d for d in deletions if d[0] not in errors]
    upsertions = [u for u in upsertions if u[0] not in errors]
    return errors, deletions, upsertions


async def alter_user_scram_credentials(ctx: RequestContext, services: Services, req: Body) -> Body:
    """Apply the valid users' deletions and upsertions in one write; one result per user."""
    store = services.credentials
    assert store is not None
    users = list(
        dict.fromkeys(
            [d["name"] for d in req["deletions"]] + [u["name"] for u in req["upsertions"]]
        )
    )
    outcome: dict[str, tuple[int, str | None]] = {}

    def make(current: ScramCredentials) -> ScramCredentials:
        errors, deletions, upsertions = _check(req, current)
        outcome.update(errors)
        return current.altered(deletions, upsertions)

    try:
        await store.replace(make)
    except Exception as exc:
        code, message = code_for(exc), message_for(exc)
        for user in users:
            outcome.setdefault(user, (code, message))
    return {
        "throttle_time_ms": 0,
        "results": [
            {
                "user": user,
                "error_code": outcome.get(user, (ErrorCode.NONE, None))[0],
                "error_message": outcome.get(user, (ErrorCode.NONE, None))[1],
            }
            for user in users
        ],
    }


def alter_error(req: Body, code: ErrorCode) -> Body:
    users = dict.fromkeys(
        [d["name"] for d in req["deletions"]] + [u["name"] for u in req["upsertions"]]
    )
    return {
        "throttle_time_ms": 0,
        "results": [{"user": u, "error_code": code, "error_message": None} for u in users],
    }


APIS = [
    ApiSpec(50, describe_user_scram_credentials, describe_error),
    ApiSpec(51, alter_user_scram_credentials, alter_error),
]
