"""Several log directories (Kafka's JBOD ``log.dirs``): identity, placement and failure.

Each directory carries a ``meta.properties`` (Kafka's file, Java-properties text) naming the
cluster and the broker it belongs to, so a disk mounted on the wrong broker, or a directory
list that mixes two brokers' disks, is refused at start instead of being served.

A directory fails as a whole: the disk under it returned EIO or went read-only (EROFS). That
is not a full disk (ENOSPC), which a log survives and recovers from on its own; an I/O error
means the disk can no longer be trusted, so every partition in the directory goes offline at
once and the other directories keep serving, as in Kafka.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidConfigError
from .checkpoint import write_atomically

META_FILE = "meta.properties"
#: The suffix of the copy a move builds in the destination directory (Kafka's).
FUTURE_SUFFIX = "-future"
#: errno values that fail a whole log directory (ENOSPC does not: see the module docstring).
DIR_FAILURE_ERRNOS = frozenset({errno.EIO, errno.EROFS})


def split_log_dirs(value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """The directories of a ``log.dirs`` value (comma-separated) or a list, in order, each
    once; raises InvalidConfigError when there is none."""
    if isinstance(value, str | os.PathLike):
        items: Iterable[str | os.PathLike[str]] = os.fspath(value).split(",")
    else:
        items = value
    out: list[str] = []
    for item in items:
        path = os.fspath(item).strip()
        path = os.path.normpath(path) if path else path
        if path and os.path.abspath(path) not in {os.path.abspath(p) for p in out}:
            out.append(path)
    if not out:
        raise InvalidConfigError("log.dirs names no directory")
    return out


def is_dir_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a disk failure that takes a whole log directory offline."""
    return isinstance(exc, OSError) and exc.errno in DIR_FAILURE_ERRNOS


@dataclass(frozen=True)
class DirSpace:
    total_bytes: int
    usable_bytes: int


def dir_space(path: str) -> DirSpace:
    """Size and free space (for an unprivileged writer) of the filesystem under ``path``."""
    st = os.statvfs(path)
    return DirSpace(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)


def dir_size_bytes(path: str) -> int:
    """The bytes of the files directly in ``path`` (a partition directory). A file removed
    while it is being counted (a deleted segment, a checkpoint's temporary file renamed) is
    left out; a directory that is itself renamed or removed meanwhile (a move's switch, a
    deletion) raises FileNotFoundError, as a missing one does, not a partial count."""
    total = 0
    vanished = False
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                vanished = True
    if vanished and not os.path.isdir(path):
        raise FileNotFoundError(errno.ENOENT, "renamed or removed while measured", path)
    return total


def read_meta(path: str) -> dict[str, str] | None:
    """The properties of ``<path>/meta.properties``, None when there is none."""
    try:
        with open(os.path.join(path, META_FILE), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    props: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def write_meta(path: str, props: Mapping[str, str]) -> None:
    text = "".join(f"{k}={v}\n" for k, v in sorted(props.items()))
    write_atomically(os.path.join(path, META_FILE), text.encode())


def check_meta(
    found: Mapping[str, Mapping[str, str]], cluster_id: str | None, broker_id: int
) -> str | None:
    """Check the meta.properties found (directory -> properties) against each other and this
    broker; returns the cluster id they record (None when no directory has one yet). Raises
    InvalidConfigError naming the directories that disagree."""
    stored_cluster: tuple[str, str] | None = None
    for path, props in found.items():
        stored_broker = props.get("broker.id", props.get("node.id"))
        if stored_broker is not None and stored_broker != str(broker_id):
            raise InvalidConfigError(
                f"{os.path.join(path, META_FILE)} belongs to broker {stored_broker}, "
                f"not to this broker ({broker_id}): is the right disk mounted here?"
            )
        cid = props.get("cluster.id")
        if cid is None:
            continue
        if stored_cluster is not None and cid != stored_cluster[1]:
            raise InvalidConfigError(
                f"the log dirs belong to different clusters: {stored_cluster[0]} has "
                f"cluster.id {stored_cluster[1]}, {path} has {cid}"
            )
        stored_cluster = (path, cid)
    if stored_cluster is not None and cluster_id is not None and cluster_id != stored_cluster[1]:
        raise InvalidConfigError(
            f"cluster.id is {cluster_id} but {stored_cluster[0]} belongs to cluster "
            f"{stored_cluster[1]}"
        )
    return stored_cluster[1] if stored_cluster else None
