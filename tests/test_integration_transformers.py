"""Hugging Face transformers: the schedule-helper twins and the Trainer.

lrfast.integrations.transformers.get_* against transformers.get_* on the same settings:
the factor curves over the whole span and past it (relative 1e-9), then step by step on
an optimizer. Then transformers' Trainer trains a tiny module with
``optimizers=(optimizer, lrfast scheduler)`` and logs the LR trajectory of
``transformers.get_cosine_schedule_with_warmup``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lrfast.integrations.transformers as lf
from lrfast import _descriptor as layout
from lrfast.lr_scheduler import FunctionalLR
from lrfast.optim import AdamW

transformers = pytest.importorskip("transformers", reason='transformers is not installed (pip install -e ".[test]")')
pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate (pip install -e \".[test]\")")
from transformers import optimization as hf  # noqa: E402

REL = 1e-9
BASE_LR = 1e-3

# (helper name, kwargs, steps to compare: the whole span and past it)
CASES = [
    ("get_constant_schedule", {}, 50),
    ("get_constant_schedule_with_warmup", {"num_warmup_steps": 0}, 30),
    ("get_constant_schedule_with_warmup", {"num_warmup_steps": 1}, 30),
    ("get_constant_schedule_with_warmup", {"num_warmup_steps": 17}, 60),
    ("get_linear_schedule_with_warmup", {"num_warmup_steps": 10, "num_training_steps": 100}, 150),
    ("get_linear_schedule_with_warmup", {"num_warmup_steps": 0, "num_training_steps": 97}, 150),
    ("get_linear_schedule_with_warmup", {"num_warmup_steps": 100, "num_training_steps": 100}, 150),
    ("get_linear_schedule_with_warmup", {"num_warmup_steps": 120, "num_training_steps": 100}, 150),
    ("get_linear_schedule_with_warmup", {"num_warmup_steps": 1, "num_training_steps": 2}, 10),
    ("get_cosine_schedule_with_warmup", {"num_warmup_steps": 10, "num_training_steps": 200}, 500),
    ("get_cosine_schedule_with_warmup", {"num_warmup_steps": 0, "num_training_steps": 150}, 400),
    ("get_cosine_schedule_with_warmup", {"num_warmup_steps": 5, "num_training_steps": 105, "num_cycles": 1.5}, 300),
    ("get_cosine_schedule_with_warmup", {"num_warmup_steps": 7, "num_training_steps": 93, "num_cycles": 0.25},
     300),
    ("get_cosine_schedule_with_warmup", {"num_warmup_steps": 3, "num_training_steps": 50, "num_cycles": 2.0}, 120),
    ("get_cosine_schedule_with_warmup", {"num_warmup_steps": 3, "num_training_steps": 50, "num_cycles": 0}, 60),
    ("get_cosine_schedule_with_warmup", {"num_warmup_steps": 10, "num_training_steps": 10}, 30),
    ("get_cosine_schedule_with_warmup", {"num_warmup_steps": 10, "num_training_steps": 4}, 30),
    ("get_cosine_with_min_lr_schedule_with_warmup",
     {"num_warmup_steps": 10, "num_training_steps": 100, "min_lr_rate": 0.1}, 250),
    ("get_cosine_with_min_lr_schedule_with_warmup",
     {"num_warmup_steps": 0, "num_training_steps": 80, "num_cycles": 1.0, "min_lr": 1e-4}, 200),
    ("get_cosine_with_hard_restarts_schedule_with_warmup",
     {"num_warmup_steps": 10, "num_training_steps": 110, "num_cycles": 1}, 150),
    ("get_cosine_with_hard_restarts_schedule_with_warmup",
     {"num_warmup_steps": 10, "num_training_steps": 110, "num_cycles": 3}, 150),
    ("get_cosine_with_hard_restarts_schedule_with_warmup",
     {"num_warmup_steps": 0, "num_training_steps": 100, "num_cycles": 4}, 150),
    ("get_cosine_with_hard_restarts_schedule_with_warmup",
     {"num_warmup_steps": 5, "num_training_steps": 25, "num_cycles": 6}, 60),
    ("get_cosine_with_hard_restarts_schedule_with_warmup",
     {"num_warmup_steps": 0, "num_training_steps": 91, "num_cycles": 7}, 120),
    ("get_cosine_with_hard_restarts_schedule_with_warmup",
     {"num_warmup_steps": 4, "num_training_steps": 104, "num_cycles": 2.5}, 150),
    ("get_cosine_with_hard_restarts_schedule_with_warmup",
     {"num_warmup_steps": 4, "num_training_steps": 54, "num_cycles": 0}, 80),
    ("get_polynomial_decay_schedule_with_warmup", {"num_warmup_steps": 10, "num_training_steps": 100}, 150),
    ("get_polynomial_decay_schedule_with_warmup",
     {"num_warmup_steps": 0, "num_training_steps": 100, "lr_end": 1e-4, "power": 2.0}, 150),
    ("get_polynomial_decay_schedule_with_warmup",
     {"num_warmup_steps": 20, "num_training_steps": 120, "lr_end": 0.0, "power": 0.5}, 200),
    ("get_polynomial_decay_schedule_with_warmup",
     {"num_warmup_steps": 120, "num_training_steps": 100, "lr_end": 1e-5}, 200),
    ("get_inverse_sqrt_schedule", {"num_warmup_steps": 0}, 300),
    ("get_inverse_sqrt_schedule", {"num_warmup_steps": 100}, 600),
    ("get_inverse_sqrt_schedule", {"num_warmup_steps": 10, "timescale": 5}, 300),
    ("get_inverse_sqrt_schedule", {"num_warmup_steps": 0, "timescale": 7}, 300),
    ("get_wsd_schedule", {"num_warmup_steps": 10, "num_decay_steps": 30, "num_training_steps": 100}, 150),
    ("get_wsd_schedule", {"num_warmup_steps": 10, "num_decay_steps": 30, "num_stable_steps": 40,
                          "warmup_type": "cosine", "decay_type": "linear", "min_lr_ratio": 0.1}, 120),
    ("get_wsd_schedule", {"num_warmup_steps": 25, "num_decay_steps": 40, "num_stable_steps": 10,
                          "warmup_type": "1-sqrt", "decay_type": "1-sqrt", "min_lr_ratio": 0.05}, 120),
    ("get_wsd_schedule", {"num_warmup_steps": 12, "num_decay_steps": 60, "num_training_steps": 100,
                          "warmup_type": "cosine", "decay_type": "cosine", "num_cycles": 1.0}, 150),
    ("get_wsd_schedule", {"num_warmup_steps": 0, "num_decay_steps": 50, "num_stable_steps": 0,
                          "decay_type": "1-sqrt", "min_lr_ratio": 0.2}, 80),
    ("get_wsd_schedule", {"num_warmup_steps": 8, "num_decay_steps": 0, "num_stable_steps": 5,
                          "warmup_type": "1-sqrt", "min_lr_ratio": 0.3}, 30),
    ("get_wsd_schedule", {"num_warmup_steps": 8, "num_decay_steps": 20, "num_training_steps": 28,
                          "decay_type": "linear"}, 40),
]


def _id(case) -> str:
    name, kwargs, _ = case
    return name.removeprefix("get_") + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


def _optimizer(lr: float = BASE_LR, groups: int = 1) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)], lr=lr)


def _build(module, name: str, kwargs: dict, optimizer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # WSD: both step counts given, by design of the case
        return getattr(module, name)(optimizer, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_factor_curve_matches_transformers(case) -> None:
    name, kwargs, steps = case
    theirs = _build(hf, name, kwargs, _optimizer())
    ours = _build(lf, name, kwargs, _optimizer())
    assert isinstance(ours, FunctionalLR)
    want = np.array([float(theirs.lr_lambdas[0](t)) for t in range(steps)])
    got = ours.factors[0].values(steps)
    np.testing.assert_allclose(got, want, rtol=REL, atol=0)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in {
    "get_cosine_schedule_with_warmup", "get_wsd_schedule", "get_polynomial_decay_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup"}][::2], ids=_id)
def test_stepping_matches_transformers(case) -> None:
    """The scheduler itself: every group's lr and get_last_lr() after every step."""
    name, kwargs, steps = case
    opt_theirs, opt_ours = _optimizer(groups=2), _optimizer(groups=2)
    theirs = _build(hf, name, kwargs, opt_theirs)
    ours = _build(lf, name, kwargs, opt_ours)
    for t in range(steps):
        for g_theirs, g_ours in zip(opt_theirs.param_groups, opt_ours.param_groups):
            assert g_ours["lr"] == pytest.approx(g_theirs["lr"], rel=REL, abs=0), f"step {t}"
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=REL, abs=0)
        opt_theirs.step()
        opt_ours.step()
        theirs.step()
        ours.step()


