"""The installed distribution: one version everywhere, and runtime dependencies that are only
what the package imports."""

from __future__ import annotations

import importlib.metadata
import pathlib
import shutil
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

import edplog
from edplog import _version

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Imports every module of the installed package with crc32c made unimportable, and prints the
# number of modules it imported: the check that nothing at run time needs a test-only dependency.
IMPORT_ALL_WITHOUT_CRC32C = """
import importlib, importlib.abc, pkgutil, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "crc32c" or name.startswith("crc32c."):
            raise ImportError("crc32c is a test-only dependency")
        return None

sys.meta_path.insert(0, Refuse())
import edplog
names = [m.name for m in pkgutil.walk_packages(edplog.__path__, "edplog.")]
names = [n for n in names if not n.endswith(".__main__")]  # running it is the CLI
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_installed_metadata_version_is_the_package_version() -> None:
    assert importlib.metadata.version("edplog") == edplog.__version__


def test_package_version_comes_from_the_version_module() -> None:
    assert edplog.__version__ is _version.__version__
    source = (ROOT / "src" / "edplog" / "_version.py").read_text()
    # The installed package was built from this checkout's version file.
    assert f'__version__ = "{edplog.__version__}"' in source


def test_pyproject_declares_the_version_dynamic() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    provider = project["tool"]["scikit-build"]["metadata"]["version"]
    assert provider["input"] == "src/edplog/_version.py"


def test_cli_version_prints_the_package_version() -> None:
    exe = shutil.which("edplog", path=str(pathlib.Path(sys.executable).parent))
    assert exe is not None, "the edplog console script is not installed beside this Python"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"edplog {edplog.__version__}"


def test_crc32c_is_required_only_by_the_test_extra() -> None:
    requirements = [Requirement(r) for r in importlib.metadata.requires("edplog") or []]
    crc = [r for r in requirements if r.name == "crc32c"]
    assert crc, "crc32c (the tests' CRC oracle) is missing from the test extra"
    for r in crc:
        assert r.marker is not None
        assert r.marker.evaluate({"extra": "test"})
        assert not r.marker.evaluate({"extra": ""})


def test_every_module_imports_without_crc32c() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL_WITHOUT_CRC32C],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 10  # the walk really found the package's modules


def test_the_client_commands_need_nothing_beyond_the_plain_install() -> None:
    """`pip install .` alone must leave `edplog topics|produce|consume|groups` working: their
    client (confluent-kafka) is a dependency of the package itself, not of an extra."""
    import importlib.metadata
    import re

    plain = [r for r in importlib.metadata.requires("edplog") or [] if "extra ==" not in r]
    names = {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in plain}
    assert "confluent-kafka" in names
    assert "prometheus-client" in names


def test_docs_never_install_edplog_from_an_index() -> None:
    """edplog is not published: instructions install it from a checkout (`pip install .`)."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parent.parent
    texts = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    bad = [
        f"{p.name}: {m.group(0)}"
        for p in texts
        for m in re.finditer(r"pip install [\"']?edplog\b[^\n]*", p.read_text())
    ]
    assert not bad, bad
