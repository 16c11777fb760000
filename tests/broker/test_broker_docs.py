"""The examples in docs/broker.md run as written (the fixture one through the installed
plugin)."""

from __future__ import annotations

from pathlib import Path

from docs_examples import example, run_as_pytest, run_example


def test_fixture_example_in_docs_passes(tmp_path: Path) -> None:
    run_as_pytest(example("broker.md", "def test_orders_roundtrip"), tmp_path)


def test_metrics_example_in_docs_runs() -> None:
    run_example(example("broker.md", "generate_latest"), "docs/broker.md")


def test_scram_example_in_docs_runs() -> None:
    """The SCRAM credentials example sets a credential with confluent-kafka and finds it
    with ScramCredentials.lookup, as written."""
    run_example(example("broker.md", "alter_user_scram_credentials"), "docs/broker.md")
