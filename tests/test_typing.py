"""The public API is typed: ``py.typed`` ships, every public function and method has complete
annotations, and mypy (configured in pyproject.toml) finds no error in the public modules."""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import importlib
import inspect
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

import lrfast

ROOT = Path(__file__).resolve().parent.parent
# lrfast.numba's functions are Numba dispatchers, typed when they compile.
PUBLIC_MODULES = ["lrfast", "lrfast.schedules", "lrfast.optim", "lrfast.lr_scheduler", "lrfast.plotting",
                  "lrfast.lr_finder", "lrfast.tools.cli", "lrfast.integrations.transformers"]


def _public_functions():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                # lrfast's own classes in the MRO (their inherited public methods are API too);
                # torch patches `step` into an optimizer class once one is built: skip that wrapper
                members = {attr: member for base in reversed(obj.__mro__) if base.__module__.startswith("lrfast")
                           for attr, member in vars(base).items() if not getattr(member, "hooked", False)}
                for attr, member in members.items():
                    if attr.startswith("_") and (attr != "__init__" or dataclasses.is_dataclass(obj)):
                        continue  # private, or a dataclass's generated __init__ (typed by its fields)
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    elif isinstance(member, property):
                        member = member.fget
                    # torch's own functions reused as they are (SequentialLR.recursive_undo) are typed by torch
                    if inspect.isfunction(member) and member.__module__.startswith("lrfast"):
                        yield f"{module_name}.{name}.{attr}", member
            elif inspect.isfunction(obj):
                yield f"{module_name}.{name}", obj


def test_py_typed_ships_with_the_package():
    assert (Path(lrfast.__file__).parent / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()


def test_public_functions_are_fully_annotated():
    functions = list(_public_functions())
    assert len(functions) >= 60
    missing = []
    for where, fn in functions:
        signature = inspect.signature(fn)
        for name, parameter in signature.parameters.items():
            if name not in ("self", "cls") and parameter.annotation is inspect.Parameter.empty:
                missing.append(f"{where}: {name}")
        if signature.return_annotation is inspect.Signature.empty:
            missing.append(f"{where}: return")
    assert missing == []


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_optimizer_lr_is_typed_as_what_it_accepts(name):
    hints = typing.get_type_hints(getattr(lrfast.optim, name).__init__)
    assert set(typing.get_args(hints["lr"])) == {float, torch.Tensor, lrfast.schedules.Schedule}


@pytest.mark.slow
def test_mypy_finds_no_error_in_the_public_api():
    if shutil.which("mypy") is None and importlib.util.find_spec("mypy") is None:
        pytest.fail('mypy is not installed: it is in the [test] extra (pip install -e ".[test]")')
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


# -- the schedulers take torch's arguments with torch's types ------------------------------------
def _torch_twin(name):
    return getattr(torch.optim.lr_scheduler, name, None) or getattr(torch.optim.swa_utils, name, None)


# torch's annotations name these under TYPE_CHECKING only
_TORCH_NAMES = {"Callable": collections.abc.Callable, "Iterable": collections.abc.Iterable,
                "Sequence": collections.abc.Sequence, "Literal": typing.Literal, "Optimizer": torch.optim.Optimizer}


@pytest.mark.parametrize("name", [n for n in lrfast.lr_scheduler.__all__ if _torch_twin(n) is not None])
def test_scheduler_arguments_are_typed_as_torch_types_them(name):
    ours = typing.get_type_hints(getattr(lrfast.lr_scheduler, name).__init__)
    theirs = typing.get_type_hints(_torch_twin(name).__init__, localns=_TORCH_NAMES)
    assert len(theirs) >= 2  # optimizer (or schedulers) and the return type at least
    assert {k: ours.get(k) for k in theirs} == theirs


def test_every_public_module_is_in_the_mypy_check():
    text = (ROOT / "pyproject.toml").read_text()
    files = re.search(r"\[tool\.mypy\][^\[]*?files = \[(.*?)\]", text, re.S).group(1)
    listed = set(re.findall(r'"([^"]+)"', files))
    for path in ("lrfast/__init__.py", "lrfast/schedules", "lrfast/optim/__init__.py", "lrfast/lr_scheduler",
                 "lrfast/integrations", "lrfast/_C.pyi", "lrfast/lr_finder.py"):
        assert path in listed, f"{path} is not in [tool.mypy] files"


# -- lrfast/_C.pyi describes the compiled module ----------------------------------------------------
def _top_level_names(signature: str) -> list[str]:
    """Parameter names of a pybind11 signature line ``f(a: T[x, y], b: U = 1) -> R``."""
    inner = signature[signature.index("(") + 1:signature.rindex(") ->")]
    names, depth, start = [], 0, 0
    for i, ch in enumerate(inner + ","):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            part = inner[start:i].strip()
            if part:
                names.append(part.split(":")[0].strip())
            start = i + 1
    return names


def _stub_functions() -> dict[str, list[str]]:
    tree = ast.parse((ROOT / "lrfast" / "_C.pyi").read_text())
    return {node.name: [a.arg for a in node.args.args] for node in tree.body if isinstance(node, ast.FunctionDef)}


def _stub_methods(cls: str, method: str) -> list[ast.arg]:
    tree = ast.parse((ROOT / "lrfast" / "_C.pyi").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == method).args.args


def _stub_classes() -> set[str]:
    tree = ast.parse((ROOT / "lrfast" / "_C.pyi").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef) and not node.name.startswith("_")}