def test_state_dict_resumes_like_transformers() -> None:
    """Save at step 37, rebuild with the same arguments, load: the curve carries on."""
    kwargs = {"num_warmup_steps": 10, "num_training_steps": 100}
    opt = _optimizer()
    sched = lf.get_cosine_schedule_with_warmup(opt, **kwargs)
    for _ in range(37):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert all(not isinstance(v, FunctionalLR) and "schedule" not in k for k, v in state.items())
    opt2 = _optimizer()
    resumed = lf.get_cosine_schedule_with_warmup(opt2, **kwargs)
    resumed.load_state_dict(state)
    reference = hf.get_cosine_schedule_with_warmup(_optimizer(), **kwargs).lr_lambdas[0]
    for t in range(38, 60):
        opt2.step()
        resumed.step()
        assert opt2.param_groups[0]["lr"] == pytest.approx(BASE_LR * reference(t), rel=REL, abs=0)


def test_hard_restarts_closed_form_or_table() -> None:
    """NOTE [hard restarts]: restarts between integer steps stay closed form; a restart that
    lands on a step where float rounding decides the side falls back to a table."""
    def kinds(**kw):
        return {seg.kind for seg in lf.get_cosine_with_hard_restarts_schedule_with_warmup(
            _optimizer(), **kw).factors[0].segments}

    assert layout.Kind.WARM_RESTARTS in kinds(num_warmup_steps=10, num_training_steps=110, num_cycles=3)
    assert layout.Kind.WARM_RESTARTS in kinds(num_warmup_steps=0, num_training_steps=100, num_cycles=4)
    # D = 20, c = 6: the restart at u = 10 is 3 * fl(20 / 6), which rounds past 10.
    assert layout.Kind.TABLE in kinds(num_warmup_steps=5, num_training_steps=25, num_cycles=6)


