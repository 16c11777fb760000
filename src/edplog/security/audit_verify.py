"""Checking an audit log's chain (``edplog audit verify``): the first bad line, or a summary.

Kept apart from the writer (security/audit.py, whose docstring describes the chain) because
it is what an auditor runs, on a copy of the file, far from any broker: it needs the file and,
for a keyed log, the key, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .audit_chain import STARTED, Chain, parse_record, split_line


@dataclass
class Verdict:
    """What :func:`verify` found: ``problem`` None when the chain is intact."""

    records: int = 0
    first_time: str | None = None
    last_time: str | None = None
    last_sequence: int = -1
    last_hash: str = ""
    recovered_torn: list[int] = field(default_factory=list)  # line numbers
    problem: str | None = None
    kind: str | None = None  # edited, removed, reordered, torn, unkeyed
    line: int | None = None
    first_sequence: int = 0
    repeated: int = 0  # records of a topic sent twice (verify_records)


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    with path.open("rb") as f:
        number = 0
        for raw in f:
            number += 1
            whole = raw.endswith(b"\n")
            yield number, raw[:-1] if whole else raw, whole


def verify(path: str | Path, key: bytes | None = None) -> Verdict:
    """Check the chain of ``path`` (see the module docstring): the first problem found, or a
    summary."""
    return _check(((f"line {n}", n, line, whole) for n, line, whole in _lines(Path(path))), key)


def verify_records(
    records: Iterable[tuple[str, bytes]], key: bytes | None = None, *, may_start_late: bool = False
) -> Verdict:
    """Check one writer's chain from its records in a topic, in offset order: ``(where,
    value)`` pairs (``where`` names the record in a problem, "offset 42"). A record that
    repeats the one before it byte for byte (a produce sent again after its answer was lost)
    is counted in ``repeated``, not taken for tampering. With ``may_start_late`` (retention
    deleted the partition's first records) the chain may begin after sequence 0."""
    return _check(
        ((where, None, value, True) for where, value in records),
        key,
        first_sequence=None if may_start_late else 0,
        repeats=True,
    )


def _check(
    lines: Iterable[tuple[str, int | None, bytes, bool]],
    key: bytes | None,
    *,
    first_sequence: int | None = 0,
    repeats: bool = False,
) -> Verdict:
    chain = Chain(key)
    v = Verdict()
    expected_prev = ""
    torn: tuple[str, int | None, int] | None = None  # a torn line not yet vouched for
    started = first_sequence is not None

    def bad(kind: str, where: tuple[str, int | None], text: str) -> Verdict:
        v.kind, v.line, v.problem = kind, where[1], f"{where[0]}: {text}"
        return v

    for label, number, line, whole in lines:
        here = (label, number)
        parts = split_line(line)
        record = parse_record(line) if parts is not None else None
        if record is None:
            if not whole:
                return bad(
                    "torn",
                    here,
                    f"torn last line ({len(line)} bytes, a crash "
                    "mid-write?); every record before it is intact",
                )
            if torn is not None or repeats:
                return bad("edited", here if torn is None else torn[:2], "not a readable record")
            torn = (label, number, len(line))
            continue
        assert parts is not None
        seq = record["sequence"]
        if torn is not None:
            data = record.get("data") or {}
            if record.get("type") != STARTED or data.get("torn_bytes") != torn[2]:
                return bad("edited", torn[:2], "not a readable record")
            if torn[1] is not None:
                v.recovered_torn.append(torn[1])
            torn = None
        alg = record.get("hashalg")
        if key is not None and alg != chain.algorithm:
            return bad("edited", here, f"sequence {seq}: hashed with {alg!r}, not under the key")
        if key is None and alg == "hmac-sha256":
            v.kind, v.line = "unkeyed", number
            v.problem = "the records are HMAC-keyed: give --hmac-key-file to verify them"
            return v
        if key is None and alg != "sha256":
            return bad("edited", here, f"sequence {seq}: unknown hashalg {alg!r}")
        if chain.digest(parts[0]) != parts[1] or record["hash"] != parts[1]:
            return bad("edited", here, f"sequence {seq}: edited (its hash does not match)")
        if repeats and v.records and seq == v.last_sequence and parts[1] == v.last_hash:
            v.repeated += 1
            continue
        if not started:
            # The first record kept: where the chain starts is only known from it.
            started = True
            v.first_sequence = seq
            expected_prev = record["prevhash"]
            v.last_sequence = seq - 1
        if seq > v.last_sequence + 1:
            missing = f"{v.last_sequence + 1}" + (
                f"..{seq - 1}" if seq - 1 > v.last_sequence + 1 else ""
            )
            return bad(
                "removed",
                here,
                f"sequence {seq} follows {v.last_sequence}: record(s) {missing} removed (or moved)",
            )
        if seq <= v.last_sequence:
            return bad(
                "reordered",
                here,
                f"sequence {seq} after {v.last_sequence}: records moved or repeated",
            )
        if record["prevhash"] != expected_prev:
            return bad(
                "edited",
                here,
                f"sequence {seq}: does not follow the record before it (that one was replaced)",
            )
        v.records += 1
        v.first_time = v.first_time or record.get("time")
        v.last_time = record.get("time")
        v.last_sequence, v.last_hash = seq, parts[1]
        expected_prev = parts[1]
    if torn is not None:
        return bad("edited", torn[:2], "not a readable record")
    return v