def test_compiled_core_stub_matches_the_module():
    from lrfast import _C

    stub = _stub_functions()
    classes = _stub_classes()
    modules = [_C]
    try:  # the emulator build has the CUDA launchers a host-only _C lacks (both have the rest)
        from lrfast import _C_emu

        modules.append(_C_emu)
    except ImportError:
        pass
    built = {name for m in modules for name in dir(m)
             if callable(getattr(m, name)) and not name.startswith(("_", "emu_"))}
    launchers = {name for name in stub if name.startswith("cuda_") and name != "cuda_device_count"}
    assert len(stub) >= 15 and len(launchers) == 4
    assert built - launchers == (set(stub) - launchers) | classes
    assert classes == {"FastStep", "GroupRecord"}
    assert [m.arg for m in _stub_methods("GroupRecord", "recorded")] == ["self"]
    assert [m.arg for m in _stub_methods("FastStep", "step")] == ["self", "scheduler", "runtime"]
    assert _top_level_names(_C.FastStep.step.__doc__.strip().splitlines()[0]) == ["scheduler", "runtime"]
    for name in sorted(set(stub) & built):
        module = next(m for m in modules if hasattr(m, name))
        first_line = getattr(module, name).__doc__.strip().splitlines()[0]
        assert _top_level_names(first_line) == stub[name], name
    if not launchers <= built:
        pytest.skip("neither lrfast._C nor lrfast._C_emu has the CUDA launchers here (a host-only build with "
                    "LRFAST_EMU=0): the rest of the stub was checked")


@pytest.mark.slow  # mypy in a fresh process
def test_a_type_checker_outside_the_checkout_finds_the_installed_lrfast(tmp_path):
    # An editable install is a plain .pth line (pyproject's package-dir), which mypy follows;
    # setuptools' import hook, its default for this layout, is invisible to type checkers.
    pytest.importorskip("mypy")
    (tmp_path / "user.py").write_text("import lrfast.lr_scheduler\n\nreveal_type(lrfast.lr_scheduler.StepLR)\n")
    command = [sys.executable, "-m", "mypy", "--follow-imports=silent", "--cache-dir", str(tmp_path / "c"), "user.py"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r'Revealed type is "def .*lrfast\.lr_scheduler\.\w+\.StepLR"', proc.stdout), proc.stdout
