"""lrfast.find_lr, the LR range test: the same answer as Lightning's ``Tuner.lr_find``, no
host read per step on the (emulated) device, the model and optimizer put back as they
were, and bad input refused before anything changes."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch

import lrfast
import lrfast.optim
from lrfast import lr_scheduler, schedules
from lrfast._backend import device_api
from lrfast.lr_finder import LRFinderResult, range_test_schedule

BATCHES, BATCH_SIZE = 12, 16


def make_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def make_data(n: int = BATCHES, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n * BATCH_SIZE, 6, generator=g)
    y = (x[:, :1] * 2 - x[:, 1:2]).tanh() + 0.1 * torch.randn(n * BATCH_SIZE, 1, generator=g)
    return [(x[i:i + BATCH_SIZE], y[i:i + BATCH_SIZE]) for i in range(0, n * BATCH_SIZE, BATCH_SIZE)]


def mse(model: torch.nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """Everything find_lr promises to leave as it was, as plain copies, plus the tensor objects."""
    groups = [{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in g.items() if k != "params"}
              for g in optimizer.param_groups]  # floats, tuples, Schedules: immutable
    state = {id(p): {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
             for p, s in optimizer.state.items()}
    tensors = [(name, t, t.detach().clone()) for name, t in [*model.named_parameters(), *model.named_buffers()]]
    grads = [(p.grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    state_objects = {id(p): {k: v for k, v in s.items()} for p, s in optimizer.state.items()}
    return groups, state, tensors, grads, modes, state_objects


def assert_unchanged(model, optimizer, before) -> None:
    groups, state, tensors, grads, modes, state_objects = before
    for name, t, saved in tensors:
        assert torch.equal(t, saved), name
    assert [m.training for m in model.modules()] == modes
    for p, (grad_object, saved) in zip(model.parameters(), grads):
        if saved is None:
            assert p.grad is None
        else:
            assert p.grad is grad_object and torch.equal(p.grad, saved)
    assert len(optimizer.param_groups) == len(groups)
    for group, saved in zip(optimizer.param_groups, groups):
        assert set(group) - {"params"} == set(saved)
        for key, value in saved.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(group[key], value), key
            else:
                assert group[key] == value, key
    assert {id(p) for p in optimizer.state} == set(state)
    for p, s in optimizer.state.items():
        assert set(s) == set(state[id(p)])
        for key, value in s.items():
            if isinstance(value, torch.Tensor):
                assert value is state_objects[id(p)][key], f"state {key} replaced, not restored in place"
                assert torch.equal(value, state[id(p)][key]), key
            else:
                assert value == state[id(p)][key]


# -- the LR sequence ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["exponential", "linear"])
@pytest.mark.parametrize("n", [2, 3, 7, 100])
def test_the_lr_sequence_is_lightnings(mode, n):
    lo, hi = 1e-6, 3.0
    lightning = [lo] + [lo * (hi / lo) ** ((k + 1) / n) if mode == "exponential" else lo + (k + 1) / n * (hi - lo)
                        for k in range(1, n)]  # its scheduler's step 0 holds base_lr, then r = (k + 1) / n
    np.testing.assert_allclose(range_test_schedule(lo, hi, n, mode).values(n), lightning, rtol=1e-13)
    assert range_test_schedule(lo, hi, n, mode).values(n)[-1] == pytest.approx(hi, rel=1e-14)


# -- Lightning parity ----------------------------------------------------------------------

def lightning_lr_find(tmp_path, optimizer_class, mode: str, num_steps: int, min_lr: float, max_lr: float,
                      early_stop_threshold: float | None = 4.0):
    pl = pytest.importorskip("lightning.pytorch", reason='Lightning is not installed (pip install -e ".[test]")')
    from lightning.pytorch.tuner import Tuner

    data = make_data()

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_net()

        def training_step(self, batch, batch_idx):
            return mse(self.net, batch)

        def configure_optimizers(self):
            return optimizer_class(self.parameters(), lr=0.05, momentum=0.9)

    loader = torch.utils.data.DataLoader(data, batch_size=None)  # the same batches, in order, one epoch each
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu", devices=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = Tuner(trainer).lr_find(Module(), train_dataloaders=loader, min_lr=min_lr, max_lr=max_lr,
                                       num_training=num_steps, mode=mode, early_stop_threshold=early_stop_threshold,
                                       update_attr=False)
    return found, data


@pytest.mark.slow  # Lightning's import and Trainer: about 5 s the first time
@pytest.mark.filterwarnings("ignore:.*does not have many workers.*")
@pytest.mark.parametrize(("mode", "optimizer_class", "max_lr"), [
    ("exponential", torch.optim.SGD, 20.0),
    ("linear", torch.optim.SGD, 0.5),
    ("exponential", lrfast.optim.SGD, 20.0),  # the LR from the kernel's Schedule
], ids=["exponential-torch.optim.SGD", "linear-torch.optim.SGD", "exponential-lrfast.optim.SGD"])
def test_same_answer_as_lightning(tmp_path, mode, optimizer_class, max_lr):
    num_steps, min_lr = 60, 1e-4
    found, data = lightning_lr_find(tmp_path, torch.optim.SGD, mode, num_steps, min_lr, max_lr)
    model = make_net()
    optimizer = optimizer_class(model.parameters(), lr=0.05, momentum=0.9)
    result = find_lr_checked(model, optimizer, data, min_lr=min_lr, max_lr=max_lr, num_steps=num_steps, mode=mode)
    lrs, losses = np.array(found.results["lr"]), np.array(found.results["loss"])
    assert result.stop_reason == "diverged" and len(losses) < num_steps  # the stop rule was exercised
    assert len(result.lrs) == len(lrs) and result.stopped_at == len(lrs) - 1
    np.testing.assert_allclose(result.lrs, lrs, rtol=1e-12)
    # the same float arithmetic as Lightning's callback; lrfast's SGD steps as torch's foreach=False, bit for bit
    np.testing.assert_array_equal(result.smoothed, losses)
    lightning_suggestion = found.suggestion()
    assert lightning_suggestion is not None
    assert result.suggestion == pytest.approx(lightning_suggestion, rel=1e-12)
    assert result.suggestion_index == found._optimal_idx
    assert 10 < result.suggestion_index < len(lrs) - 2  # an interior point, not the first one allowed


def find_lr_checked(model, optimizer, batches, loss_fn=mse, **kwargs) -> LRFinderResult:
    """find_lr, asserting that it left the model and the optimizer as they were."""
    before = snapshot(model, optimizer)
    result = lrfast.find_lr(model, optimizer, batches, loss_fn, **kwargs)
    assert_unchanged(model, optimizer, before)
    return result


# -- no host read per step on the device -------------------------------------------------------

READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__", "__array__")


class ReadCounter:
    """Counts device-to-host reads of emulated-device tensors (CPU tensors, while an
    EmulatedDevice is active) by wrapping torch.Tensor's reading methods."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[str] = []
        for name in READS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def counted(tensor, *args, **kwargs):
            if device_api.is_device(tensor.device):
                self.calls.append(name)
            return original(tensor, *args, **kwargs)

        return counted


