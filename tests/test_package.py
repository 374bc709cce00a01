"""What a newcomer gets from the package itself: a cheap ``import lrfast`` that still reaches
every public submodule, the license the metadata declares, a changelog; and the tools
(``lrfast.tools``: cli, demo, bench) kept out of the library, importing each other one way."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import lrfast

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")


def test_import_lrfast_is_cheap_and_reaches_the_submodules_lazily():
    code = """
import sys
import lrfast
heavy = [m for m in ("torch", "numba", "lrfast.optim", "lrfast.lr_scheduler", "lrfast.schedules") if m in sys.modules]
assert heavy == [], heavy
assert lrfast.schedules.constant(2.0)(7) == 2.0
assert "torch" not in sys.modules                      # schedules need NumPy and lrfast._C only
assert lrfast.optim.AdamW.__module__ == "lrfast.optim._adam"
assert lrfast.lr_scheduler.StepLR.__name__ == "StepLR"
assert {"schedules", "optim", "lr_scheduler"} <= set(dir(lrfast))
stray = {n for n in dir(lrfast) if not n.startswith("__")} - set(lrfast.__all__) - {"integrations", "plotting"}
assert stray == set(), stray                           # no Any, Path, importlib, ...
try:
    lrfast.no_such_thing
except AttributeError as exc:
    assert "no_such_thing" in str(exc)
else:
    raise AssertionError("lrfast.no_such_thing did not raise")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_the_submodules_are_the_real_ones():
    import lrfast.lr_scheduler
    import lrfast.optim
    import lrfast.schedules

    assert lrfast.optim is sys.modules["lrfast.optim"] and lrfast.schedules is sys.modules["lrfast.schedules"]
    assert {"optim", "lr_scheduler", "schedules"} <= set(lrfast.__all__)


def test_license_file_is_the_declared_license():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    # the table form: every setuptools >= 64 reads it (a plain SPDX string needs >= 77)
    assert declared == {"text": "BSD-3-Clause"}
    assert importlib.metadata.metadata("lrfast")["License"] == "BSD-3-Clause"  # what the installed package says
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in text


def test_changelog_has_an_unreleased_section_and_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "\n## Unreleased\n" in text and f"\n## {lrfast.__version__}\n" in text


def _lrfast_imports(path: Path) -> set[str]:
    """The lrfast names ``path`` imports, absolute (relative imports resolved; ``from . import x``
    gives ``package.x``, which is a module or an attribute of the package)."""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "lrfast" or name.startswith("lrfast.")}


def _library_modules() -> list[Path]:
    return sorted((ROOT / "lrfast").rglob("*.py"))


def test_nothing_in_the_library_imports_the_tools():
    tools = ROOT / "lrfast" / "tools"
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in _lrfast_imports(p) if n.startswith("lrfast.tools"))
                 for p in _library_modules() if tools not in p.parents and p.name != "__main__.py"}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert "tools" not in lrfast._LAZY_SUBMODULES and "bench" not in lrfast._LAZY_SUBMODULES
    main = _lrfast_imports(ROOT / "lrfast" / "__main__.py")
    assert main == {"lrfast.tools.cli.main"}, main


def test_the_tools_import_each_other_one_way():
    # cli -> demo, cli -> bench -> progress; never back (the bench once imported the cli's namespace)
    above = {"progress": {"lrfast.tools.bench", "lrfast.tools.demo", "lrfast.tools.cli"},
             "demo": {"lrfast.tools.bench", "lrfast.tools.cli", "lrfast.tools.progress"},
             "bench": {"lrfast.tools.demo", "lrfast.tools.cli"}}
    tools = ROOT / "lrfast" / "tools"
    for name, forbidden in above.items():
        files = sorted((tools / name).rglob("*.py")) if (tools / name).is_dir() else [tools / f"{name}.py"]
        for path in files:
            bad = [n for n in _lrfast_imports(path) if any(n == f or n.startswith(f + ".") for f in forbidden)]
            assert bad == [], (str(path.relative_to(ROOT)), bad)


def test_the_tools_use_only_the_public_api():
    tools = ROOT / "lrfast" / "tools"
    reached = {}
    for path in sorted(tools.rglob("*.py")):
        private = [n for n in _lrfast_imports(path) if not n.startswith("lrfast.tools")
                   and any(part.startswith("_") and not part.startswith("__") for part in n.split("."))]
        if private:
            reached[str(path.relative_to(ROOT))] = private
    assert reached == {}


def _modules_with_all() -> list[str]:
    root = Path(lrfast.__file__).resolve().parent
    names = []
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
               for node in tree.body):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", _modules_with_all())
def test_all_names_only_what_the_module_defines(module):
    import importlib

    mod = importlib.import_module(module)
    assert len(set(mod.__all__)) == len(mod.__all__), f"{module}.__all__ repeats a name"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert missing == [], f"{module}.__all__ names what it does not define"
