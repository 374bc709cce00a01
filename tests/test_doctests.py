"""Every docstring example in the lrfast package runs as a doctest (one test per docstring),
from a temporary working directory so an example cannot write into the checkout."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import lrfast

# __main__ runs the CLI when imported; _C is the compiled module (no Python docstrings).
NOT_IMPORTED = {"lrfast.__main__", "lrfast._C"}
PUBLIC_MODULES = ["lrfast", "lrfast.schedules", "lrfast.lr_scheduler", "lrfast.optim", "lrfast.plotting",
                  "lrfast.lr_finder", "lrfast.tools.cli", "lrfast.numba", "lrfast.integrations.transformers"]


def _module_names() -> list[str]:
    names = ["lrfast"] + [m.name for m in pkgutil.walk_packages(lrfast.__path__, "lrfast.")]
    return [n for n in names if n not in NOT_IMPORTED]


def _docstrings_with_examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for name in _module_names():
        for test in finder.find(importlib.import_module(name), name):
            if test.examples:
                found[test.name] = test  # a re-exported object is found once per module: run it once
    return sorted(found.values(), key=lambda t: t.name)


DOCTESTS = _docstrings_with_examples()


def test_the_public_modules_are_walked_and_have_examples():
    names = {t.name for t in DOCTESTS}
    assert set(PUBLIC_MODULES) <= set(_module_names())
    for module in ["lrfast", "lrfast.schedules", "lrfast.optim", "lrfast.lr_scheduler", "lrfast.plotting",
                   "lrfast.tools.cli"]:
        assert any(n == module or n.startswith(module + ".") for n in names), module
    assert len(DOCTESTS) >= 45


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_example(test: doctest.DocTest, in_tmp_path):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    test.globs = dict(test.globs)  # examples must not leak names into the module (or into each other)
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, "".join(report)
    assert list(in_tmp_path.iterdir()) == [], "a docstring example wrote into the working directory"
