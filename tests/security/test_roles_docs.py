"""docs/security.md's Roles section runs as written: its ``edplog security`` commands against
a data directory, and its Python example (a broker with a groups file and bindings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from docs_examples import ROOT, example, run_example

from edplog.security.roles import RoleBinding, list_bindings


def test_the_role_binding_commands_run(tmp_path: Path) -> None:
    """The page's shell block adds three bindings, lists them and removes carol's: after it
    the data directory holds the two Group:devs bindings, and the listing printed all
    three."""
    text = (ROOT / "docs" / "security.md").read_text()
    block = next(
        b for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S) if "role-bindings add" in b
    )
    env = {
        **os.environ,
        "DATA": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "User:carol ClusterAdmin on Cluster:kafka-cluster" in out.stdout
    assert list_bindings(tmp_path) == (
        RoleBinding("Group:devs", "DeveloperRead", "Topic", "pay-", "PREFIXED"),
        RoleBinding("Group:devs", "DeveloperRead", "Group", "app-", "PREFIXED"),
    )


def test_the_roles_example_runs() -> None:
    """The example: alice writes pay-in through her group's DeveloperWrite binding, bob
    (no group, no binding) is refused (its own assertions)."""
    run_example(example("security.md", "DeveloperWrite"), "docs/security.md")