@pytest.fixture
def emulated():
    pytest.importorskip("lrfast._C_emu", reason="lrfast._C_emu (the emulated device) is not built here")
    with device_api.use(device_api.emulated()) as api:
        yield api


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, lrfast.optim.SGD],
                         ids=["torch.optim.SGD", "lrfast.optim.SGD"])
def test_one_host_read_per_check_on_the_emulated_device(emulated, monkeypatch, optimizer_class):
    data = make_data()
    runs = {}
    for check_every in (None, 1, 7):
        model = make_net()
        optimizer = optimizer_class(model.parameters(), lr=0.05, momentum=0.9)
        before = snapshot(model, optimizer)
        with monkeypatch.context() as patch:
            counter = ReadCounter(patch)
            result = lrfast.find_lr(model, optimizer, data, mse, min_lr=1e-4, max_lr=0.05, num_steps=30,
                                    check_every=check_every)
        assert_unchanged(model, optimizer, before)
        assert result.stop_reason == "completed" and result.steps_run == 30
        runs[check_every] = (result, counter.calls)
    # a read per check (after steps K, 2K, ... before the last) and one at the end: never one per step
    assert len(runs[None][1]) == 2 + 1  # the device default, DEVICE_CHECK_EVERY = 10: after steps 10 and 20
    assert len(runs[7][1]) == 4 + 1
    assert len(runs[1][1]) == 29 + 1  # the counter sees every read: asked for one per step, it counts them
    for result, _ in runs.values():
        np.testing.assert_array_equal(result.smoothed, runs[1][0].smoothed)


