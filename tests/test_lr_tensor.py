"""scheduler.lr_tensor (NOTE [lr tensor]): every group's LR as one float64 (G,) tensor,
the same tensor at every step, equal to get_last_lr() after every step (CPU optimizers;
the CUDA writer's out buffer is covered by tests/test_gpu_plateau.py)."""

from __future__ import annotations

import warnings

import pytest
import torch
from lr_scheduler_harness import make_optimizer

import lrfast.lr_scheduler as FL
from lrfast import schedules as S

STEPS = 40


def _build(name: str, opt):
    n = len(opt.param_groups)
    if name == "StepLR":
        return FL.StepLR(opt, step_size=3, gamma=0.5)
    if name == "CosineAnnealingLR":
        return FL.CosineAnnealingLR(opt, T_max=13, eta_min=1e-4)
    if name == "OneCycleLR":
        return FL.OneCycleLR(opt, max_lr=[0.5] * n, total_steps=STEPS + 1)
    if name == "CyclicLR":
        return FL.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=5)
    if name == "LambdaLR":
        return FL.LambdaLR(opt, lambda t: 1.0 / (1 + t), horizon=8)  # re-baked along the way
    if name == "WarmRestarts":
        return FL.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2)
    if name == "SequentialLR":
        return FL.SequentialLR(opt, [FL.LinearLR(opt, 0.1, total_iters=5), FL.ExponentialLR(opt, 0.9)], [5])
    if name == "ChainedScheduler":
        return FL.ChainedScheduler([FL.StepLR(opt, 4, 0.5), FL.ExponentialLR(opt, 0.97)])
    if name == "SWALR":
        return FL.SWALR(opt, swa_lr=0.05, anneal_epochs=7)
    if name == "FunctionalLR":
        return FL.FunctionalLR(opt, S.warmup_cosine_decay(0.0, 1.0, 5, 30))
    raise ValueError(name)


NAMES = ["StepLR", "CosineAnnealingLR", "OneCycleLR", "CyclicLR", "LambdaLR", "WarmRestarts", "SequentialLR",
         "ChainedScheduler", "SWALR", "FunctionalLR"]


def _last(sched) -> list[float]:
    return [float(v) for v in sched.get_last_lr()]


@pytest.mark.parametrize("tensor_lr", [None, torch.float64, torch.float32])
@pytest.mark.parametrize("name", NAMES)
def test_lr_tensor_follows_every_step(name, tensor_lr):
    opt = make_optimizer("sgd", tensor_lr=tensor_lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _build(name, opt)
        lr = sched.lr_tensor
        assert lr.dtype == torch.float64 and lr.shape == (3,) and lr.device.type == "cpu"
        for k in range(STEPS + 1):
            if k:
                opt.step()
                sched.step()
            assert sched.lr_tensor is lr, f"step {k}: a new tensor"
            want = torch.tensor(_last(sched), dtype=torch.float64)
            if tensor_lr == torch.float32:  # the groups hold float32 roundings of the float64 values
                assert torch.equal(lr.to(torch.float32).double(), want), f"step {k}"
            else:
                assert lr.tolist() == want.tolist(), f"step {k}"


def test_lr_tensor_made_mid_run_holds_the_current_values_and_survives_reloads():
    opt = make_optimizer("sgd")
    sched = FL.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        opt.step()
        sched.step()
    lr = sched.lr_tensor
    assert lr.tolist() == _last(sched)
    state = sched.state_dict()
    for _ in range(3):
        opt.step()
        sched.step()
    sched.load_state_dict(state)  # rebuilds the program: the same tensor, written on the next step
    opt.step()
    sched.step()
    assert sched.lr_tensor is lr and lr.tolist() == _last(sched)
    sched.refresh()
    opt.step()
    sched.step()
    assert sched.lr_tensor is lr and lr.tolist() == _last(sched)


def test_lr_tensor_stays_out_of_the_state_dict():
    opt = make_optimizer("sgd")
    sched = FL.StepLR(opt, step_size=2)
    sched.lr_tensor  # noqa: B018 - made on access
    assert not any("lrfast" in k for k in sched.state_dict())


@pytest.mark.parametrize("tensor_lr", [None, torch.float64])
def test_plateau_lr_tensor_follows_host_steps(tensor_lr):
    opt = make_optimizer("sgd", tensor_lr=tensor_lr)
    sched = FL.ReduceLROnPlateau(opt, patience=1, factor=0.5, min_lr=[1e-3, 0.0, 0.05])
    lr = sched.lr_tensor
    assert lr.dtype == torch.float64 and lr.shape == (3,)
    for k in range(30):
        opt.step()
        sched.step(1.0 if k % 7 else 0.5 - k * 1e-3)
        assert sched.lr_tensor is lr
        assert lr.tolist() == _last(sched), f"step {k}"
    assert lr[0].item() < 0.1 / 8


def test_composed_plateau_lr_tensor_made_mid_run():
    opt = make_optimizer("sgd")
    sched = FL.ReduceLROnPlateau(opt, patience=0, schedule=S.cosine_annealing(1.0, 20))
    for _ in range(5):
        opt.step()
        sched.step(1.0)
    lr = sched.lr_tensor
    assert lr.tolist() == _last(sched)
    for _ in range(5):
        opt.step()
        sched.step()
        assert sched.lr_tensor is lr and lr.tolist() == _last(sched)
