"""docs/security.md's Roles section runs as written: its ``edplog security`` commands (against
a data directory, and ``acls add`` against a running broker) and its Python example (a
broker with a groups file and bindings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from docs_examples import ROOT, example, run_example
from roles_helpers import broker_props, conf

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker
from edplog.security.roles import RoleBinding, list_bindings


def run_block(containing: str, cwd: Path, **env: str) -> str:
    """Run the page's first ```sh block containing ``containing`` with bash (the installed
    ``edplog`` on PATH, ``env`` added); its output."""
    text = (ROOT / "docs" / "security.md").read_text()
    block = next(b for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S) if containing in b)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        env={**os.environ, **env, "PATH": path},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def test_the_role_binding_commands_run(tmp_path: Path) -> None:
    """The page's shell block adds three bindings, lists them and removes carol's: after it
    the data directory holds the two Group:devs bindings, and the listing printed all
    three."""
    stdout = run_block("role-bindings add", tmp_path, DATA=str(tmp_path))
    assert "User:carol ClusterAdmin on Cluster:kafka-cluster" in stdout
    assert list_bindings(tmp_path) == (
        RoleBinding("Group:devs", "DeveloperRead", "Topic", "pay-", "PREFIXED"),
        RoleBinding("Group:devs", "DeveloperRead", "Group", "app-", "PREFIXED"),
    )


def test_the_roles_example_runs() -> None:
    """The example: alice writes pay-in through her group's DeveloperWrite binding, bob
    (no group, no binding) is refused (its own assertions)."""
    run_example(example("security.md", "DeveloperWrite"), "docs/security.md")


def test_the_acl_command_runs(tmp_path: Path) -> None:
    """The page's ``acls add`` command, with an admin.properties for a SASL super user,
    creates the prefixed ACL on a running broker: it is then in the broker's table."""
    (tmp_path / "data").mkdir()
    broker = BackgroundBroker(BrokerConfig.from_properties(broker_props(str(tmp_path / "data"))))
    broker.start()
    try:
        client = conf(broker, "admin")
        (tmp_path / "admin.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in client.items() if k != "bootstrap.servers")
        )
        stdout = run_block("acls add", tmp_path, BOOTSTRAP=client["bootstrap.servers"])
        assert stdout.startswith("added: Group:ops ALLOW READ on TOPIC:logs- (PREFIXED)")
        services = broker.broker.services if broker.broker is not None else None
        assert services is not None and services.acls is not None
        assert [a.principal for a in services.acls.authorizer.acls] == ["Group:ops"]
    finally:
        broker.stop()