def test_a_divergence_read_late_gives_the_same_result(emulated):
    results = {}
    for check_every in (1, 10):
        model = make_net()
        optimizer = lrfast.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        results[check_every] = find_lr_checked(model, optimizer, make_data(), min_lr=1e-4, max_lr=20.0,
                                               num_steps=60, check_every=check_every)
    early, late = results[1], results[10]
    assert early.stop_reason == late.stop_reason == "diverged"
    assert early.steps_run == early.stopped_at + 1  # stopped at once
    assert late.steps_run == 10 * math.ceil((late.stopped_at + 1) / 10) > late.stopped_at + 1  # ran on to the check
    for name in ("lrs", "losses", "smoothed"):
        np.testing.assert_array_equal(getattr(early, name), getattr(late, name))
    assert early.suggestion == late.suggestion and early.stopped_at == late.stopped_at


def test_on_the_device_without_early_stop_the_one_read_is_at_the_end(emulated, monkeypatch):
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with monkeypatch.context() as patch:
        counter = ReadCounter(patch)
        result = lrfast.find_lr(model, optimizer, make_data(), mse, min_lr=1e-4, max_lr=20.0, num_steps=40,
                                early_stop=False)
    assert counter.calls == ["tolist"] and result.steps_run == len(result.lrs) == 40
    assert result.stop_reason == "completed"
    assert not result.smoothed[-1] <= 4 * np.nanmin(result.smoothed)  # it diverged, and ran on as asked


def test_a_nan_loss_on_the_device_says_so(emulated):
    model = make_net()
    result = find_lr_checked(model, torch.optim.SGD(model.parameters(), lr=0.1), make_data(),
                             lambda m, b: mse(m, b) * float("nan"), num_steps=30)
    assert result.stop_reason == "non-finite loss" and result.stopped_at == 1 and len(result.lrs) == 2
    assert result.steps_run == 10  # read at the first check (DEVICE_CHECK_EVERY)
    assert result.suggestion is None


def test_emulated_device_matches_the_cpu(emulated):
    model = make_net()
    on_device = find_lr_checked(model, lrfast.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), make_data(),
                                min_lr=1e-4, max_lr=20.0, num_steps=60)
    with device_api.use(device_api.CUDA):  # CPU tensors are CPU tensors again; torch's SGD as the reference
        on_cpu = find_lr_checked(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), make_data(),
                                 min_lr=1e-4, max_lr=20.0, num_steps=60)
    assert len(on_device.lrs) == len(on_cpu.lrs)
    np.testing.assert_allclose(on_device.lrs, on_cpu.lrs, rtol=0)
    np.testing.assert_allclose(on_device.smoothed, on_cpu.smoothed, rtol=1e-5)
    assert on_device.suggestion_index == on_cpu.suggestion_index


# -- restored afterwards ---------------------------------------------------------------------

class WithNorm(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.norm, self.b = torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 1)
        self.drop = torch.nn.Dropout(0.1)

    def forward(self, x):
        return self.b(self.drop(self.norm(self.a(x)).tanh()))


