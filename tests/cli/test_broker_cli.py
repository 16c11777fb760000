"""`edplog broker` on a bad command line: a message and exit code 2 (argparse's), never a
traceback; and the forms of --listen the help promises."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edplog", "broker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--config", "/nonexistent/server.properties"], "cannot read --config"),
        (["--listen", "127.0.0.1:abc"], "port 'abc'"),
        (["--listen", "127.0.0.1:70000"], "port '70000'"),
        (["--override", "num.partitions=abc"], "num.partitions"),
        (["--override", "message.max.bytes=-5"], "message.max.bytes"),
        (["--override", "listeners=SSL://127.0.0.1:0"], "SSL"),
        (["--override", "novalue"], "KEY=VALUE"),
    ],
)
def test_usage_errors_are_messages_with_exit_code_2(tmp_path, args, says) -> None:
    done = run("--data-dir", str(tmp_path), *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_listen_0_picks_a_free_port(tmp_path) -> None:
    """`--listen 0` (the help's "port 0 picks a free one") starts on 127.0.0.1 and says where."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edplog", "broker", "--data-dir", str(tmp_path), "--listen", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("edplog broker ready on 127.0.0.1:"), proc.stderr
        assert not line.split("ready on 127.0.0.1:", 1)[1].startswith("0 ")
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
