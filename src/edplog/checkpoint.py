"""Small durable files of a partition directory, and the names of its segment files.

``log.checkpoint`` holds, one ``key value`` pair a line after a version line:
``recovery-point`` (every offset below it was fsynced: recovery after a crash starts at the
segment holding it) and ``log-start-offset`` (records below it are deleted). It is replaced
atomically (write, fsync, rename, fsync the directory), so a crash leaves the old or the new
one, never a torn file. ``.clean-shutdown`` exists only while the log is closed cleanly:
opening removes it, closing writes it after everything is flushed.
"""

from __future__ import annotations

import os
import re

CHECKPOINT = "log.checkpoint"
CLEAN_SHUTDOWN = ".clean-shutdown"
_VERSION = "0"
SEGMENT_RE = re.compile(r"^(\d{20})\.log$")
TEMP_SUFFIXES = (".cleaned", ".swap", ".deleted", ".tmp")


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> None:
    """Replace path with data so that a crash leaves either the old or the new content."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def read_checkpoint(directory: str) -> dict[str, int]:
    """The checkpoint's values; {} when there is none or it cannot be parsed."""
    try:
        with open(os.path.join(directory, CHECKPOINT), encoding="ascii") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError):
        return {}
    if not lines or lines[0] != _VERSION:
        return {}
    out: dict[str, int] = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def write_checkpoint(directory: str, recovery_point: int, log_start_offset: int) -> None:
    text = f"{_VERSION}\nrecovery-point {recovery_point}\nlog-start-offset {log_start_offset}\n"
    write_atomically(os.path.join(directory, CHECKPOINT), text.encode("ascii"))


def segment_bases(directory: str) -> list[int]:
    """Base offsets of the .log files in directory, ascending."""
    bases = []
    for name in os.listdir(directory):
        m = SEGMENT_RE.match(name)
        if m:
            bases.append(int(m.group(1)))
    return sorted(bases)


def remove_leftovers(directory: str) -> list[str]:
    """Delete temporary files an interrupted operation left, and index files without a .log.

    Returns the names removed.
    """
    removed = []
    names = set(os.listdir(directory))
    for name in sorted(names):
        stem, _, ext = name.partition(".")
        orphan_index = ext in ("index", "timeindex") and f"{stem}.log" not in names
        if name.endswith(TEMP_SUFFIXES) or orphan_index:
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    return removed
