"""The package's layers point one way, read from the source (docs/design.md §2).

Every module of ``lrfast/`` belongs to one layer; a module imports only from its own layer
or lower ones, and no group of modules imports each other in a circle. Every import
counts: at module level, inside functions (the lazy ones) and under ``TYPE_CHECKING``.
A new module must be given its layer in ``LAYERS`` below, which is how this test makes
its author decide where it belongs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lrfast"

# Lowest first. A name matches the module itself and everything under it, except "lrfast",
# the package's facade (lrfast/__init__.py), which matches only itself.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("layouts and constants", ("lrfast._C", "lrfast._C_emu", "lrfast._version", "lrfast._config",
                               "lrfast._descriptor", "lrfast._bucket_layout", "lrfast._numba_cache")),
    ("schedule math", ("lrfast.schedules", "lrfast.numba")),
    ("backends", ("lrfast._backend",)),
    ("user API", ("lrfast.optim", "lrfast.lr_scheduler", "lrfast.integrations", "lrfast.plotting", "lrfast.lr_finder",
                  "lrfast._compile", "lrfast._scheduling_protocol", "lrfast")),
    ("tools", ("lrfast.tools", "lrfast.__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
EXTENSIONS = {"lrfast._C", "lrfast._C_emu"}  # compiled modules: no Python source to read


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            under = prefix != "lrfast" and module.startswith(prefix + ".")
            if (module == prefix or under) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def imports_in(source: str, module: str, is_package: bool) -> set[str]:
    """The lrfast modules ``source`` (the text of ``module``) imports. ``from pkg import
    name`` counts as the submodule ``pkg.name`` where that is a module, else as ``pkg``."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "lrfast")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source_module = ".".join(parts + ([node.module] if node.module else []))
            else:
                source_module = node.module or ""
            if source_module.split(".")[0] != "lrfast":
                continue
            for alias in node.names:
                candidate = f"{source_module}.{alias.name}"
                found.add(candidate if candidate in MODULES or candidate in EXTENSIONS else source_module)
    found.discard(module)
    return found


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    return imports_in(path.read_text(), module, path.name == "__init__.py")


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer():
    assert [m for m in sorted(MODULES) if layer_of(m) < 0] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    mine = layer_of(module)
    upward = sorted(f"{target} ({LAYERS[layer_of(target)][0]})" for target in GRAPH[module]
                    if layer_of(target) > mine)
    assert upward == [], f"{module} ({LAYERS[mine][0]}) imports from a higher layer"


def test_no_import_circle():
    # Tarjan's strongly connected components: a component of two or more modules is a circle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in GRAPH:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert circles == []


def test_the_reader_sees_lazy_relative_and_type_checking_imports():
    source = """
from typing import TYPE_CHECKING
import numpy
from lrfast import _C
if TYPE_CHECKING:
    from ..optim import SGD
def later():
    from . import cpu
    from .. import lr_scheduler
    import lrfast.schedules
"""
    found = imports_in(source, "lrfast._backend.fallback", is_package=False)
    assert found == {"lrfast._C", "lrfast.optim", "lrfast._backend.cpu", "lrfast.lr_scheduler", "lrfast.schedules"}
    assert layer_of("lrfast._backend.fallback") < layer_of("lrfast.optim")  # so the checker would flag it