@pytest.mark.parametrize("call, match", [
    (lambda o: lf.get_linear_schedule_with_warmup(o, -1, 10), "num_warmup_steps must be >= 0"),
    (lambda o: lf.get_linear_schedule_with_warmup(o, 1.5, 10), "num_warmup_steps must be an int"),
    (lambda o: lf.get_polynomial_decay_schedule_with_warmup(o, 1, 10, lr_end=1.0), "lr_end"),
    (lambda o: lf.get_wsd_schedule(o, 1, 10), "either num_training_steps or num_stable_steps"),
    (lambda o: lf.get_wsd_schedule(o, 5, 10, num_training_steps=12), "at least num_warmup_steps"),
    (lambda o: lf.get_wsd_schedule(o, 1, 10, num_stable_steps=3, decay_type="exp"), "decay_type"),
    (lambda o: lf.get_wsd_schedule(o, 1, 10, num_stable_steps=3, warmup_type="exp"), "warmup_type"),
    (lambda o: lf.get_wsd_schedule(o, 1, 10, num_stable_steps=3, min_lr_ratio=-0.1), "min_lr_ratio"),
    (lambda o: lf.get_inverse_sqrt_schedule(o, 1, timescale=0), "timescale"),
    (lambda o: lf.get_cosine_with_min_lr_schedule_with_warmup(o, 1, 10), "min_lr"),
])
def test_bad_arguments_name_the_helper(call, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call(_optimizer())
    assert str(info.value).startswith("get_")


def test_wsd_warns_when_both_step_counts_are_given() -> None:
    with pytest.warns(UserWarning, match="num_stable_steps will be used"):
        lf.get_wsd_schedule(_optimizer(), 2, 4, num_training_steps=10, num_stable_steps=3)


# -- the Trainer ------------------------------------------------------------------------------

class TinyRegressor(torch.nn.Module):
    """A model the Trainer accepts: forward(**batch) returns {"loss", "logits"}."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        out = self.net(x)
        loss = torch.nn.functional.mse_loss(out, labels) if labels is not None else None
        return {"loss": loss, "logits": out}


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 6, generator=g)
        self.y = torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "labels": self.y[i]}


class RecordLR(transformers.TrainerCallback):
    """The LR each optimizer step used (read before the step) and after the last."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.lrs.append(float(optimizer.param_groups[0]["lr"]))


def _train(tmp_path, make_scheduler, steps: int, warmup: int) -> tuple[list[float], list[float], dict]:
    torch.manual_seed(0)
    model = TinyRegressor()
    optimizer = AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    scheduler = make_scheduler(optimizer, num_warmup_steps=warmup, num_training_steps=steps)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=4, logging_steps=1,
        report_to=[], save_strategy="no", use_cpu=True, seed=0, dataloader_num_workers=0,
        disable_tqdm=True)
    recorder = RecordLR()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=PairDataset(64),
                                   optimizers=(optimizer, scheduler), callbacks=[recorder])
    trainer.train()
    logged = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    return recorder.lrs, logged, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_trainer_lr_trajectory_matches_transformers_cosine(tmp_path) -> None:
    steps, warmup = 14, 4
    ours_lrs, ours_logged, ours_params = _train(tmp_path / "lrfast", lf.get_cosine_schedule_with_warmup,
                                                steps, warmup)
    hf_lrs, hf_logged, hf_params = _train(tmp_path / "hf", hf.get_cosine_schedule_with_warmup, steps, warmup)
    assert len(ours_lrs) == len(hf_lrs) == steps
    assert ours_lrs == pytest.approx(hf_lrs, rel=REL, abs=0)
    assert len(ours_logged) == len(hf_logged) == steps
    assert ours_logged == pytest.approx(hf_logged, rel=REL, abs=0)
    closed = [3e-3 * hf._get_cosine_schedule_with_warmup_lr_lambda(
        t, num_warmup_steps=warmup, num_training_steps=steps, num_cycles=0.5) for t in range(steps)]
    assert ours_lrs == pytest.approx(closed, rel=REL, abs=0)
    assert ours_lrs[0] == 0.0 and max(ours_lrs) == pytest.approx(3e-3)
    for name, value in ours_params.items():
        torch.testing.assert_close(value, hf_params[name], rtol=1e-6, atol=1e-7, msg=name)


# -- FunctionalLR, which the twins are built on -----------------------------------------------

def test_functional_lr_per_group_factors_and_errors() -> None:
    from lrfast import schedules as S

    opt = _optimizer(lr=0.5, groups=2)
    sched = FunctionalLR(opt, [S.linear(0.0, 1.0, 4), S.step_decay(1.0, step_size=2, gamma=0.5)])
    seen = [[g["lr"] for g in opt.param_groups]]
    for _ in range(5):
        opt.step()
        sched.step()
        seen.append([g["lr"] for g in opt.param_groups])
    # group 1 has base LR 1.0 (_optimizer doubles it), group 0 0.5
    assert seen == [[0.0, 1.0], [0.125, 1.0], [0.25, 0.5], [0.375, 0.5], [0.5, 0.25], [0.5, 0.25]]
    assert "schedule_factor" not in sched.state_dict() and "_lrfast_factors" not in sched.state_dict()
    with pytest.raises(ValueError, match="FunctionalLR: expected 2 schedules"):
        FunctionalLR(_optimizer(groups=2), [S.constant(1.0)])
    with pytest.raises(TypeError, match="FunctionalLR: schedule_factor must be"):
        FunctionalLR(_optimizer(), lambda t: 1.0)
