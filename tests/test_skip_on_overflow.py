"""skip_schedule_on_overflow: GradScaler-skipped optimizer steps do not advance the
schedule when asked (NOTE [skipped steps]); by default the schedule advances, as torch's."""

from __future__ import annotations

import warnings

import pytest
import torch

import lrfast.optim
from lrfast import lr_scheduler

INF_STEPS = (2, 5, 6)


def run(skip: bool | None, steps: int = 12):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = lrfast.optim.AdamW(model.parameters(), lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    if skip is not None:
        sched.skip_schedule_on_overflow = skip
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=1000)
    x = torch.randn(8, 4)
    lrs, param_steps = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(steps):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            scaler.scale(loss).backward()
            if step in INF_STEPS:
                model.weight.grad[0, 0] = float("inf")
            scaler.step(opt)
            scaler.update()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
            param_steps.append(float(opt.state[model.weight]["step"]))
    return sched, lrs, param_steps


def test_default_advances_like_torch():
    sched, lrs, param_steps = run(None)
    assert sched.last_epoch == 12
    assert lrs[-1] == pytest.approx(0.1 * 0.5**6)
    assert param_steps[-1] == 12 - len(INF_STEPS)  # the optimizer itself skipped them


def test_skipped_steps_hold_the_schedule():
    sched, lrs, param_steps = run(True)
    taken = 12 - len(INF_STEPS)
    assert sched.last_epoch == taken
    assert param_steps[-1] == taken
    assert lrs[-1] == pytest.approx(0.1 * 0.5 ** (taken // 2))
    # the LR holds exactly at the skipped steps
    for step in INF_STEPS:
        assert lrs[step] == lrs[step - 1]


def test_flag_is_validated_and_private_to_state():
    _, _, _ = run(False)
    opt = lrfast.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lr_scheduler.ExponentialLR(opt, gamma=0.9)
    with pytest.raises(TypeError, match="skip_schedule_on_overflow must be a bool, got 1"):
        sched.skip_schedule_on_overflow = 1
    sched.skip_schedule_on_overflow = True
    assert not any(k.startswith("_lrfast") or k == "skip_schedule_on_overflow" for k in sched.state_dict())
