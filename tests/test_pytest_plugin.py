"""The pytest plugin (edplog.testing) as another project sees it: loaded through its pytest11
entry point in a fresh ``python -m pytest`` run of a temporary project, with the edplog
installed in this interpreter's environment."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

# Records every edplog module imported during the session, once the session is over.
PROBE_CONFTEST = """
import json, os, sys

def pytest_sessionfinish(session):
    names = sorted(m for m in sys.modules if m == "edplog" or m.startswith("edplog."))
    with open(os.environ["EDPLOG_MODULES_OUT"], "w") as f:
        json.dump(names, f)
"""

TRIVIAL_TEST = """
def test_arithmetic():
    assert 1 + 1 == 2
"""

BROKER_TEST = """
from confluent_kafka.admin import AdminClient


def _broker_ports(bootstrap):
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=20)
    return {b.port for b in metadata.brokers.values()}


def test_kafka_broker_answers_metadata(kafka_broker):
    host, port = kafka_broker.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert _broker_ports(kafka_broker) == {int(port)}


def test_kafka_broker_factory_restarts_on_the_same_data_dir(kafka_broker_factory, tmp_path):
    first = kafka_broker_factory(tmp_path / "data", num_partitions=2)
    first.stop()
    second = kafka_broker_factory(tmp_path / "data", num_partitions=2)
    port = int(second.bootstrap.rsplit(":", 1)[1])
    assert _broker_ports(second.bootstrap) == {port}
"""


def _run_project(
    root: pathlib.Path, test_source: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Write a one-file project under root, run pytest on it, return (result, edplog modules)."""
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")  # root of its own: no config from above
    (root / "conftest.py").write_text(textwrap.dedent(PROBE_CONFTEST))
    (root / "test_project.py").write_text(textwrap.dedent(test_source))
    out_path = root / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("PYTHONPATH", None)
    env["EDPLOG_MODULES_OUT"] = str(out_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    modules = json.loads(out_path.read_text()) if out_path.exists() else []
    return result, modules


def test_plugin_loads_without_importing_the_broker(tmp_path: pathlib.Path) -> None:
    result, modules = _run_project(tmp_path / "project", TRIVIAL_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "edplog.testing" in modules, "the plugin was not loaded through its entry point"
    broker = [m for m in modules if m == "edplog.broker" or m.startswith("edplog.broker.")]
    assert broker == []


def test_plugin_fixtures_start_a_broker_when_used(tmp_path: pathlib.Path) -> None:
    result, modules = _run_project(tmp_path / "project", BROKER_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "edplog.broker.runner" in modules
