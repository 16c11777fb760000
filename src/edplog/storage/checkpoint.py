"""Small durable files of a partition directory.

``log.checkpoint`` holds, one ``key value`` pair a line after a version line:
``recovery-point`` (every offset below it was fsynced: recovery after a crash starts at the
segment holding it) and ``log-start-offset`` (records below it are deleted).

``.clean-shutdown`` exists only while the log is closed cleanly: closing writes it after
everything is flushed, opening removes it. It records where the log ended
(``log-end-offset``) and how long the active segment was (``active-segment``,
``active-size``), so bytes found past that end on the next open are known to lie beyond every
record ever acknowledged, and are cut with a warning rather than treated as damage.

Every file here is replaced atomically (write, fsync, rename, fsync the directory): a crash
leaves the old or the new content, never a torn file.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

CHECKPOINT = "log.checkpoint"
CLEAN_SHUTDOWN = ".clean-shutdown"
_VERSION = "0"
TEMP_SUFFIXES = (".cleaned", ".swap", ".deleted", ".tmp")


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes, *, keep_previous: str | None = None) -> None:
    """Replace path with data so that a crash leaves either the old or the new content.

    With ``keep_previous``, the content being replaced is kept under that name (also
    atomically): a reader that finds ``path`` unusable can fall back to it.
    """
    # A name of this thread's own: two writers of one file never share a temporary.
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if keep_previous is not None and os.path.exists(path):
        # A second name for the current content (no copy); the rename below then leaves
        # the old inode under that name only.
        linked = keep_previous + ".tmp"
        if os.path.exists(linked):
            os.unlink(linked)
        os.link(path, linked)
        os.replace(linked, keep_previous)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def _read_pairs(path: str) -> dict[str, int] | None:
    """``key value`` integer pairs after the version line; None when unreadable."""
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != _VERSION:
        return None
    out: dict[str, int] = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _write_pairs(path: str, pairs: dict[str, int]) -> None:
    text = _VERSION + "\n" + "".join(f"{k} {v}\n" for k, v in pairs.items())
    write_atomically(path, text.encode("ascii"))


def read_checkpoint(directory: str) -> dict[str, int]:
    """The checkpoint's values; {} when there is none or it cannot be parsed."""
    return _read_pairs(os.path.join(directory, CHECKPOINT)) or {}


def write_checkpoint(directory: str, recovery_point: int, log_start_offset: int) -> None:
    _write_pairs(
        os.path.join(directory, CHECKPOINT),
        {"recovery-point": recovery_point, "log-start-offset": log_start_offset},
    )


@dataclass(frozen=True)
class CleanShutdown:
    """Where a cleanly closed log ended (fields are -1 when an older marker lacks them)."""

    log_end_offset: int = -1
    active_segment: int = -1
    active_size: int = -1


def read_clean_shutdown(directory: str) -> CleanShutdown | None:
    """The marker of a clean shutdown, or None when the log was not closed cleanly."""
    path = os.path.join(directory, CLEAN_SHUTDOWN)
    if not os.path.exists(path):
        return None
    pairs = _read_pairs(path) or {}
    return CleanShutdown(
        pairs.get("log-end-offset", -1),
        pairs.get("active-segment", -1),
        pairs.get("active-size", -1),
    )


def write_clean_shutdown(directory: str, marker: CleanShutdown) -> None:
    _write_pairs(
        os.path.join(directory, CLEAN_SHUTDOWN),
        {
            "log-end-offset": marker.log_end_offset,
            "active-segment": marker.active_segment,
            "active-size": marker.active_size,
        },
    )


def remove_clean_shutdown(directory: str) -> None:
    try:
        os.unlink(os.path.join(directory, CLEAN_SHUTDOWN))
    except FileNotFoundError:
        pass
