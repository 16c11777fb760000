"""The example in docs/client.md runs as written, against the installed pytest plugin."""

from __future__ import annotations

from pathlib import Path

from docs_examples import example, run_as_pytest


def test_client_docs_example_passes(tmp_path: Path) -> None:
    run_as_pytest(example("client.md", "def test_client_roundtrip"), tmp_path, passed=2)
