"""Importing lrfast does not import ``torch._dynamo`` (about a second) when nothing is compiled
(NOTE [lazy dynamo] in lrfast/_compile.py); the compiled path itself: tests/test_compile.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # fresh interpreters and torch.compile

CHILD = """
import json, sys
import torch
before = sorted(m for m in sys.modules if m.startswith("torch._dynamo"))
import lrfast, lrfast.optim, lrfast.lr_scheduler, lrfast.schedules
print(json.dumps({"before": before, "after": sorted(m for m in sys.modules if m.startswith("torch._dynamo")),
                  "numba": "numba" in sys.modules}))
"""


def test_import_does_not_load_dynamo_or_numba():
    out = json.loads(subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300,
                                    check=True).stdout.strip().splitlines()[-1])
    if out["before"]:
        pytest.skip(f"this torch imports {out['before'][0]} by itself")
    assert out["after"] == []
    assert out["numba"] is False  # the CPU kernels load at the first step that needs them


def test_the_eager_fallbacks_stay_disabled_for_dynamo():
    # the lazily disabled helpers still graph-break to eager code under compilation
    import torch

    from lrfast import _compile

    calls = []

    def probe():
        calls.append(torch.compiler.is_compiling())  # True had Dynamo traced it

    def f(x):
        _compile._eager_call(probe)
        return x + 1

    compiled = torch.compile(f, backend="eager")
    assert torch.equal(compiled(torch.zeros(2)), torch.ones(2))
    assert calls == [False]