def trained(model, optimizer, data, steps):
    for batch in data[:steps]:
        optimizer.zero_grad()
        mse(model, batch).backward()
        optimizer.step()


OPTIMIZERS = {
    "torch Adam, float lr": lambda ps: torch.optim.Adam(ps, lr=1e-3),
    "torch AdamW, tensor lr": lambda ps: torch.optim.AdamW(ps, lr=torch.tensor(1e-3)),
    "torch SGD, two groups": lambda ps: torch.optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.5}],
                                                        lr=0.01, momentum=0.9),
    "lrfast AdamW, float lr": lambda ps: lrfast.optim.AdamW(ps, lr=1e-3),
    "lrfast SGD, Schedule lr": lambda ps: lrfast.optim.SGD(ps, lr=schedules.cosine_decay(0.1, 50), momentum=0.9),
}


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "after 3 steps"])
def test_model_and_optimizer_are_put_back(make, warm):
    data = make_data()
    model = WithNorm()
    optimizer = make(list(model.parameters()))
    if warm:
        trained(model, optimizer, data, 3)
    model.eval()  # and a module left in eval mode stays so
    twin_model, twin_optimizer = copy.deepcopy((model, optimizer))
    result = find_lr_checked(model, optimizer, data, min_lr=1e-5, max_lr=10.0, num_steps=25)
    assert result.steps_run > 3
    # training goes on exactly as it would have without the range test
    model.train(), twin_model.train()
    torch.manual_seed(5)
    trained(model, optimizer, data, 4)
    torch.manual_seed(5)
    trained(twin_model, twin_optimizer, data, 4)
    for p, q in zip(model.parameters(), twin_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    for g, h in zip(optimizer.param_groups, twin_optimizer.param_groups):
        assert float(g["lr"]) == float(h["lr"]) and g.get("lr_step") == h.get("lr_step")


def test_an_lrfast_optimizer_runs_the_range_test_as_its_schedule_lr():
    model = make_net()
    optimizer = lrfast.optim.SGD([{"params": list(model.parameters())[:2]},
                                  {"params": list(model.parameters())[2:], "lr": 0.3}], lr=0.1, momentum=0.9)
    seen = []

    def loss_fn(m, batch):
        seen.append([(g.get("lr_schedule"), g.get("lr_step"), g["lr"]) for g in optimizer.param_groups])
        return mse(m, batch)

    result = find_lr_checked(model, optimizer, make_data(), loss_fn, min_lr=1e-4, max_lr=0.05, num_steps=15)
    expected = range_test_schedule(1e-4, 0.05, 15)
    for k, groups in enumerate(seen):
        for schedule, step, lr in groups:  # every group: the range test's Schedule, at step k
            assert repr(schedule) == repr(expected) and step == k and lr == result.lrs[k]
    # the kernel applied those LRs: the same losses as torch's SGD given them as floats
    twin = make_net()
    reference = lrfast.find_lr(twin, torch.optim.SGD([{"params": list(twin.parameters())[:2]},
                                                      {"params": list(twin.parameters())[2:], "lr": 0.3}],
                                                     lr=0.1, momentum=0.9),
                               make_data(), mse, min_lr=1e-4, max_lr=0.05, num_steps=15)
    np.testing.assert_array_equal(result.losses, reference.losses)


def test_a_bound_lrfast_scheduler_is_set_aside_and_bound_again():
    model = make_net()
    optimizer = lrfast.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    trained(model, optimizer, make_data(), 3)
    for _ in range(3):
        scheduler.step()
    result = find_lr_checked(model, optimizer, make_data(), min_lr=1e-4, max_lr=20.0, num_steps=40)
    assert result.stop_reason == "diverged"  # the range test's LRs were used, not the scheduler's 0.05
    assert optimizer._lrfast_bound_scheduler() is scheduler
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def test_a_parameter_the_optimizer_holds_outside_the_model_is_restored():
    model = make_net()
    scale = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([*model.parameters(), scale], lr=0.1, momentum=0.9)
    result = lrfast.find_lr(model, optimizer, make_data(), lambda m, b: mse(m, b) * scale, num_steps=20, max_lr=10.0)
    assert result.steps_run > 5
    assert torch.equal(scale, torch.ones(1)) and scale.grad is None


def test_gradients_left_by_the_caller_are_kept():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    mse(model, make_data()[0]).backward()  # grads present, as after a backward the caller has not stepped
    find_lr_checked(model, optimizer, make_data(), num_steps=5)


# -- bad input -----------------------------------------------------------------------------------

BAD = [
    ({"min_lr": 1.0, "max_lr": 1.0}, ValueError, "find_lr: min_lr must be below max_lr, got min_lr=1.0, max_lr=1.0"),
    ({"min_lr": 0.5, "max_lr": 0.1}, ValueError, "min_lr=0.5, max_lr=0.1"),
    ({"min_lr": 0.0}, ValueError, "find_lr: min_lr must be > 0 for mode='exponential', got 0.0"),
    ({"min_lr": -1.0, "mode": "linear"}, ValueError, "find_lr: min_lr must be >= 0, got -1.0"),
    ({"max_lr": float("inf")}, ValueError, "find_lr: max_lr must be finite, got inf"),
    ({"num_steps": 1}, ValueError, "find_lr: num_steps must be >= 2, got 1"),
    ({"num_steps": 10.0}, TypeError, "find_lr: num_steps must be an int, got 10.0"),
    ({"num_steps": True}, TypeError, "find_lr: num_steps must be an int, got True"),
    ({"mode": "cosine"}, ValueError, "find_lr: mode must be one of ('exponential', 'linear'), got 'cosine'"),
    ({"smoothing": 1.0}, ValueError, "find_lr: smoothing must be in [0, 1), got 1.0"),
    ({"diverge_factor": 0}, ValueError, "find_lr: diverge_factor must be > 0, got 0"),
    ({"early_stop": 1}, TypeError, "find_lr: early_stop must be a bool, got 1"),
    ({"check_every": 0}, ValueError, "find_lr: check_every must be a positive int or None, got 0"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD, ids=[repr(k) for k, _, _ in BAD])
def test_bad_arguments_raise_before_anything_changes(kwargs, error, message):
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = snapshot(model, optimizer)
    batches = iter(make_data())
    with pytest.raises(error) as info:
        lrfast.find_lr(model, optimizer, batches, mse, **kwargs)
    assert message in str(info.value)
    assert_unchanged(model, optimizer, before)
    assert len(list(batches)) == BATCHES  # not a batch taken


@pytest.mark.parametrize("batches", [[], iter([])], ids=["empty list", "exhausted iterator"])
def test_no_batches_is_an_error(batches):
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = snapshot(model, optimizer)
    with pytest.raises(ValueError, match="find_lr: batches is empty"):
        lrfast.find_lr(model, optimizer, batches, mse)
    assert_unchanged(model, optimizer, before)


def test_range_test_schedule_names_itself_in_its_errors():
    with pytest.raises(ValueError, match=r"range_test_schedule: num_steps must be >= 2, got 1"):
        range_test_schedule(1e-3, 1.0, 1)


def test_other_arguments_are_checked():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="find_lr: model must be a torch.nn.Module, got 3"):
        lrfast.find_lr(3, optimizer, make_data(), mse)
    with pytest.raises(TypeError, match="find_lr: optimizer must be a torch.optim.Optimizer, got None"):
        lrfast.find_lr(model, None, make_data(), mse)
    with pytest.raises(TypeError, match="find_lr: loss_fn must be callable"):
        lrfast.find_lr(model, optimizer, make_data(), "mse")
    with pytest.raises(TypeError, match="find_lr: batches must be iterable, got 5"):
        lrfast.find_lr(model, optimizer, 5, mse)


def test_a_one_shot_iterator_that_runs_out_ends_the_test():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = find_lr_checked(model, optimizer, iter(make_data(5)), num_steps=20)
    assert result.stop_reason == "out of batches" and len(result.lrs) == result.steps_run == 5
    assert result.stopped_at is None and result.suggestion is None  # too few points for a suggestion


def test_a_reiterable_source_starts_a_new_pass():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    result = lrfast.find_lr(model, optimizer, make_data(3), lambda m, b: seen.append(b) or mse(m, b),
                            num_steps=8, max_lr=1e-3)
    assert result.stop_reason == "completed" and len(seen) == 8
    assert all(seen[i] is seen[i % 3] for i in range(8))


def test_a_nan_loss_from_the_first_step_says_so():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = find_lr_checked(model, optimizer, make_data(), num_steps=20)  # a finite run first, for contrast
    assert result.stop_reason == "completed" and np.isfinite(result.smoothed).all()
    result = find_lr_checked(model, optimizer, make_data(), lambda m, b: mse(m, b) * float("nan"), num_steps=20)
    assert result.stop_reason == "non-finite loss" and result.stopped_at == 1 and len(result.lrs) == 2
    assert np.isnan(result.losses).all() and result.suggestion is None
    assert all(r is None for r in map(result.suggest, ("steep", "minimum", "valley")))


@pytest.mark.parametrize("loss_fn", [lambda m, b: 1 / 0, lambda m, b: mse(m, b).repeat(2), lambda m, b: 1.0],
                         ids=["raises", "not a scalar", "not a tensor"])
def test_an_error_inside_the_test_restores_the_model(loss_fn):
    model = make_net()
    optimizer = lrfast.optim.SGD(model.parameters(), lr=schedules.linear(0.1, 0.0, 10), momentum=0.9)
    trained(model, optimizer, make_data(), 2)
    before = snapshot(model, optimizer)
    with pytest.raises((ZeroDivisionError, TypeError)) as info:
        lrfast.find_lr(model, optimizer, make_data(), loss_fn)
    if info.type is TypeError:
        assert "find_lr: loss_fn must return a one-element floating-point tensor" in str(info.value)
    assert_unchanged(model, optimizer, before)
    trained(model, optimizer, make_data(), 1)  # and the optimizer still steps its own Schedule
    assert optimizer.param_groups[0]["lr_step"] == 3


# -- suggestions and the plot ------------------------------------------------------------------

def result_of(lrs, smoothed, num_steps=None) -> LRFinderResult:
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    from lrfast.lr_finder import _lightning_index

    index = _lightning_index(lrs, smoothed)
    return LRFinderResult(lrs=lrs, losses=smoothed, smoothed=smoothed, suggestion=None if index is None else
                          float(lrs[index]), suggestion_index=index, stop_reason="completed", stopped_at=None,
                          steps_run=len(lrs), num_steps=num_steps or len(lrs), mode="exponential")


@pytest.mark.slow  # Lightning's import: about 5 s the first time
def test_the_lightning_suggestion_is_lightnings_on_random_curves():
    pytest.importorskip("lightning.pytorch", reason='Lightning is not installed (pip install -e ".[test]")')
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(12, 80))
        lrs = range_test_schedule(1e-6, 1.0, n).values(n)
        smoothed = np.cumsum(rng.normal(0, 1, n)) + 50.0
        if trial % 3 == 0:
            smoothed[rng.integers(0, n, 3)] = np.nan
        finder = _LRFinder("exponential", 1e-6, 1.0, n)
        finder.results = {"lr": lrs.tolist(), "loss": smoothed.tolist()}
        expected = finder.suggestion()
        ours = result_of(lrs, smoothed)
        assert ours.suggestion_index == finder._optimal_idx, trial
        assert ours.suggestion == expected


