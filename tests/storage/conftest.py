"""Helpers shared by the storage tests: building logs, imaging their files, reading them back."""

from __future__ import annotations

import os
import shutil

import pytest

from edplog import Log

# Small segments and indexes so that a few hundred records span several segments and index
# files, and a directory image stays cheap to write out once per test case.
SMALL = {
    "segment.bytes": 20_000,
    "segment.index.bytes": 4096,
    "index.interval.bytes": 256,
}


def value_of(i: int) -> bytes:
    return b"value-%06d-" % i + bytes([i % 251]) * (i % 37)


def contents(log: Log) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every readable record."""
    if log.log_end_offset == log.log_start_offset:
        return []
    return [(r.offset, r.key, r.value) for r in log.read(log.log_start_offset)]


def batch_ends(data: bytes) -> list[int]:
    """Byte positions where whole batches end in a segment image (0 included)."""
    ends = [0]
    pos = 0
    while pos + 12 <= len(data):
        pos += int.from_bytes(data[pos + 8 : pos + 12], "big") + 12
        if pos > len(data):
            break
        ends.append(pos)
    return ends


def snapshot(path: str) -> dict[str, bytes]:
    """Every file of a log directory, as it lies on disk now (a crash image). A file that
    goes away while the image is taken (a background checkpoint's temporary, renamed into
    place) is left out, as it would be from a crash image taken a moment later."""
    out = {}
    for name in os.listdir(path):
        try:
            with open(os.path.join(path, name), "rb") as f:
                out[name] = f.read()
        except FileNotFoundError:
            continue
    return out


def restore(image: dict[str, bytes], path: str) -> None:
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    for name, data in image.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


def segment_names(image: dict[str, bytes]) -> list[str]:
    return sorted(n for n in image if n.endswith(".log"))


def index_view(log: Log) -> list[tuple[int, int, int, int]]:
    """What the indexes answer: (base, size, next offset, max timestamp) per segment plus
    the index floor entry of every offset."""
    rows = []
    for seg in log.segments:
        rows.append((seg.base_offset, seg.size, seg.next_offset, seg.max_timestamp_ms))
        for off in range(seg.base_offset, seg.next_offset):
            rows.append(seg.index_lookup(off) + (off, -1))
    return rows


@pytest.fixture
def logdir(tmp_path):
    return str(tmp_path / "topic-0")
