"""The files of a partition directory: segment names, listing, opening and removal.

A segment is ``<base offset, 20 digits>.log`` with its ``.index`` and ``.timeindex`` (Kafka's
names). Temporary files of an interrupted operation end in one of ``TEMP_SUFFIXES``; an index
file whose ``.log`` is missing is *not* a leftover: it is evidence of a missing segment.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .. import _native
from .checkpoint import TEMP_SUFFIXES

SEGMENT_RE = re.compile(r"^(\d{20})\.log$")
_INDEX_RE = re.compile(r"^(\d{20})\.(index|timeindex)$")


def file_names(directory: str, base: int) -> tuple[str, str, str]:
    """(log, index, timeindex) paths of the segment at ``base``."""
    return _native.segment_file_names(directory, base)


def segment_bases(directory: str) -> list[int]:
    """Base offsets of the .log files in directory, ascending."""
    bases = []
    for name in os.listdir(directory):
        m = SEGMENT_RE.match(name)
        if m:
            bases.append(int(m.group(1)))
    return sorted(bases)


def orphan_index_bases(directory: str) -> list[int]:
    """Base offsets that have an index file but no .log: segments whose data is missing."""
    names = set(os.listdir(directory))
    out = set()
    for name in names:
        m = _INDEX_RE.match(name)
        if m and f"{m.group(1)}.log" not in names:
            out.add(int(m.group(1)))
    return sorted(out)


def remove_leftovers(directory: str) -> list[str]:
    """Delete the temporary files an interrupted operation left. Returns the names removed."""
    removed = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(TEMP_SUFFIXES):
            path = os.path.join(directory, name)
            if os.path.isdir(path):
                continue
            os.unlink(path)
            removed.append(name)
    return removed


def open_segment(directory: str, base: int, config: Any, *, sealed: bool = False) -> Any:
    """Open (creating if needed) the segment at ``base`` with the log's index settings.

    Files are always opened for writing, so that damaged indexes can be rebuilt in place; a
    sealed segment's indexes are trimmed again once it is loaded."""
    seg = _native.Segment(
        directory, base, config["segment.index.bytes"], config["index.interval.bytes"], True
    )
    seg.sealed = sealed
    return seg


def delete_files(directory: str, base: int) -> None:
    """Remove a segment's three files (those that exist), the .log last: a crash in the
    middle leaves a segment whose indexes are rebuilt, never an index without its .log,
    which opening takes for a missing segment."""
    for name in reversed(file_names(directory, base)):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