def test_fastai_rules_by_hand():
    # 20 steps: fastai looks at steps 2 .. 14 (num_steps // 10 to 5 before the end)
    lrs = 10.0 ** np.arange(-10, 10, dtype=np.float64)  # log10(lr) = step - 10
    losses = np.array([9, 9, 8, 7.5, 7, 6, 4, 3.5, 3.2, 3.1, 3.0, 3.3, 4, 6, 5.5, 1, 1, 1, 1, 1], dtype=np.float64)
    result = result_of(lrs, losses)  # the 1s past the window are left out by every fastai rule
    # steep: the largest drop per decade of LR in steps 2..14 is 6 -> 4 (steps 5 -> 6); fastai names the left point
    assert result.suggest("steep") == lrs[5]
    # minimum: the lowest loss in the window is 3.0 at step 10: a tenth of its LR
    assert result.suggest("minimum") == pytest.approx(lrs[10] / 10)
    # valley: the longest decreasing pick, 8 7.5 7 6 4 3.5 3.2 3.1 3.0 (length 9), ends at window index 8; fastai's
    # start is end - length = -1, and the point -1 + int(9/3) + int(9/6) = 3 of the window, step 5
    assert result.suggest("valley") == lrs[5]
    for method in (result.suggest, result.suggestion_step):
        with pytest.raises(ValueError, match="LRFinderResult: rule must be one of .*, got 'median'"):
            method("median")


