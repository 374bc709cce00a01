"""Only the kernel variant a step uses is compiled (NOTE [compiled variants] in lrfast/_backend/cpu.py).

Each case runs in a fresh interpreter, which loads or compiles what its steps need and
nothing else, and reports the signatures Numba holds for every kernel function. An entry
point loaded from Numba's on-disk cache counts the same as one compiled; the functions it
calls are listed only when compiled, so the case that counts loops uses an empty cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

numba = pytest.importorskip("numba")

import lrfast  # noqa: E402
from lrfast._backend import cpu_kernels as K  # noqa: E402

CHILD = r"""
import json, sys, torch, lrfast, lrfast.optim, lrfast.lr_scheduler
from lrfast._backend import cpu_kernels as K
torch.manual_seed(0)
case = sys.argv[1]
p = torch.nn.Parameter(torch.randn(100))
if case == "adamw":
    opt = lrfast.optim.AdamW([p], lr=1e-3)
elif case == "adamw_amsgrad":
    opt = lrfast.optim.AdamW([p], lr=1e-3, amsgrad=True)
elif case == "sgd_momentum":
    opt = lrfast.optim.SGD([p], lr=1e-3, momentum=0.9)
elif case == "adamw_big":
    p = torch.nn.Parameter(torch.randn(1 << 20))
    opt = lrfast.optim.AdamW([p], lr=1e-3)
sched = lrfast.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
for _ in range(int(sys.argv[2])):
    p.grad = torch.randn_like(p)
    opt.step()
    sched.step()
