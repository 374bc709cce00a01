"""`python -m lrfast bench --quick` runs end to end and writes its table, JSON and plot
(not timed: the numbers themselves are the benchmark's business)."""

from __future__ import annotations

import json
import math
import subprocess
import sys


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
