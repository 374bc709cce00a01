"""The command line: every user error is one line on stderr with a nonzero exit and no
traceback; --version; the program name of both entry points; help text for every option."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lrfast
from lrfast.tools.cli import build_parser, factory_names, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    """main() in-process (an exception escaping it fails the test: that would be a traceback)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors, --help and --version
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("lrfast")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def saved_run(tmp_path) -> Path:
    meta = {"machine": "m", "device": "cpu", "torch": "t", "lrfast": "l", "python": "p", "date": "d",
            "command": "python -m lrfast bench", "quick": True, "copy_GBs": 10.0, "triad_GBs": 12.0}
    rows = [{"section": "adamw", "case": "1 x 16", "contender": c, "seconds": s, "numel": 16, "tensors": 1,
             "extra": {"GBs": 28 * 16 / s / 1e9}} for c, s in (("torch fused", 2e-3), ("lrfast", 1e-3))]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}))
    return path


@pytest.mark.parametrize("argv, needles", [
    (["plot", "constant(1.0)", "-o", "{tmp}/missing/lr.png"], ["-o/--output", "does not exist", "missing"]),
    (["plot", "constant(1.0)", "-o", "{tmp}"], ["-o/--output", "is a folder"]),
    (["plot", "constant(1.0)", "-o", "{tmp}/lr.nope"], ["-o/--output", "lr.nope", "png"]),
    (["plot", "constant(1.0)", "-o", "{tmp}/lr.png", "--steps", "0"], ["--steps", "'0'"]),
    (["plot", "constant(1.0)", "-o", "{tmp}/lr.png", "--steps", "ten"], ["--steps", "'ten'"]),
    (["plot", "constant(1.0)"], ["-o/--output", "required"]),
    (["plot", "cosine_decay(1.0, -5)", "-o", "{tmp}/lr.png"], ["cosine_decay", "-5"]),
    (["plot", "linear(1.0)", "-o", "{tmp}/lr.png"], ["linear()", "missing"]),
    (["plot", "__import__('os')", "-o", "{tmp}/lr.png"], ["'__import__'", "not an lrfast.schedules factory"]),
    (["plot", "pack_many([])", "-o", "{tmp}/lr.png"], ["'pack_many'", "not an lrfast.schedules factory"]),
    (["plot", "0.5", "-o", "{tmp}/lr.png"], ["'0.5'", "not a schedule"]),
    (["plot", "constant(1.0", "-o", "{tmp}/lr.png"], ["cannot parse", "constant(1.0"]),
    (["bench", "--from-json", "{tmp}/missing.json"], ["--from-json", "no such file", "missing.json"]),
    (["bench", "--from-json", "{tmp}/not_json.txt"], ["--from-json", "as JSON"]),
    (["bench", "--from-json", "{tmp}/list.json"], ["--from-json", "'meta' and 'rows'"]),
    (["bench", "--quick", "--json", "{tmp}/missing/b.json"], ["--json", "does not exist"]),
    (["bench", "--quick", "--markdown", "{tmp}/missing/b.md"], ["--markdown", "does not exist"]),
    (["bench", "--quick", "--plot", "{tmp}/missing/b.png"], ["--plot", "does not exist"]),
    (["bench", "--quick", "--plot", "{tmp}/b.xyz"], ["--plot", "b.xyz", "no image suffix"]),  # before the run
    (["bench", "--cache-mib", "-1"], ["--cache-mib", "'-1'"]),
    (["bench", "--rounds", "0"], ["--rounds", "'0'"]),
    (["bench", "--targets", "--plot", "{tmp}/t.png"], ["--targets", "--plot"]),
    (["bench", "--targets", "--quick"], ["--targets", "--quick"]),
    (["bench", "--from-json", "{tmp}/targets.json", "--plot", "{tmp}/t.png"],
     ["--plot", "targets.json", "no size curves"]),
    (["bench", "--device", "tpu"], ["--device", "'tpu'"]),
    (["bench", "--only", "patterns", "--plot", "{tmp}/p.png"], ["--only patterns", "--plot"]),
    (["bench", "--only", "patterns", "--cache-mib", "0"], ["--only patterns", "--cache-mib"]),
    (["bench", "--only", "curves"], ["--only", "'curves'"]),
    (["demo", "--groups", "0"], ["--groups", "'0'"]),
    (["frobnicate"], ["'frobnicate'"]),
    ([], ["required"]),
])
def test_user_errors_are_one_line_without_traceback(capsys, tmp_path, argv, needles):
    (tmp_path / "not_json.txt").write_text("{not json")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "targets.json").write_text(json.dumps({"meta": {}, "rows": [{"section": "target sgd"}]}))
    code, out, err = run_main(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert_one_line_error(code, err, *needles)
    assert code == 2 and out == ""
    assert not (tmp_path / "missing").exists()


def test_bench_cuda_without_a_usable_gpu_is_one_line(capsys):
    import torch

    if torch.cuda.is_available() and lrfast.cuda_status()[0]:
        pytest.skip("a usable GPU is here: bench --device cuda is not an error")
    code, out, err = run_main(capsys, "bench", "--device", "cuda", "--quick")
    assert_one_line_error(code, err, "--device cuda")
    assert out == ""


def test_bench_from_json_regenerates_in_process(capsys, saved_run, tmp_path):
    code, out, err = run_main(capsys, "bench", "--from-json", str(saved_run), "--markdown", str(tmp_path / "t.md"))
    assert code == 0, err
    # a run saved before rounds were kept: one sample per cell, the floor from copy's figure
    assert "| 1 x 16 | 0.000 | 2.000 [2.000–2.000] (0) | 1.000 [1.000–1.000] (0) | 2.00x [2.00–2.00] |" in out
    assert (tmp_path / "t.md").read_text().startswith("Machine:")


def test_plot_writes_the_image(capsys, tmp_path):
    out_png = tmp_path / "lr.png"
    code, out, err = run_main(capsys, "plot", "warmup_cosine_decay(0.0, 1.0, 10, 100)", "one_cycle(1.0, 100)",
                              "-o", str(out_png), "--steps", "120", "--log")
    assert (code, err) == (0, "")
    assert out.strip() == f"wrote {out_png}"
    assert out_png.read_bytes()[:8] == PNG_MAGIC


def test_version(capsys):
    code, out, err = run_main(capsys, "--version")
    assert code == 0 and out.strip() == f"lrfast {lrfast.__version__}"


def test_plot_help_lists_every_schedule_factory(capsys):
    code, out, _ = run_main(capsys, "plot", "--help")
    assert code == 0
    names = factory_names()
    assert {"constant", "cosine_decay", "warmup_stable_decay", "join", "chain", "one_cycle"} <= set(names)
    assert "pack_many" not in names and "one_cycle_phase_ends" not in names  # not Schedules
    listed = out.split("factories (lrfast.schedules):", 1)[1]
    for name in names:
        assert f" {name}," in listed or f" {name}\n" in listed or listed.rstrip().endswith(name), name


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            yield parser.prog, action


def test_every_option_has_help_with_its_default():
    options = list(_options(build_parser()))
    assert len(options) >= 15  # --version, demo 1, bench 10, plot 3
    for prog, action in options:
        where = f"{prog} {'/'.join(action.option_strings)}"
        assert action.help, where
        assert not re.search(r"\bissue \d", action.help), f"{where}: help tells history: {action.help!r}"
        if isinstance(action, argparse._VersionAction):
            continue
        assert "default" in action.help or "required" in action.help, where
        if action.default not in (None, False):
            shown = " ".join(map(str, action.default)) if isinstance(action.default, list) else str(action.default)
            assert f"(default: {shown})" in action.help, where


def test_demo_training_is_the_readme_example():
    from lrfast.tools.demo import demo_training

    lines: list[str] = []
    lrs = demo_training(lines.append)
    assert len(lrs) == len(lines) == 30
    assert lrs[8] == pytest.approx(0.1) and lrs[9] == pytest.approx(0.09) and lrs[29] == pytest.approx(0.1 * 0.9**3)
    assert lines[9] == "Epoch 10: Learning Rate = 0.09000"


def test_demo_runs_both_parts(capsys):
    code, out, err = run_main(capsys, "demo", "--groups", "1")
    assert code == 0, err
    assert "Epoch 30: Learning Rate = 0.07290" in out
    for name in ("StepLR", "CosineAnnealingLR", "OneCycleLR", "LambdaLR"):
        assert f"\n{name} " in out


def _console_script() -> str:
    script = Path(sys.executable).with_name("lrfast")
    if not script.exists():
        pytest.skip(f"the console script is not installed beside {sys.executable} (pip install -e . installs it)")
    return str(script)


@pytest.mark.parametrize("entry", ["console script", "python -m"])
def test_program_name_of_both_entry_points(entry, tmp_path):
    argv = [_console_script()] if entry == "console script" else [sys.executable, "-m", "lrfast"]
    prog = "lrfast" if entry == "console script" else "python -m lrfast"
    proc = subprocess.run([*argv, "plot", "constant(1.0)", "-o", str(tmp_path / "no" / "lr.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"{prog} plot: error: -o/--output:") and proc.stderr.count("\n") == 1, proc.stderr
    usage = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 0 and usage.stdout.startswith(f"usage: {prog} ")
    version = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"{prog} {lrfast.__version__}"


def test_plot_without_matplotlib_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: import raises ImportError
    code, out, err = run_main(capsys, "plot", "constant(1.0)", "-o", str(tmp_path / "lr.png"))
    assert_one_line_error(code, err, "matplotlib", 'pip install "lrfast[plot]"')
    assert not (tmp_path / "lr.png").exists()
