"""`python -m lrfast bench --quick` runs end to end and writes its table, JSON and plot
(not timed: the numbers themselves are the benchmark's business)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest


@pytest.mark.slow  # the whole quick bench, in a subprocess
def test_bench_quick_writes_table_json_and_plot(tmp_path):
    out_json, out_png, out_md = tmp_path / "b.json", tmp_path / "b.png", tmp_path / "b.md"
    proc = subprocess.run([sys.executable, "-m", "lrfast", "bench", "--quick", "--no-progress", "--json", str(out_json),
                           "--plot", str(out_png), "--markdown", str(out_md)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "AdamW + cosine" in proc.stdout and "SGD(momentum) + cosine" in proc.stdout
    report = json.loads(out_json.read_text())
    meta = report["meta"]
    assert meta["command"].startswith("python -m lrfast bench --quick")
    assert meta["copy_GBs"] > 0 and meta["triad_GBs"] > 0
    contenders = {r["contender"] for r in report["rows"] if r["section"] == "adamw"}
    assert contenders == {"torch for-loop", "torch foreach", "torch fused", "lrfast"}
    timed = [r for r in report["rows"] if r["section"] in ("adamw", "sgd") and not math.isnan(r["seconds"])]
    assert timed and all(r["seconds"] > 0 and r["extra"]["GBs"] > 0 for r in timed)
    assert {r["contender"] for r in report["rows"] if r["section"] == "scheduler"} == {"torch", "lrfast"}
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out_md.read_text().startswith("Machine:")


def test_tables_regenerate_from_the_json(tmp_path):
    saved = tmp_path / "run.json"
    meta = {"machine": "m", "device": "cpu", "torch": "t", "lrfast": "l", "python": "p", "date": "d",
            "command": "python -m lrfast bench", "quick": True, "copy_GBs": 10.0, "triad_GBs": 12.0}
    rows = [{"section": "adamw", "case": "1 x 16", "contender": c, "seconds": s, "numel": 16, "tensors": 1,
             "extra": {"GBs": 28 * 16 / s / 1e9}} for c, s in (("torch fused", 2e-3), ("lrfast", 1e-3))]
    saved.write_text(json.dumps({"meta": meta, "rows": rows}))
    proc = subprocess.run([sys.executable, "-m", "lrfast", "bench", "--from-json", str(saved)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| 1 x 16 | 2.000 (0) | 1.000 (0) | 2.00x |" in proc.stdout


def test_the_table_warns_of_a_busy_machine_and_of_a_missing_numba(tmp_path):
    saved = tmp_path / "run.json"
    meta = {"machine": "m", "device": "cpu", "torch": "t", "lrfast": "l", "python": "p", "date": "d",
            "command": "python -m lrfast bench", "quick": True, "copy_GBs": 10.0, "triad_GBs": 12.0,
            "cpus": 2, "load_average": [11.5, 9.25], "numba_usable": False, "numba": "numba is not installed (x)"}
    rows = [{"section": "adamw", "case": "1 x 16", "contender": c, "seconds": s, "numel": 16, "tensors": 1,
             "extra": {"GBs": 28 * 16 / s / 1e9}} for c, s in (("torch fused", 2e-3), ("lrfast", 1e-3))]
    saved.write_text(json.dumps({"meta": meta, "rows": rows}))
    out = subprocess.run([sys.executable, "-m", "lrfast", "bench", "--from-json", str(saved)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "load average 11.5 -> 9.2 (start -> end) on 2 CPUs" in out
    assert "measures torch's fallback code, not lrfast's kernels: numba is not installed (x)" in out
    assert "| layout | torch fused | lrfast (torch fallback: no Numba) | ratio vs fused |" in out
    meta.update(load_average=[0.2, 0.3], numba_usable=True, numba="numba 0.68.1")
    saved.write_text(json.dumps({"meta": meta, "rows": rows}))
    out = subprocess.run([sys.executable, "-m", "lrfast", "bench", "--from-json", str(saved)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "Warning" not in out and "fallback" not in out
