"""The Python examples of README.md and docs/*.md, found by what they contain and run as
written: either executed, or (examples that are pytest tests using edplog's fixtures) run by
pytest in a fresh directory through the installed plugin."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(page: str | Path) -> list[str]:
    """Every ```python block of ``page`` (a path, or a name under docs/)."""
    path = page if isinstance(page, Path) else ROOT / "docs" / page
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def example(page: str | Path, containing: str) -> str:
    """The first ```python block of ``page`` that contains ``containing``."""
    return next(b for b in python_blocks(page) if containing in b)


def run_example(code: str, page: str = "example") -> None:
    """Execute ``code`` as a script."""
    exec(compile(code, page, "exec"), {"__name__": "docs_example"})


def run_as_pytest(code: str, directory: Path, passed: int = 1) -> None:
    """Run ``code`` as a test file with pytest in ``directory``: ``passed`` tests pass."""
    (directory / "test_example.py").write_text(code)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{passed} passed" in out.stdout
