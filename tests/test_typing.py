"""The public API is typed: ``py.typed`` ships, every public function and method has complete
annotations, and mypy (configured in pyproject.toml) finds no error in the public modules."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

import lrfast

ROOT = Path(__file__).resolve().parent.parent
# lrfast.lr_scheduler is left out while issue 12 rewrites its classes (see [tool.mypy]);
# lrfast.numba's functions are Numba dispatchers, typed when they compile.
PUBLIC_MODULES = ["lrfast", "lrfast.schedules", "lrfast.optim", "lrfast.plotting", "lrfast.cli",
                  "lrfast.integrations.transformers"]


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
                    if inspect.isfunction(member):
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
