"""The chaos campaigns of scripts/, in the short form CI runs (seeded, bounded in time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

pytestmark = pytest.mark.clients


def test_sigkills_under_an_idempotent_producer_lose_and_duplicate_nothing(tmp_path) -> None:
    """scripts/chaos-idempotent with 3 SIGKILLs: every acknowledged record stored exactly
    once, and the broker still exits 0 on SIGTERM (the full run uses 20 kills)."""
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "chaos-idempotent"),
            "--kills",
            "3",
            "--seed",
            "11",
            "--max-seconds",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, (summary, done.stderr[-2000:])
    assert summary["kills"] == 3 and summary["acked"] > 0
    assert (summary["lost"], summary["duplicated"]) == (0, 0)
