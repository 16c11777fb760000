"""``edplog dump`` and ``edplog verify``: look inside partition files without changing them.

Both read the files directly (never through :class:`~edplog.Log`, which would recover and
rewrite a damaged tail): what they report is what is on disk.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import _native
from ..codecs import CODEC_NAMES
from ..errors import CorruptRecordError
from ..storage.checkpoint import read_clean_shutdown
from ..storage.leader_epoch import FILE_NAME as LEADER_EPOCH_FILE
from ..storage.leader_epoch import LeaderEpochCache
from ..storage.producer_state import ProducerStateManager, snapshot_offsets, snapshot_path
from ..storage.segments import SEGMENT_RE, orphan_index_bases
from ..storage.topic_registry import PREVIOUS_SUFFIX, TOPICS_FILE, parse_topics_file

_CHUNK = 8 << 20


@dataclass
class BatchInfo:
    position: int
    batch: _native.Batch


class Damage(Exception):
    """A problem found in a file, with where it is."""

    def __init__(self, path: str, position: int | None, message: str) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{path}{where}: {message}")
        self.path = path
        self.position = position


def iter_batches(path: str, records: bool = False) -> Iterator[BatchInfo]:
    """Every batch of a .log file, CRC checked; raises Damage at the first bad one."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            data = f.read(_CHUNK)
            whole = _native.whole_batches(data)
            if not whole:
                length = _native.announced_batch_bytes(data)
                if len(data) < 61 or length <= len(data) or pos + length > size:
                    raise Damage(path, pos, f"partial batch: {size - pos} bytes left at the end")
                f.seek(pos)
                data = f.read(length)
                whole = len(data)
            view = memoryview(data)[:whole]
            try:
                batches = _native.decode_batches(view, verify=True, records=records)
                _check_records(view)
            except CorruptRecordError as exc:
                raise Damage(path, pos + (exc.position or 0), str(exc)) from None
            for b in batches:
                yield BatchInfo(pos, b)
                pos += b.size_bytes


def _check_records(data: memoryview) -> None:
    """Walk every record of every batch, compressed ones decompressed (bounded), when the
    extension has the records walker; the batch checks above cover the rest."""
    validate = getattr(_native, "validate_records", None)
    if validate is not None:
        validate(data, False)


def read_index(path: str, entry: str) -> list[tuple[int, int]]:
    """Entries of an .index ('>II') or .timeindex ('>qI') file, trailing zero entries dropped."""
    fmt = struct.Struct(entry)
    with open(path, "rb") as f:
        data = f.read()
    entries = [fmt.unpack_from(data, i) for i in range(0, len(data) - fmt.size + 1, fmt.size)]
    while entries and entries[-1] == (0, 0):
        entries.pop()
    return entries


# ---- dump -------------------------------------------------------------------------------


def _ts(ms: int) -> str:
    if ms < 0:
        return str(ms)
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _show(value: bytes | None, limit: int = 80) -> str:
    if value is None:
        return "null"
    text = value[:limit].decode("utf-8", "backslashreplace")
    return text + ("..." if len(value) > limit else "")


def dump_segment(path: str, records: bool, out: Any) -> int:
    print(f"Dumping {path}", file=out)
    try:
        for info in iter_batches(path, records=records):
            b = info.batch
            print(
                f"baseOffset: {b.base_offset} lastOffset: {b.last_offset} count: {b.record_count} "
                f"position: {info.position} size: {b.size_bytes} "
                f"{b.timestamp_type}: {_ts(b.max_timestamp_ms)} "
                f"compresscodec: {CODEC_NAMES[b.attributes & 7]} crc: {b.crc} isvalid: true "
                f"producerId: {b.producer_id} producerEpoch: {b.producer_epoch} "
                f"baseSequence: {b.base_sequence} partitionLeaderEpoch: {b.leader_epoch} "
                f"isTransactional: {str(b.is_transactional).lower()} "
                f"isControl: {str(b.is_control).lower()}",
                file=out,
            )
            for r in b.records:
                headers = ", ".join(f"{k}={_show(v)}" for k, v in r.headers)
                print(
                    f"| offset: {r.offset} {b.timestamp_type}: {r.timestamp_ms} "
                    f"key: {_show(r.key)} value: {_show(r.value)} headers: [{headers}]",
                    file=out,
                )
    except Damage as exc:
        print(f"DAMAGED: {exc}", file=out)
        return 1
    return 0


