"""The soak benchmark (benchmarks/soak_cpu.py) in a bounded form: every set, optimizer,
schedule and contender runs, blocks are reported, and the lrfast runs move their parameters
as torch's do (a soak measuring a step that does nothing would be flat for nothing)."""

from __future__ import annotations

import json

import pytest
import torch
from soak_cpu import build, main

pytest.importorskip("numba")


def test_bounded_soak_reports_every_block(tmp_path, capsys):
    out = tmp_path / "soak.json"
    runs = main(["--steps", "40", "--block", "15", "--json", str(out)])
    assert len(runs) == 3 * 2 * 2 * 2
    for r in runs:
        assert r["steps_run"] == 40
        assert [b["steps"] for b in r["blocks"]] == [15, 30, 40]
        assert all(b["us_per_step"] > 0 and b["rss_mib"] > 0 for b in r["blocks"])
    assert json.loads(out.read_text())["header"]["threading_layer"]
    table = capsys.readouterr().out
    assert table.count("| lrfast |") == table.count("| torch |") == 12


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_contenders_step_alike(optimizer):
    (a, sa), (b, sb) = (build(c, optimizer, [100, 7], "cosine", 10) for c in ("lrfast", "torch"))
    for _ in range(10):
        a.step()
        sa.step()
        b.step()
        sb.step()
    for p, q in zip(a.param_groups[0]["params"], b.param_groups[0]["params"]):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        main(["--sets", "huge"])
    with pytest.raises(SystemExit):
        main(["--steps", "0"])
