"""The safety checker of the fault campaign (docs/cluster-chaos.md, reliability.md §3.6).

A history is a sequence of JSON records, one per line in a file::

    {"time": 12.5, "process": 0, "type": "invoke", "f": "send", "partition": 2,
     "value": "p0-17"}
    {"time": 12.6, "process": 0, "type": "ok", "f": "send", "partition": 2,
     "value": "p0-17", "offset": 40}
    {"time": 99.0, "process": "final", "type": "ok", "f": "final-read", "partition": 2,
     "value": "p0-17", "offset": 40}

``type`` is ``invoke`` before a send, then ``ok`` (acknowledged at ``offset``), ``fail`` (the
broker definitely did not store it) or ``info`` (unknown: a timeout, a lost connection). A
``poll`` or ``final-read`` record (type ``ok``) is one record a consumer read. Other ``f``
values (the nemesis's events, say) are carried along and ignored here. Values are unique per
history: a producer writes ``p<process>-<seq>``.

Per partition the checker finds:

- ``lost``: an acknowledged send whose value the final full read does not hold;
- ``inconsistent``: two different values seen at one offset (by the acknowledgement, any poll
  or the final read);
- ``duplicate``: one value at two offsets;
- ``aborted_read``: a value read whose send definitely failed;
- ``phantom_read``: a value read that no process ever sent;
- ``read_then_truncated``: a value a poll returned that the final read does not hold at that
  offset (a consumer saw data that was later cut away);
- ``nonmonotonic_send``: one producer's acknowledged offsets out of its sequence order;
- ``nonmonotonic_poll``: a consumer's poll at or below the offset of its previous one;
- ``skipped_poll``: a consumer's poll jumping over an offset that holds a record in the
  final read.

The final read must be the whole partition from offset 0 (the workload reads to the high
watermark with a fresh consumer); a history without one cannot be checked for loss.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANOMALIES = (
    "lost",
    "inconsistent",
    "duplicate",
    "aborted_read",
    "phantom_read",
    "read_then_truncated",
    "nonmonotonic_send",
    "nonmonotonic_poll",
    "skipped_poll",
)
#: The anomalies that break a promise acks=all + idempotence + unclean election off makes.
SAFETY = ANOMALIES
#: Examples kept per anomaly (the counts are always complete).
MAX_EXAMPLES = 10

_VALUE = re.compile(r"^p(?P<process>[^-]+)-(?P<seq>\d+)$")


@dataclass
class CheckResult:
    """What a history shows: a count per anomaly, a few examples of each, and the
    send outcomes."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ANOMALIES, 0))
    examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in ANOMALIES}
    )
    sends: dict[str, int] = field(
        default_factory=lambda: {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
    )
    #: Values whose send was indeterminate (info) and that the final read holds.
    info_recovered: int = 0
    partitions: list[int] = field(default_factory=list)
    final_read_records: int = 0
    has_final_read: bool = False
    #: Partitions the final read could not read to their end (loss cannot be ruled out).
    incomplete_final_read: list[int] = field(default_factory=list)

    def add(self, anomaly: str, **example: Any) -> None:
        self.counts[anomaly] += 1
        if len(self.examples[anomaly]) < MAX_EXAMPLES:
            self.examples[anomaly].append(example)

    @property
    def valid(self) -> bool:
        """No safety anomaly, and a complete final read to check loss against."""
        return (
            self.has_final_read
            and not self.incomplete_final_read
            and not any(self.counts[name] for name in SAFETY)
        )

    def summary(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "sends": dict(self.sends),
            "info_recovered": self.info_recovered,
            "final_read_records": self.final_read_records,
            "incomplete_final_read": list(self.incomplete_final_read),
            "anomalies": dict(self.counts),
            "examples": {k: v for k, v in self.examples.items() if v},
        }


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL history file (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _sequence(value: str) -> tuple[str, int] | None:
    match = _VALUE.match(value)
    return (match["process"], int(match["seq"])) if match else None


@dataclass
class _Partition:
    # offset -> values seen there (by acknowledgements, polls, final read)
    at_offset: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    # value -> offsets it was seen at
    offsets_of: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    final: dict[int, str] = field(default_factory=dict)
    final_values: set[str] = field(default_factory=set)
    acked: list[dict[str, Any]] = field(default_factory=list)
    polls: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def see(self, offset: int, value: str) -> None:
        self.at_offset[offset].add(value)
        self.offsets_of[value].add(offset)


def check(history: Iterable[dict[str, Any]]) -> CheckResult:
    """Check one history (records in the order they were logged)."""
    result = CheckResult()
    parts: dict[int, _Partition] = defaultdict(_Partition)
    outcome: dict[str, str] = {}  # value -> ok | fail | info (the last completion)
    invoked: set[str] = set()
    for record in history:
        f, kind = record.get("f"), record.get("type")
        if f == "send":
            value = str(record["value"])
            if kind == "invoke":
                invoked.add(value)
                result.sends["invoke"] += 1
                continue
            if kind not in ("ok", "fail", "info"):
                continue
            result.sends[kind] += 1
            outcome[value] = kind
            if kind == "ok":
                part = parts[int(record["partition"])]
                part.acked.append(record)
                part.see(int(record["offset"]), value)
        elif f in ("poll", "final-read") and kind == "ok":
            value, offset = str(record["value"]), int(record["offset"])
            part = parts[int(record["partition"])]
            part.see(offset, value)
            if f == "poll":
                part.polls[str(record.get("process"))].append(record)
            else:
                result.has_final_read = True
                result.final_read_records += 1
                part.final[offset] = value
                part.final_values.add(value)
        elif f == "final-read" and kind == "invoke":
            result.has_final_read = True
        elif f == "final-read" and kind == "fail":
            result.incomplete_final_read.append(int(record["partition"]))
    result.partitions = sorted(parts)
    for partition in result.partitions:
        _check_partition(result, partition, parts[partition], outcome, invoked)
    return result


def _check_partition(
    result: CheckResult,
    partition: int,
    part: _Partition,
    outcome: dict[str, str],
    invoked: set[str],
) -> None:
    for offset in sorted(part.at_offset):
        values = part.at_offset[offset]
        if len(values) > 1:
            result.add("inconsistent", partition=partition, offset=offset, values=sorted(values))
    for value in sorted(part.offsets_of):
        offsets = part.offsets_of[value]
        if len(offsets) > 1:
            result.add("duplicate", partition=partition, value=value, offsets=sorted(offsets))
    for record in part.acked:
        value = str(record["value"])
        if result.has_final_read and value not in part.final_values:
            result.add("lost", partition=partition, value=value, offset=record["offset"])
    read_values = part.final_values | {
        str(r["value"]) for polls in part.polls.values() for r in polls
    }
    for value in sorted(read_values):
        if outcome.get(value) == "fail":
            offsets = sorted(part.offsets_of[value])
            result.add("aborted_read", partition=partition, value=value, offsets=offsets)
        if value not in invoked and value not in outcome:
            result.add("phantom_read", partition=partition, value=value)
        if outcome.get(value) == "info" and value in part.final_values:
            result.info_recovered += 1
    _check_send_order(result, partition, part)
    _check_polls(result, partition, part)


def _check_send_order(result: CheckResult, partition: int, part: _Partition) -> None:
    # Idempotence keeps one producer's records to a partition in its send order.
    by_producer: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for record in part.acked:
        parsed = _sequence(str(record["value"]))
        if parsed is not None:
            by_producer[parsed[0]].append((parsed[1], int(record["offset"]), str(record["value"])))
    for producer, acks in by_producer.items():
        acks.sort()
        for (_, prev_offset, prev_value), (_, offset, value) in zip(acks, acks[1:], strict=False):
            if offset <= prev_offset:
                result.add(
                    "nonmonotonic_send",
                    partition=partition,
                    producer=producer,
                    values=[prev_value, value],
                    offsets=[prev_offset, offset],
                )


def _check_polls(result: CheckResult, partition: int, part: _Partition) -> None:
    final_offsets = sorted(part.final)
    for process, polls in part.polls.items():
        for record in polls:
            offset, value = int(record["offset"]), str(record["value"])
            if result.has_final_read and part.final.get(offset) != value:
                result.add(
                    "read_then_truncated",
                    partition=partition,
                    process=process,
                    offset=offset,
                    value=value,
                    final=part.final.get(offset),
                )
        for prev, cur in zip(polls, polls[1:], strict=False):
            prev_offset, offset = int(prev["offset"]), int(cur["offset"])
            if offset <= prev_offset:
                result.add(
                    "nonmonotonic_poll",
                    partition=partition,
                    process=process,
                    offsets=[prev_offset, offset],
                )
                continue
            skipped = list(_between(final_offsets, prev_offset, offset))
            if skipped:
                result.add(
                    "skipped_poll",
                    partition=partition,
                    process=process,
                    offsets=[prev_offset, offset],
                    skipped=skipped[:MAX_EXAMPLES],
                )


def _between(sorted_offsets: list[int], low: int, high: int) -> Iterator[int]:
    """Offsets strictly between ``low`` and ``high``."""
    start = bisect.bisect_right(sorted_offsets, low)
    end = bisect.bisect_left(sorted_offsets, high)
    yield from sorted_offsets[start:end]


def check_file(path: str | Path) -> CheckResult:
    return check(read_history(path))