def dump_index(path: str, out: Any) -> int:
    base = int(os.path.basename(path).split(".")[0])
    if path.endswith(".timeindex"):
        for ts, rel in read_index(path, ">qI"):
            print(f"timestamp: {ts} offset: {base + rel}", file=out)
    else:
        for rel, pos in read_index(path, ">II"):
            print(f"offset: {base + rel} position: {pos}", file=out)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    paths = _segment_paths(args.path)
    if not paths:
        print(f"edplog dump: no segment files at {args.path}", file=sys.stderr)
        return 2
    rc = 0
    for path in paths:
        if path.endswith((".index", ".timeindex")):
            rc |= dump_index(path, sys.stdout)
        else:
            rc |= dump_segment(path, args.records, sys.stdout)
    return rc


def _segment_paths(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        return []
    return [os.path.join(path, name) for name in sorted(os.listdir(path)) if SEGMENT_RE.match(name)]


# ---- verify -----------------------------------------------------------------------------


def verify_partition(directory: str) -> tuple[int, list[str]]:
    """Check one partition: every batch (structure, CRC, every record, compressed ones
    decompressed), offsets ascending and contiguous from segment to segment (a gap is a lost
    segment), index files (size, alignment, entries), index files without their .log, bytes
    past the end recorded at a clean shutdown, and the producer snapshots and leader-epoch
    checkpoint. Returns (batches checked, problems found).
    """
    problems: list[str] = []
    checked = 0
    next_offset: int | None = None
    for base in orphan_index_bases(directory):
        problems.append(
            f"{os.path.join(directory, f'{base:020d}.log')}: missing (its index files remain); "
            "the offsets it held are lost"
        )
    problems += _verify_clean_end(directory)
    for log_path in _segment_paths(directory):
        base = int(os.path.basename(log_path)[:20])
        if next_offset is not None and base != next_offset:
            problems.append(
                f"{log_path}: starts at offset {base} but the segment before it ends at "
                f"{next_offset}: "
                + (
                    "offsets are missing (a lost segment)"
                    if base > next_offset
                    else "the segments overlap"
                )
            )
        ends: dict[int, int] = {}  # batch position -> last offset
        try:
            for info in iter_batches(log_path):
                b = info.batch
                checked += 1
                behind = next_offset is not None and b.base_offset < next_offset
                if b.base_offset < base or behind:
                    raise Damage(
                        log_path,
                        info.position,
                        f"batch offset {b.base_offset} goes back (expected >= {next_offset})",
                    )
                ends[info.position] = b.last_offset
                next_offset = b.last_offset + 1
        except Damage as exc:
            problems.append(str(exc))
            next_offset = None
            continue
        if next_offset is None or not ends:
            next_offset = base
        stem = log_path[: -len(".log")]
        problems += _verify_indexes(stem, base, ends, next_offset)
    problems += _verify_state_files(directory)
    return checked, problems


def _verify_clean_end(directory: str) -> list[str]:
    marker = read_clean_shutdown(directory)
    if marker is None or marker.active_segment < 0 or marker.active_size < 0:
        return []
    path = os.path.join(directory, f"{marker.active_segment:020d}.log")
    if not os.path.exists(path):
        return []
    size = os.path.getsize(path)
    if size > marker.active_size:
        return [
            f"{path}: {size - marker.active_size} bytes past the end recorded at the last clean "
            f"shutdown ({marker.active_size}); opening the log cuts them"
        ]
    if size < marker.active_size:
        return [
            f"{path}: {marker.active_size - size} bytes shorter than at the last clean shutdown "
            f"({marker.active_size}): records were lost"
        ]
    return []


def _verify_state_files(directory: str) -> list[str]:
    problems = []
    state = ProducerStateManager(directory)
    for offset in snapshot_offsets(directory):
        path = snapshot_path(directory, offset)
        try:
            with open(path, "rb") as f:
                state.decode_into(f.read())
        except (OSError, CorruptRecordError) as exc:
            problems.append(f"{path}: unusable producer snapshot: {exc}")
    epochs = os.path.join(directory, LEADER_EPOCH_FILE)
    if os.path.exists(epochs) and LeaderEpochCache.read_file(epochs) is None:
        problems.append(f"{epochs}: unparsable (opening the log re-learns the epochs)")
    return problems


def verify_topics_file(data_dir: str) -> list[str]:
    """topics.json and its previous version, when the path is a data directory."""
    path = os.path.join(data_dir, TOPICS_FILE)
    prev = path + PREVIOUS_SUFFIX
    if not os.path.exists(path):
        return []
    try:
        parse_topics_file(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        try:
            parse_topics_file(prev)
        except (OSError, ValueError, KeyError, TypeError):
            fallback = "and the previous version is unusable too: move both aside to recover"
        else:
            fallback = f"opening falls back to {prev}"
        return [f"{path}: unusable ({exc}); {fallback}"]
    return []


def _verify_indexes(
    stem: str, base: int, ends: dict[int, int], next_offset: int | None
) -> list[str]:
    problems = []
    index_path, time_path = stem + ".index", stem + ".timeindex"
    for path, width in ((index_path, 8), (time_path, 12)):
        if os.path.exists(path) and os.path.getsize(path) % width:
            problems.append(
                f"{path}: {os.path.getsize(path)} bytes is not a whole number of {width}-byte "
                "entries (truncated or misaligned; opening the log rebuilds it)"
            )
    if problems:
        return problems
    if os.path.exists(index_path):
        prev = (-1, -1)
        for rel, pos in read_index(index_path, ">II"):
            offset = base + rel
            if ends.get(pos) != offset or (offset, pos) <= prev:
                problems.append(
                    f"{index_path}: entry (offset {offset}, position {pos}) does not match "
                    "the batch at that position"
                )
                break
            prev = (offset, pos)
    if os.path.exists(time_path):
        prev_ts = -(2**63)
        for ts, rel in read_index(time_path, ">qI"):
            offset = base + rel
            if ts <= prev_ts or (next_offset is not None and offset >= next_offset):
                problems.append(
                    f"{time_path}: entry (timestamp {ts}, offset {offset}) is out of order"
                )
                break
            prev_ts = ts
    return problems


def _partition_dirs(path: str) -> list[str]:
    if os.path.isfile(path):
        return [os.path.dirname(path) or "."]
    if any(SEGMENT_RE.match(n) for n in os.listdir(path)):
        return [path]
    return [
        os.path.join(path, n)
        for n in sorted(os.listdir(path))
        if os.path.isdir(os.path.join(path, n)) and not n.endswith("-delete")
    ]


def cmd_verify(args: argparse.Namespace) -> int:
    if not os.path.exists(args.path):
        print(f"edplog verify: {args.path} does not exist", file=sys.stderr)
        return 2
    total = 0
    damaged = 0
    if os.path.isdir(args.path):
        for p in verify_topics_file(args.path):
            print(f"DAMAGED {p}")
            damaged += 1
    for directory in _partition_dirs(args.path):
        checked, problems = verify_partition(directory)
        total += checked
        for p in problems:
            print(f"DAMAGED {p}")
        damaged += len(problems)
        if not problems and not args.quiet:
            print(f"ok {directory}: {checked} batches")
    print(f"{total} batches checked, {damaged} problems", file=sys.stderr)
    return 1 if damaged else 0


def register(commands: Any, perf: Any) -> None:
    p = commands.add_parser(
        "dump", help="print the batches (and records) of a segment, like kafka-dump-log"
    )
    p.add_argument("path", help="a .log, .index or .timeindex file, or a partition directory")
    p.add_argument("--records", action="store_true", help="print every record too")
    p.set_defaults(func=cmd_dump)
    v = commands.add_parser(
        "verify", help="check CRCs, records, offsets, gaps and index files; exit 1 on damage"
    )
    v.add_argument("path", help="a data directory, a partition directory or a segment file")
    v.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    v.set_defaults(func=cmd_verify)
