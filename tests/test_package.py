"""What a newcomer gets from the package itself: a cheap ``import lrfast`` that still reaches
every public submodule, the license the metadata declares, a changelog."""

from __future__ import annotations

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
    assert declared == "BSD-3-Clause"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in text


def test_changelog_has_an_unreleased_section_and_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "\n## Unreleased\n" in text and f"\n## {lrfast.__version__}\n" in text
