"""The shape of the package, checked on its source: imports point one way (DESIGN.md §2), there
are no import circles, and Kafka error codes are named (ErrorCode), never written as numbers,
in the broker and the group coordinator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edplog

PACKAGE = Path(edplog.__file__).resolve().parent

# Lowest first. A module may import from its own layer or any layer listed before it.
LAYERS = [
    {"errors", "_version", "codecs", "_native", "config"},
    {"records", "protocol", "security"},
    {"storage"},
    {"client", "metrics"},
    {"group", "cluster"},
    {"broker"},
    {"perf", "testing", "cli", "__main__", "__init__"},
]


def _layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] if len(parts) > 1 else parts
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """edplog modules imported by a module (every import, TYPE_CHECKING and function-level
    ones included: a circle hidden there is still a circle)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("edplog")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("edplog"):
                found.add(target)
                for alias in node.names:  # ``from . import x`` imports module x
                    found.add(f"{target}.{alias.name}")
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(name, path) if m in modules and m != name}
    return graph


def test_imports_point_down_the_layers() -> None:
    bad = []
    for name, deps in _graph().items():
        if name == "edplog":
            continue
        for dep in deps:
            if dep != "edplog" and _layer_of(dep) > _layer_of(name):
                bad.append(f"{name} imports {dep}")
    assert not bad, "\n".join(sorted(bad))


def test_there_are_no_import_circles() -> None:
    graph = _graph()
    graph.pop("edplog", None)
    for deps in graph.values():
        deps.discard("edplog")
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            # A package importing its own submodules is not a circle; a submodule importing
            # its package's __init__ is one only if that __init__ imports it back.
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    real = [c for c in cycles if not _package_self(c)]
    assert not real, "\n".join(real)


def _package_self(cycle: str) -> bool:
    """``pkg -> pkg.mod -> pkg``: a package's __init__ re-exporting its own module, which
    imports a sibling through the package name — allowed only within one package."""
    parts = cycle.split(" -> ")
    return all(p.startswith(parts[0] + ".") or p == parts[0] for p in parts)


NUMERIC_CODE_FIELDS = {"error_code", "code", "kafka_code"}


@pytest.mark.parametrize("package", ["broker", "group"])
def test_kafka_error_codes_are_named_not_numbers(package: str) -> None:
    """A response field or variable named like an error code is never given a bare number
    (0 included), and no module defines its own error-code constants: ErrorCode says which."""
    bad = []
    names = {c.name for c in edplog.errors.ErrorCode}
    for path in (PACKAGE / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value in NUMERIC_CODE_FIELDS
                        and _is_number(value)
                    ):
                        bad.append(f"{where}: {key.value!r}: {ast.unparse(value)}")
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    name = _target_name(target)
                    if name is None:
                        continue
                    if name in names and _is_number(node.value):
                        bad.append(f"{where}: {name} = {ast.unparse(node.value)}")
                    if name.split(".")[-1] in NUMERIC_CODE_FIELDS and _is_number(node.value):
                        bad.append(f"{where}: {name} = {ast.unparse(node.value)}")
            elif isinstance(node, ast.Compare) and _mentions_code(node.left):
                for comparator in node.comparators:
                    if _is_number(comparator):
                        bad.append(f"{where}: {ast.unparse(node)}")
    assert not bad, "\n".join(bad)


def _is_number(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


def _target_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return None


def _mentions_code(node: ast.AST) -> bool:
    name = _target_name(node)
    return name is not None and name.split(".")[-1] in NUMERIC_CODE_FIELDS


def test_handlers_import_only_the_context_from_the_broker() -> None:
    """broker/api modules see the broker through broker/context.py alone, so the dispatch
    (which imports every handler) never sits in a circle with them."""
    bad = []
    for name, deps in _graph().items():
        if not name.startswith("edplog.broker.api"):
            continue
        for dep in deps:
            broker_side = dep.startswith("edplog.broker") and not dep.startswith(
                "edplog.broker.api"
            )
            if broker_side and dep != "edplog.broker.context":
                bad.append(f"{name} imports {dep}")
    assert not bad, "\n".join(sorted(bad))
