"""The examples in docs/broker.md run as written (the fixture one through the installed
plugin)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "broker.md"


def test_fixture_example_in_docs_passes(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    example = next(b for b in blocks if "def test_orders_roundtrip" in b)
    (tmp_path / "test_example.py").write_text(example)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


def test_metrics_example_in_docs_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    example = next(b for b in blocks if "generate_latest" in b)
    exec(compile(example, str(DOC), "exec"), {"__name__": "docs"})


def test_scram_example_in_docs_runs() -> None:
    """The SCRAM credentials example sets a credential with confluent-kafka and finds it
    with ScramCredentials.lookup, as written."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    example = next(b for b in blocks if "alter_user_scram_credentials" in b)
    exec(compile(example, str(DOC), "exec"), {"__name__": "docs"})