def test_plot_marks_the_suggestion(tmp_path):
    pytest.importorskip("matplotlib", reason='plotting needs matplotlib (pip install -e ".[plot]")')
    model = make_net()
    result = lrfast.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), make_data(), mse,
                            min_lr=1e-4, max_lr=20.0, num_steps=60)
    fig = result.plot(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0
    smoothed, raw, marker = fig.axes[0].lines
    np.testing.assert_array_equal(smoothed.get_xdata(), result.lrs)
    np.testing.assert_array_equal(smoothed.get_ydata(), result.smoothed)
    np.testing.assert_array_equal(raw.get_ydata(), result.losses)
    assert marker.get_xdata()[0] == result.suggestion and marker.get_color() == "red"
    assert fig.axes[0].get_xscale() == "log"
    fig = result.plot(rules=lrfast.lr_finder.SUGGESTION_RULES, raw=False)
    marks = fig.axes[0].lines[1:]
    assert [m.get_label().split(":")[0] for m in marks] == list(lrfast.lr_finder.SUGGESTION_RULES)
    for mark, rule in zip(marks, lrfast.lr_finder.SUGGESTION_RULES):
        step = result.suggestion_step(rule)
        assert mark.get_xdata()[0] == result.lrs[step] and mark.get_ydata()[0] == result.smoothed[step]
        assert mark.get_label() == f"{rule}: {result.suggest(rule):.3g}"


# -- bias correction ---------------------------------------------------------------------------

def test_bias_correction_lightning_or_exact():
    runs = {}
    for correction in ("lightning", "exact"):
        model = make_net()
        runs[correction] = find_lr_checked(model, torch.optim.SGD(model.parameters(), lr=0.1), make_data(),
                                           num_steps=12, max_lr=1e-3, smoothing=0.9, bias_correction=correction)
    lightning, exact = runs["lightning"], runs["exact"]
    np.testing.assert_array_equal(lightning.losses, exact.losses)
    assert exact.smoothed[0] == exact.losses[0]  # the weights sum to one
    assert lightning.smoothed[0] == pytest.approx(lightning.losses[0] / 1.9, rel=1e-15)  # Lightning's low start
    k = np.arange(12)
    np.testing.assert_allclose(lightning.smoothed * (1 - 0.9 ** (k + 2)), exact.smoothed * (1 - 0.9 ** (k + 1)),
                               rtol=1e-14)
    with pytest.raises(ValueError, match="find_lr: bias_correction must be one of .'lightning', 'exact'., got 'adam'"):
        lrfast.find_lr(make_net(), torch.optim.SGD(make_net().parameters(), lr=0.1), make_data(), mse,
                       bias_correction="adam")
