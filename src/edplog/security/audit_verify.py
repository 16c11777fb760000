"""Checking an audit log's chain (``edplog audit verify``): the first bad line, or a summary.

Kept apart from the writer (security/audit.py, whose docstring describes the chain) because
it is what an auditor runs, on a copy of the file, far from any broker: it needs the file and,
for a keyed log, the key, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .audit import STARTED, Chain, parse_record, split_line


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
    chain = Chain(key)
    v = Verdict()
    expected_prev = ""
    torn: tuple[int, int] | None = None  # (line, bytes) of a torn line not yet vouched for

    def bad(kind: str, line: int, text: str) -> Verdict:
        v.kind, v.line, v.problem = kind, line, f"line {line}: {text}"
        return v

    for number, line, whole in _lines(Path(path)):
        parts = split_line(line)
        record = parse_record(line) if parts is not None else None
        if record is None:
            if not whole:
                return bad(
                    "torn",
                    number,
                    f"torn last line ({len(line)} bytes, a crash "
                    "mid-write?); every record before it is intact",
                )
            if torn is not None:
                return bad("edited", torn[0], "not a readable record")
            torn = (number, len(line))
            continue
        assert parts is not None
        seq = record["sequence"]
        if torn is not None:
            data = record.get("data") or {}
            if record.get("type") != STARTED or data.get("torn_bytes") != torn[1]:
                return bad("edited", torn[0], "not a readable record")
            v.recovered_torn.append(torn[0])
            torn = None
        alg = record.get("hashalg")
        if key is not None and alg != chain.algorithm:
            return bad("edited", number, f"sequence {seq}: hashed with {alg!r}, not under the key")
        if key is None and alg == "hmac-sha256":
            v.kind, v.line = "unkeyed", number
            v.problem = "the records are HMAC-keyed: give --hmac-key-file to verify them"
            return v
        if key is None and alg != "sha256":
            return bad("edited", number, f"sequence {seq}: unknown hashalg {alg!r}")
        if chain.digest(parts[0]) != parts[1] or record["hash"] != parts[1]:
            return bad("edited", number, f"sequence {seq}: edited (its hash does not match)")
        if seq > v.last_sequence + 1:
            missing = f"{v.last_sequence + 1}" + (
                f"..{seq - 1}" if seq - 1 > v.last_sequence + 1 else ""
            )
            return bad(
                "removed",
                number,
                f"sequence {seq} follows {v.last_sequence}: record(s) {missing} removed (or moved)",
            )
        if seq <= v.last_sequence:
            return bad(
                "reordered",
                number,
                f"sequence {seq} after {v.last_sequence}: records moved or repeated",
            )
        if record["prevhash"] != expected_prev:
            return bad(
                "edited",
                number,
                f"sequence {seq}: does not follow the record before it (that one was replaced)",
            )
        v.records += 1
        v.first_time = v.first_time or record.get("time")
        v.last_time = record.get("time")
        v.last_sequence, v.last_hash = seq, parts[1]
        expected_prev = parts[1]
    if torn is not None:
        return bad("edited", torn[0], "not a readable record")
    return v
