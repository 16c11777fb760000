"""Starting the child processes of edplog's local tools: broker processes of a development
cluster, its ZooKeeper, the servers ``edplog perf compare`` measures against.

Every child starts in a session of its own, so that a Ctrl-C in the terminal reaches only the
parent, which then stops its children in order, each by its PID alone (never by name: on a
shared machine other processes are not ours to end).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import IO


def spawn(
    argv: Sequence[str], out: IO[bytes] | int, *, cwd: str | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, stdin from /dev/null, stdout and stderr both
    to ``out`` (an open file, or ``subprocess.PIPE`` to read them from ``.stdout``)."""
    return subprocess.Popen(
        list(argv),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        start_new_session=True,
    )
