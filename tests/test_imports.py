"""No import cycles among edgetl modules, function-local (lazy) imports included.

Static: every module under ``edgetl/`` is parsed with ``ast`` (nothing is imported), so the test
takes milliseconds and sees imports that only run on some code paths. An edge A -> B means A
executes ``import`` of B somewhere (top level or inside a function); ``from edgetl.x import y``
imports ``edgetl.x`` and, where ``y`` is a submodule, ``edgetl.x.y``; importing ``edgetl.a.b``
also runs the ``__init__`` of every enclosing package that is not already one of A's own
(A's own packages are initialised before A runs). ``importlib.import_module("edgetl....")`` with a
literal name counts too. Imports under ``if TYPE_CHECKING:`` never run and are skipped.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "edgetl"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Edges that still close a cycle and are being removed by someone else's work in progress.
# Each entry must name the owner of the fix; the test fails once the edge is gone (stale entry).
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(tree: ast.AST):
    """ast.walk that skips the bodies of ``if TYPE_CHECKING:`` (never executed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imported(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> dict[str, int]:
    """edgetl modules that ``module`` imports -> line of the first such import."""
    found: dict[str, int] = {}
    reads_package: set[str] = set()

    def add(name: str, line: int) -> None:
        if name.split(".")[0] != PACKAGE:
            return
        # a name that is not a module (e.g. a misspelling) resolves to its nearest module ancestor
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        for target in (*_ancestors(name), name):
            found.setdefault(target, line)

    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            add(target, node.lineno)
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    add(f"{target}.{alias.name}", node.lineno)
                else:  # reads a name from target's __init__, which may still be initialising
                    reads_package.add(target)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            add(node.args[0].value, node.lineno)
    # A's own packages are initialised before A runs, so importing them adds nothing, unless A
    # reads a name from one (``from edgetl.models import build_model`` in edgetl.models.x).
    own = {module, *_ancestors(module)} - (reads_package - {module})
    return {k: v for k, v in found.items() if k not in own}


def import_graph() -> dict[str, dict[str, int]]:
    files = sorted(ROOT.rglob("*.py"))
    known = {_module_name(f) for f in files}
    graph = {}
    for f in files:
        name = _module_name(f)
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        graph[name] = _imported(name, f.name == "__init__.py", tree, known)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (iterative DFS, three colours)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt) and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph[nxt])))
    return None


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:], strict=False)]
    return "import cycle:\n  " + "\n  ".join(steps)


def test_no_import_cycles():
    import sys

    loaded = {m for m in sys.modules if m.startswith(PACKAGE)}
    graph = import_graph()
    for (a, b), why in KNOWN_EXCEPTIONS.items():
        assert b in graph.get(a, {}), f"stale KNOWN_EXCEPTIONS entry {a} -> {b} ({why}): remove it"
        del graph[a][b]
    cycle = find_cycle(graph)
    assert cycle is None, _describe(cycle, graph)
    # static: building the graph parses files and imports none of them (a wall-clock bound here
    # failed on a loaded machine)
    assert {m for m in sys.modules if m.startswith(PACKAGE)} == loaded


def test_the_checker_sees_lazy_relative_and_submodule_imports(tmp_path):
    """The graph builder on a synthetic package: every kind of edge the docstring promises."""
    known = {"edgetl", "edgetl.a", "edgetl.a.b", "edgetl.a.c", "edgetl.d"}
    src = (
        "from typing import TYPE_CHECKING\n"
        "from . import c\n"  # relative, submodule
        "def f():\n"
        "    from edgetl import d\n"  # lazy, submodule via from-import
        "    import importlib\n"
        "    importlib.import_module('edgetl.a.c')\n"
        "if TYPE_CHECKING:\n"
        "    from edgetl.x import never\n"
    )
    edges = _imported("edgetl.a.b", False, ast.parse(src), known)
    assert set(edges) == {"edgetl.a.c", "edgetl.d"}
    # a module importing edgetl.a.b also runs edgetl.a's __init__
    assert set(_imported("edgetl.d", False, ast.parse("import edgetl.a.b"), known)) == {
        "edgetl.a",
        "edgetl.a.b",
    }
    graph = {"edgetl.a": {"edgetl.a.b": 1}, "edgetl.a.b": {"edgetl.d": 3}, "edgetl.d": {"edgetl.a": 1}}
    assert find_cycle(graph) == ["edgetl.a", "edgetl.a.b", "edgetl.d", "edgetl.a"]
    assert find_cycle({"edgetl.a": {"edgetl.d": 1}, "edgetl.d": {}}) is None


def test_finetune_refuses_a_distill_config_without_the_kd_hook(tmp_path):
    """finetune no longer builds the Distiller itself (that would import distill back)."""
    from edgetl.errors import ConfigError
    from edgetl.train.distill import DistillConfig
    from edgetl.train.finetune import finetune

    with pytest.raises(ConfigError, match="edgetl.train.distill.distill"):
        finetune(DistillConfig(teacher=tmp_path / "t.safetensors", output=tmp_path / "s.safetensors"))