names = ["adam_step", "adam_step_serial", "sgd_step", "sgd_step_serial", "_adam_chunk", "_sgd_chunk"]
print(json.dumps({name: [[str(t) for t in sig] for sig in getattr(K, name).signatures] for name in names}))
"""


def _signatures(case: str, cache_dir=None, steps: int = 3) -> dict[str, list[list[str]]]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir)) if cache_dir is not None else None
    result = subprocess.run([sys.executable, "-c", CHILD, case, str(steps)], capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_scheduled_adamw_step_compiles_one_serial_variant_with_one_loop(tmp_path):
    sigs = _signatures("adamw", cache_dir=tmp_path)  # cold: every function it needs is compiled here
    assert len(sigs["adam_step_serial"]) == 1
    assert sigs["adam_step"] == [] and sigs["sgd_step"] == [] and sigs["sgd_step_serial"] == []
    *_, grad_scale, found_inf, amsgrad = sigs["adam_step_serial"][0]
    assert (grad_scale, found_inf, amsgrad) == ("none", "none", "none")
    assert len(sigs["_adam_chunk"]) == 1  # the plain loop: no AMSGrad maximum, no GradScaler division
    assert sigs["_adam_chunk"][0][4] == "none" and sigs["_adam_chunk"][0][-1] == "none"


def test_amsgrad_and_momentum_compile_the_loops_their_state_needs():
    sigs = _signatures("adamw_amsgrad")
    assert len(sigs["adam_step_serial"]) == 1 and sigs["adam_step_serial"][0][-1] != "none"
    sigs = _signatures("sgd_momentum")
    assert len(sigs["sgd_step_serial"]) == 1 and sigs["sgd_step_serial"][0][-1] != "none"
    assert sigs["adam_step_serial"] == [] and sigs["adam_step"] == []


def test_a_big_bucket_starts_parallel_and_tries_the_serial_twin_from_its_third_step():
    # NOTE [parallel or serial]: the first two steps run (and time) the parallel kernel only
    sigs = _signatures("adamw_big", steps=2)
    assert len(sigs["adam_step"]) == 1 and sigs["adam_step_serial"] == []
    sigs = _signatures("adamw_big", steps=4)
    assert len(sigs["adam_step"]) == 1 and len(sigs["adam_step_serial"]) == 1
    assert sigs["adam_step"][0] == sigs["adam_step_serial"][0]  # the same variant, both ways


def test_warmup_compiles_what_a_default_optimizer_then_uses_without_running():
    assert lrfast.warmup(["adamw"], [torch.float64]) is True
    before = {k: list(k.signatures) for k in (K.adam_step, K.adam_step_serial)}
    for numel in (10, 1 << 20):  # serial and parallel twins
        p = torch.nn.Parameter(torch.zeros(numel, dtype=torch.float64))
        opt = lrfast.optim.AdamW([p], lr=0.5)
        sched = lrfast.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
        opt.step()
        reference = torch.nn.Parameter(torch.zeros(numel, dtype=torch.float64))
        ref_opt = torch.optim.AdamW([reference], lr=0.5)
        ref_sched = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=1, gamma=0.5)
        reference.grad = torch.ones_like(reference)
        ref_opt.step()
        ref_sched.step()
        ref_opt.step()
        assert torch.equal(p, reference)
    assert {k: list(k.signatures) for k in (K.adam_step, K.adam_step_serial)} == before


def test_scheduled_values_come_from_the_compiled_header_at_each_groups_step():
    # two groups, one scheduled by a bound lrfast scheduler and one held at a float by hand:
    # the kernel reads the header's value only where the group's column says so
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    opt = lrfast.optim.SGD([{"params": [a]}, {"params": [b]}], lr=1.0)
    sched = lrfast.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    ra, rb = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    ref = torch.optim.SGD([{"params": [ra]}, {"params": [rb]}], lr=1.0)
    ref_sched = torch.optim.lr_scheduler.ExponentialLR(ref, gamma=0.5)
    for step in range(6):
        for p in (a, b, ra, rb):
            p.grad = torch.ones(3)
        if step == 3:
            opt.param_groups[1]["lr"] = 0.25  # a hand edit: that group leaves the program
            ref.param_groups[1]["lr"] = 0.25
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
        assert torch.equal(a, ra) and torch.equal(b, rb), step
    assert np.allclose([g["lr"] for g in opt.param_groups], [g["lr"] for g in ref.param_groups], rtol=0, atol=0)


def test_mode_chooser_follows_the_faster_mode_and_looks_again():
    from lrfast._backend.cpu import ModeChooser

    chooser = ModeChooser()
    modes = []
    for call in range(200):
        parallel = chooser.parallel()
        modes.append(parallel)
        busy = call >= 100  # the machine fills up halfway: parallel calls become 8x slower than serial
        chooser.record(parallel, (0.008 if busy else 0.0005) if parallel else 0.001)
    assert modes[:2] == [True, True] and modes[2:4] == [False, False]  # timed both (first calls untimed)
    quiet, busy = modes[4:100], modes[110:]
    looks = ModeChooser.LOOK * (len(busy) // ModeChooser.EXPLORE + 1)  # at most, in calls
    assert sum(quiet) >= len(quiet) - looks  # parallel, but for the looks at serial
    assert sum(busy) <= looks  # serial, but for the looks at parallel
    chooser = ModeChooser()
    for _ in range(3 * ModeChooser.EXPLORE):
        parallel = chooser.parallel()
        chooser.record(parallel, 10.0 if chooser.seen[int(parallel)] == 0 else 0.001)  # a slow first call
    assert chooser.averages == [0.001, 0.001]  # the first call of each mode (compiling) was not timed


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_serial_and_parallel_steps_give_the_same_bits(kind, monkeypatch, all_numba_threads):
    from lrfast._backend import cpu

    assert all_numba_threads == numba.config.NUMBA_NUM_THREADS

    results = []
    for force in (True, False):
        monkeypatch.setattr(cpu.ModeChooser, "parallel", lambda self, force=force: force)
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(300_001))
        opt = (lrfast.optim.AdamW([p], lr=0.1, weight_decay=0.1) if kind == "adamw"
               else lrfast.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True))
        sched = lrfast.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
        for _ in range(4):
            p.grad = torch.randn_like(p)
            opt.step()
            sched.step()
        results.append(p.detach().clone())
    assert torch.equal(results[0], results[1])
