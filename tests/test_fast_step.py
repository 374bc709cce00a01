"""The compiled scheduler step (NOTE [fast step] in lrfast/lr_scheduler/_base.py): taken in
the common step of every class it serves, declined with nothing changed where the Python
step must run, and equal to torch either way -- including a LambdaLR whose lambda raises,
returns a tensor or a non-finite value on the compiled path."""

from __future__ import annotations

import math

import pytest
import torch
from lr_scheduler_harness import TORCH, as_float

from lrfast import _C
from lrfast import lr_scheduler as L
from lrfast.lr_scheduler import _base

SERVED = {
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "StepLR": lambda M, o: M.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, milestones=[2, 5], gamma=0.5),
    "ConstantLR": lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=3),
    "LinearLR": lambda M, o: M.LinearLR(o, start_factor=0.2, total_iters=4),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, gamma=0.9),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, total_iters=6, power=2.0),
    "CyclicLR": lambda M, o: M.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=40),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
    "SWALR": lambda M, o: M.SWALR(o, swa_lr=0.05, anneal_epochs=4),
    "LambdaLR": lambda M, o: M.LambdaLR(o, lambda t: 1.0 / (1 + t)),
    "MultiplicativeLR": lambda M, o: M.MultiplicativeLR(o, lambda t: 0.95),
}


def _module(impl: str):
    if impl == "torch":
        return TORCH
    return L


def _optimizer(groups: int = 3) -> torch.optim.SGD:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": 0.01 * (1 + g)} for g, p in enumerate(params)], lr=0.01,
                           momentum=0.9)


def _no_python_step(monkeypatch) -> None:
    """Make the Python step fail: only the compiled one may run."""
    def refuse(*args, **kwargs):
        raise AssertionError("the Python step ran")
    monkeypatch.setattr(_base.LRScheduler, "_lrfast_write", refuse)
    monkeypatch.setattr(_base.LRScheduler, "_lrfast_step_warning", refuse)


def _first_stepped(name: str, opt_t: torch.optim.Optimizer, opt_f: torch.optim.Optimizer):
    """torch's and lrfast's ``name`` on twin optimizers, past the first step (torch's order
    check: the Python step's), lrfast's with its compiled step made."""
    s_t, s_f = SERVED[name](TORCH, opt_t), SERVED[name](L, opt_f)
    for s in (s_t, s_f):
        s.optimizer.step()
        s.step()
    assert s_f._lrfast_rt.fast is not None
    return s_t, s_f


@pytest.mark.parametrize("name", list(SERVED))
def test_the_common_step_is_the_compiled_one_and_equals_torch(name, monkeypatch):
    opt_t, opt_f = _optimizer(), _optimizer()
    s_t, s_f = _first_stepped(name, opt_t, opt_f)
    with monkeypatch.context() as patched:
        _no_python_step(patched)
        for k in range(30):
            s_t.step()
            s_f.step()
            assert s_f.get_last_lr() == pytest.approx(s_t.get_last_lr(), rel=1e-12, abs=1e-15), k
            assert [g["lr"] for g in opt_f.param_groups] == s_f.get_last_lr()
            for key in ("momentum", "T_cur", "T_i"):
                if key == "momentum":
                    assert [g[key] for g in opt_f.param_groups] == pytest.approx([g[key] for g in opt_t.param_groups])
                elif hasattr(s_t, key):
                    assert getattr(s_f, key) == getattr(s_t, key), (key, k)
            assert s_f.last_epoch == s_t.last_epoch and s_f._step_count == s_t._step_count
    assert s_f.state_dict().keys() == {k for k in s_t.state_dict() if not k.startswith("_lrfast_")} | (
        s_f.state_dict().keys() - s_t.state_dict().keys())


@pytest.mark.parametrize("edit", ["hand edit", "gamma", "base_lrs in place", "last_epoch float", "lr tensor"])
def test_a_declined_step_changes_nothing_and_the_python_step_runs(edit):
    opt_t, opt_f = _optimizer(), _optimizer()
    s_t, s_f = TORCH.ExponentialLR(opt_t, 0.9), L.ExponentialLR(opt_f, 0.9)
    for _ in range(3):
        s_t.step()
        s_f.step()
    for opt, s in ((opt_t, s_t), (opt_f, s_f)):
        if edit == "hand edit":
            opt.param_groups[1]["lr"] = 0.5
        elif edit == "gamma":
            s.gamma = 0.5
        elif edit == "base_lrs in place":
            s.base_lrs[0] = 1.0
        elif edit == "last_epoch float":
            s.last_epoch = 3.0
        else:
            opt.param_groups[2]["lr"] = torch.tensor(0.02, dtype=torch.float64)
    rt = s_f._lrfast_rt
    fast = rt.fast
    state = dict(s_f.__dict__)
    groups = [dict(g) for g in opt_f.param_groups]
    if edit in ("hand edit", "base_lrs in place", "last_epoch float", "lr tensor"):
        assert fast.step(s_f, rt) is False  # declined: nothing changed
        assert s_f.__dict__ == state and [dict(g) for g in opt_f.param_groups] == groups
    for k in range(6):
        s_t.step()
        s_f.step()
        assert [as_float(v) for v in s_f.get_last_lr()] == pytest.approx([as_float(v) for v in s_t.get_last_lr()],
                                                                         rel=1e-12), (edit, k)


def test_a_step_with_another_runtime_or_program_is_declined():
    opt = _optimizer()
    a, b = L.ExponentialLR(opt, 0.9), L.StepLR(_optimizer(), 2)
    a.step()
    a.step()
    fast = a._lrfast_rt.fast
    assert fast.step(a, b._lrfast_rt) is False  # b's program is not the one fast was made for
    assert fast.step(a, object()) is False  # not a runtime at all
    a.refresh()  # the program is dropped: the compiled step of the old one declines
    assert fast.step(a, a._lrfast_rt) is False


def test_a_lambda_that_raises_leaves_the_scheduler_and_groups_as_they_were():
    opt_t, opt_f = _optimizer(), _optimizer()
    calls = {"torch": [], "lrfast": []}

    def lam(impl):
        def f(t):
            calls[impl].append(t)
            if t == 4:
                raise KeyError(t)
            return 0.5**t
        return f

    s_t, s_f = TORCH.LambdaLR(opt_t, lam("torch")), L.LambdaLR(opt_f, lam("lrfast"))
    for _ in range(3):
        s_t.step()
        s_f.step()
    assert s_f._lrfast_rt.fast is not None
    before = ([g["lr"] for g in opt_f.param_groups], s_f.last_epoch, s_f._step_count, s_f.get_last_lr())
    for s in (s_t, s_f):
        with pytest.raises(KeyError):
            s.step()
    assert ([g["lr"] for g in opt_f.param_groups], s_f.last_epoch, s_f._step_count, s_f.get_last_lr()) == before
    assert calls["lrfast"] == calls["torch"]  # each lambda once per step, at that step, as torch


@pytest.mark.parametrize("value", [torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float64), 2, math.inf])
@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_what_a_lambda_returns_on_the_compiled_path_is_written_as_torch_writes_it(name, value):
    fire = [False]

    def lam(t):
        return value if fire[0] else 0.5

    opt_t, opt_f = _optimizer(), _optimizer()
    s_t, s_f = getattr(TORCH, name)(opt_t, lam), getattr(L, name)(opt_f, lam)
    for _ in range(3):
        s_t.step()
        s_f.step()
    assert s_f._lrfast_rt.fast is not None
    fire[0] = True
    if isinstance(value, float) and not math.isfinite(value):
        before = [g["lr"] for g in opt_f.param_groups]
        with pytest.raises(ValueError, match=name):
            s_f.step()
        assert [g["lr"] for g in opt_f.param_groups] == before and s_f.last_epoch == 3
        return
    for _ in range(2):
        s_t.step()
        s_f.step()
        for gt, gf in zip(opt_t.param_groups, opt_f.param_groups, strict=True):
            assert type(gf["lr"]) is type(gt["lr"])
            assert as_float(gf["lr"]) == pytest.approx(as_float(gt["lr"]), rel=1e-6)


@pytest.mark.parametrize("groups", [1, 10, 100])
def test_groups_of_one_row_share_float_objects_and_equal_torch(groups):
    opt_t, opt_f = _optimizer(groups), _optimizer(groups)
    for opt in (opt_t, opt_f):
        for g, group in enumerate(opt.param_groups):
            group["lr"] = 0.01 * (1 + g % 3)
    s_t, s_f = TORCH.CosineAnnealingLR(opt_t, T_max=20), L.CosineAnnealingLR(opt_f, T_max=20)
    for k in range(25):
        s_t.step()
        s_f.step()
        if k == 5:  # a hand edit of one group of a row: the others of its row keep the closed form
            opt_t.param_groups[0]["lr"] = opt_f.param_groups[0]["lr"] = 0.3
        assert s_f.get_last_lr() == pytest.approx(s_t.get_last_lr(), rel=1e-12, abs=1e-15), k
        lrs = [g["lr"] for g in opt_f.param_groups]
        if groups > 3 and k != 5:  # on the program, each row written as one float object
            assert all(lrs[g] is lrs[g + 3] for g in range(1, groups - 3))


def test_groups_off_the_program_are_not_proven_after_a_compiled_step():
    """NOTE [proof of the program]: a group that took torch's recursion holds the float the step
    wrote, but not the program's value: a bound optimizer must read it."""
    opt = _optimizer()
    s = L.ExponentialLR(opt, 0.9)
    for _ in range(3):
        s.step()
    opt.param_groups[1]["lr"] = 0.5
    s.step()  # the first step off the program: the Python step's
    assert s.proven_groups()[0] == [True, False, True]
    fast = s._lrfast_rt.fast
    assert fast is not None and fast.step(s, s._lrfast_rt) is True  # the compiled step, with the recursion
    assert s.proven_groups()[0] == [True, False, True]
    assert opt.param_groups[1]["lr"] == pytest.approx(0.5 * 0.9 * 0.9, rel=1e-15)


@pytest.mark.parametrize("steps_before", [1, 4], ids=["after the Python step", "after a compiled step"])
def test_a_group_lr_logged_into_get_last_lr_proves_nothing(steps_before):
    """NOTE [proof of the program]: the proof is the runtime's own list; a loop that sets each
    group's LR and writes the same object into the list get_last_lr() returned (its own log)
    does not make those groups look like the program's."""
    opt = _optimizer()
    s = L.ExponentialLR(opt, 0.9)
    for _ in range(steps_before):
        opt.step()
        s.step()  # the first: torch's first-step check, the Python step; then compiled ones
    assert s.proven_groups()[0] == [True, True, True]
    shown = s.get_last_lr()
    for i in (0, 2):
        opt.param_groups[i]["lr"] = 0.03 * (i + 1)
        shown[i] = opt.param_groups[i]["lr"]
    assert s.proven_groups()[0] == [False, True, False]
    assert s.get_last_lr() == shown  # the user's list, as torch keeps it


PLATEAU_CASES = [
    dict(mode="min", threshold_mode="rel", patience=2, cooldown=0, min_lr=0),
    dict(mode="min", threshold_mode="abs", patience=0, cooldown=2, min_lr=0.0005, threshold=0.05),
    dict(mode="max", threshold_mode="rel", patience=1, cooldown=1, min_lr=[0.001, 0, 0.002]),
    dict(mode="max", threshold_mode="abs", patience=3, cooldown=0, min_lr=0, factor=0.5, eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES, ids=lambda k: f"{k['mode']}-{k['threshold_mode']}")
def test_the_compiled_plateau_step_equals_torch_with_reductions_and_cooldowns(kwargs):
    import random

    rng = random.Random(5)
    opt_t, opt_f = _optimizer(), _optimizer()
    s_t, s_f = TORCH.ReduceLROnPlateau(opt_t, **kwargs), L.ReduceLROnPlateau(opt_f, **kwargs)
    metrics = [rng.choice([1.0, 0.9, 1.1, 0.5, 2.0, 1.0, 1.0]) for _ in range(80)]
    for k, m in enumerate(metrics):
        s_t.step(m)
        s_f.step(m)
        assert [g["lr"] for g in opt_f.param_groups] == [g["lr"] for g in opt_t.param_groups], k
        assert [type(g["lr"]) for g in opt_f.param_groups] == [type(g["lr"]) for g in opt_t.param_groups], k
        assert (s_f.best, s_f.num_bad_epochs, s_f.cooldown_counter, s_f.last_epoch) == \
            (s_t.best, s_t.num_bad_epochs, s_t.cooldown_counter, s_t.last_epoch), k
        assert s_f.get_last_lr() == s_t.get_last_lr()


def test_the_compiled_plateau_step_is_taken_and_declines_with_nothing_changed():
    from lrfast import _C

    opt = _optimizer()
    s = L.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    assert _C.plateau_host_step(s, 1.0, True, None) is True  # better than inf
    assert _C.plateau_host_step(s, 1.0, True, None) is True  # a reduction
    assert [g["lr"] for g in opt.param_groups] == [0.005, 0.01, 0.015]
    s.min_lrs = [0.0]  # another length than the groups: torch's rule, in the Python step
    state = dict(s.__dict__)
    assert _C.plateau_host_step(s, 1.0, True, None) is False
    assert s.__dict__ == state and [g["lr"] for g in opt.param_groups] == [0.005, 0.01, 0.015]
    s.min_lrs = [0.0] * 3
    opt.param_groups[1]["lr"] = 2  # an int LR: torch's float(), in the Python step
    state = dict(s.__dict__)
    assert _C.plateau_host_step(s, 1.0, True, None) is False
    assert s.__dict__ == state and [g["lr"] for g in opt.param_groups] == [0.005, 2, 0.015]
    opt.param_groups[1]["lr"] = torch.tensor(0.01)
    assert _C.plateau_host_step(s, 1.0, False, None) is False  # a reduction the class's own _reduce_lr must make
    assert _C.plateau_host_step(s, 1.0, True, None) is True  # a tensor LR: filled in place, as torch's _reduce_lr does
    assert opt.param_groups[1]["lr"].item() == pytest.approx(0.005, rel=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_plateau_step_reduces_tensor_lrs_as_torch(dtype, monkeypatch):
    # float and tensor groups mixed, floors reached; the Python step must not run
    def build(M):
        opt = _optimizer()
        for g in (0, 2):
            opt.param_groups[g]["lr"] = torch.tensor(0.01 * (1 + g), dtype=dtype)
        return opt, M.ReduceLROnPlateau(opt, patience=1, factor=0.3, min_lr=[0, 0.001, 0.0005], eps=1e-6)
    (opt_t, s_t), (opt_f, s_f) = build(TORCH), build(L)
    tensors = [opt_f.param_groups[g]["lr"] for g in (0, 2)]
    versions = [t._version for t in tensors]
    monkeypatch.setattr(L.ReduceLROnPlateau, "_reduce_lr", lambda *a: pytest.fail("the Python reduction ran"))
    monkeypatch.setattr(L.ReduceLROnPlateau, "_lrfast_compiled_reduction", True)
    for k, m in enumerate([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]):
        s_t.step(m)
        s_f.step(m)
        for g_f, g_t in zip(opt_f.param_groups, opt_t.param_groups):
            assert type(g_f["lr"]) is type(g_t["lr"]), k
            assert float(g_f["lr"]) == float(g_t["lr"]), k  # bit for bit, in the tensor's dtype
        last_f, last_t = s_f.get_last_lr(), s_t.get_last_lr()
        assert [float(v) for v in last_f] == [float(v) for v in last_t], k
        assert [type(v) for v in last_f] == [type(v) for v in last_t], k
        assert last_f[0] is not tensors[0] and last_f[2] is not tensors[1], k  # clones, as torch's
    assert [opt_f.param_groups[g]["lr"] for g in (0, 2)] == tensors  # the same tensors, filled in place
    assert all(t._version > v for t, v in zip(tensors, versions))


@pytest.mark.parametrize("shared", ["one tensor", "views of one element", "distinct elements of one tensor"])
def test_a_tensor_lr_shared_by_groups_is_reduced_once_per_group_as_torch(shared):
    # torch's _reduce_lr reads and fills group by group: memory two groups share is reduced twice
    def build(M):
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
        if shared == "one tensor":  # the optimizer's default, set into each group as the same object
            opt = torch.optim.SGD([{"params": [p]} for p in params], lr=torch.tensor(0.5), momentum=0.9)
        else:
            base = torch.tensor([0.5, 0.25])
            lrs = [base[0], base[0], base[1]] if shared == "views of one element" else [base[0], base[1], 0.125]
            opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=0.1, momentum=0.9)
        return opt, M.ReduceLROnPlateau(opt, patience=0, factor=0.5)

    (opt_t, s_t), (opt_f, s_f) = build(TORCH), build(L)
    for k in range(5):
        for s in (s_t, s_f):
            s.step(1.0)
        assert [float(g["lr"]) for g in opt_f.param_groups] == [float(g["lr"]) for g in opt_t.param_groups], k
        assert [float(v) for v in s_f.get_last_lr()] == [float(v) for v in s_t.get_last_lr()], k


def test_a_plateau_subclass_with_its_own_reduce_lr_has_it_called():
    calls = []

    class Mine(L.ReduceLROnPlateau):
        def _reduce_lr(self, epoch):
            calls.append(epoch)
            super()._reduce_lr(epoch)

    opt = _optimizer()
    s = Mine(opt, patience=0)
    for m in (1.0, 1.0, 1.0):
        s.step(m)
    assert calls == [2, 3] and not Mine._lrfast_compiled_reduction and Mine._lrfast_compiled_step


def test_an_int_min_lr_is_written_as_torch_writes_it():
    opt_t, opt_f = _optimizer(1), _optimizer(1)
    for opt in (opt_t, opt_f):
        opt.param_groups[0]["lr"] = 10.0
    s_t = TORCH.ReduceLROnPlateau(opt_t, patience=0, factor=0.01, min_lr=1)
    s_f = L.ReduceLROnPlateau(opt_f, patience=0, factor=0.01, min_lr=1)
    for m in (1.0, 1.0, 1.0):
        s_t.step(m)
        s_f.step(m)
    assert opt_f.param_groups[0]["lr"] == opt_t.param_groups[0]["lr"] == 1
    assert type(opt_f.param_groups[0]["lr"]) is type(opt_t.param_groups[0]["lr"]) is int


def _tensor_optimizer(dtypes) -> torch.optim.SGD:
    """One group per entry: a float LR (None) or a CPU tensor LR of that dtype."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in dtypes]
    groups = [{"params": [p], "lr": 0.01 * (1 + g) if dtype is None else torch.tensor(0.01 * (1 + g), dtype=dtype)}
              for g, (p, dtype) in enumerate(zip(params, dtypes))]
    return torch.optim.SGD(groups, lr=0.01, momentum=0.9)


@pytest.mark.parametrize("dtypes", [(torch.float64,), (torch.float32,), (None, torch.float32, torch.float64)],
                         ids=["f64", "f32", "mixed"])
@pytest.mark.parametrize("name", ["CosineAnnealingLR", "ExponentialLR", "StepLR", "CosineAnnealingWarmRestarts",
                                  "SWALR", "CyclicLR", "OneCycleLR"])
def test_cpu_tensor_lrs_take_the_compiled_step_in_place(name, dtypes, monkeypatch):
    opt_t, opt_f = _tensor_optimizer(dtypes), _tensor_optimizer(dtypes)
    held = [g["lr"] for g in opt_f.param_groups]
    s_t, s_f = _first_stepped(name, opt_t, opt_f)
    with monkeypatch.context() as patched:
        _no_python_step(patched)
        for k in range(20):
            s_t.step()
            s_f.step()
            for g, (gt, gf) in enumerate(zip(opt_t.param_groups, opt_f.param_groups, strict=True)):
                assert type(gf["lr"]) is type(gt["lr"])
                if isinstance(gf["lr"], torch.Tensor):
                    assert gf["lr"] is held[g] and gf["lr"].dtype == gt["lr"].dtype  # filled in place
                tol = 1e-6 if isinstance(gf["lr"], torch.Tensor) and gf["lr"].dtype == torch.float32 else 1e-12
                assert as_float(gf["lr"]) == pytest.approx(as_float(gt["lr"]), rel=tol), (k, g)
            last = s_f.get_last_lr()
            assert [type(v) for v in last] == [type(v) for v in s_t.get_last_lr()]
            assert s_f.proven_groups()[0] == [True] * len(dtypes)
            # a cycled momentum (CyclicLR, OneCycleLR) is written beside the tensor LRs
            assert [g["momentum"] for g in opt_f.param_groups] == pytest.approx(
                [g["momentum"] for g in opt_t.param_groups], rel=1e-12)


def test_a_tensor_lr_filled_or_replaced_by_the_user_is_seen():
    opt_t, opt_f = _tensor_optimizer((torch.float64, None)), _tensor_optimizer((torch.float64, None))
    s_t, s_f = TORCH.ExponentialLR(opt_t, 0.9), L.ExponentialLR(opt_f, 0.9)
    for k in range(12):
        if k == 3:
            opt_t.param_groups[0]["lr"].fill_(0.5)
            opt_f.param_groups[0]["lr"].fill_(0.5)
        if k == 7:
            opt_t.param_groups[0]["lr"] = torch.tensor(0.25, dtype=torch.float64)
            opt_f.param_groups[0]["lr"] = torch.tensor(0.25, dtype=torch.float64)
        s_t.step()
        s_f.step()
        assert [as_float(g["lr"]) for g in opt_f.param_groups] == pytest.approx(
            [as_float(g["lr"]) for g in opt_t.param_groups], rel=1e-12), k
        if k in (3, 7):
            assert s_f.proven_groups()[0] == [False, True], k  # torch's recursion from the user's value


def test_a_compiled_step_moves_the_tensors_version_as_torchs_in_place_ops_do():
    """NOTE [proof of the program]: another scheduler's or optimizer's proof of a tensor LR is
    (tensor, version): a write that did not move the version would leave it standing."""
    opt = _tensor_optimizer((torch.float64,))
    s = L.ExponentialLR(opt, 0.9)
    s.step()
    s.step()
    lr = opt.param_groups[0]["lr"]
    fast, rt = s._lrfast_rt.fast, s._lrfast_rt
    for _ in range(3):
        before = lr._version
        assert fast.step(s, rt) is True
        assert lr._version > before
        assert s.proven_groups()[0] == [True]
    lr.fill_(0.5)  # a user's in-place edit: the proof no longer holds
    assert s.proven_groups()[0] == [False]


def test_a_lambda_that_shortens_the_lambdas_list_cannot_make_the_step_read_past_it():
    opt = _optimizer(3)
    box = {}

    def shrinking(t):
        if t == 4:
            box["s"].lr_lambdas.pop()
        return 0.5

    s = box["s"] = L.LambdaLR(opt, [shrinking, lambda t: 0.5, lambda t: 0.5])
    for _ in range(3):
        s.step()
    assert s._lrfast_rt.fast is not None
    with pytest.raises(ValueError, match="LambdaLR: lr_lambdas or base_lrs changed length"):
        s.step()
    assert s.last_epoch == 3 and s._step_count == 4


@pytest.mark.parametrize("name", sorted(set(SERVED) - {"LambdaLR", "MultiplicativeLR"}))
def test_groups_of_one_lr_share_a_row(name):
    # six groups, two LRs: each distinct schedule (MultiStepLR's milestones included) is one
    # row, evaluated once per step, and the values stay torch's
    def opt() -> torch.optim.SGD:
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(6)]
        return torch.optim.SGD([{"params": [p], "lr": 0.01 * (1 + g % 2)} for g, p in enumerate(params)],
                               lr=0.01, momentum=0.9)
    opt_t, opt_f = opt(), opt()
    s_t, s_f = SERVED[name](TORCH, opt_t), SERVED[name](L, opt_f)
    for _ in range(12):
        for s in (s_t, s_f):
            s.optimizer.step()
            s.step()
        assert [g["lr"] for g in opt_f.param_groups] == pytest.approx([g["lr"] for g in opt_t.param_groups],
                                                                       rel=1e-12, abs=1e-15)
    program = s_f._lrfast_rt.program
    if name in ("CyclicLR", "OneCycleLR"):  # their base_lr / max_lr set every group's schedule alike
        assert program.lr_rows.shape[0] == 1 and program.lr_row_of.tolist() == [0.0] * 6
    else:
        assert program.lr_rows.shape[0] == 2
        assert program.lr_row_of.tolist() in ([0.0, 1.0] * 3, [1.0, 0.0] * 3)


# NOTE [dict versions]: the compiled step knows what a group holds, without a lookup, only while
# the dict is untouched since its last write; every way of changing a dict is seen
_DICT_EDITS = {
    "setitem": lambda g, k, v: g.__setitem__(k, v),
    "dict.__setitem__": lambda g, k, v: dict.__setitem__(g, k, v),
    "update": lambda g, k, v: g.update({k: v}),
    "|=": lambda g, k, v: g.__ior__({k: v}),
    "pop, then set": lambda g, k, v: (g.pop(k), g.__setitem__(k, v)),
    "clear, then refill": lambda g, k, v: (lambda saved: (g.clear(), g.update(saved), g.__setitem__(k, v)))(dict(g)),
    "setdefault after del": lambda g, k, v: (g.__delitem__(k), g.setdefault(k, v)),
}
_EDITED = {
    "ExponentialLR": ("lr", lambda M, o: M.ExponentialLR(o, gamma=0.9)),
    "StepLR": ("lr", lambda M, o: M.StepLR(o, step_size=100)),  # no write in the steps after the edit
    "CosineAnnealingLR": ("lr", lambda M, o: M.CosineAnnealingLR(o, T_max=7, eta_min=0.001)),
    "OneCycleLR momentum": ("momentum", lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=40)),
    # momentum the same at every step: a group holding it is not written, so what it holds must be known
    "CyclicLR constant momentum": ("momentum", lambda M, o: M.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3,
                                                                     base_momentum=0.9, max_momentum=0.9)),
}


@pytest.mark.parametrize("how", sorted(_DICT_EDITS))
@pytest.mark.parametrize("case", sorted(_EDITED))
@pytest.mark.parametrize("value", ["new", "equal, another object", "the same object"])
def test_every_dict_edit_between_compiled_steps_is_seen(case, how, value):
    key, build = _EDITED[case]
    opt_t, opt_f = _optimizer(), _optimizer()
    s_t, s_f = build(TORCH, opt_t), build(L, opt_f)
    for _ in range(3):
        for s in (s_t, s_f):
            s.optimizer.step()
            s.step()
    for opt in (opt_t, opt_f):
        group = opt.param_groups[1]
        held = group[key]
        new = {"new": 0.5, "equal, another object": float(repr(held)), "the same object": held}[value]
        _DICT_EDITS[how](group, key, new)
    for k in range(5):
        for s in (s_t, s_f):
            s.optimizer.step()
            s.step()
        for g_f, g_t in zip(opt_f.param_groups, opt_t.param_groups):
            for name in ("lr", "momentum"):
                assert g_f[name] == pytest.approx(g_t[name], rel=1e-12, abs=1e-15), (case, how, value, k, name)
        assert s_f.get_last_lr() == pytest.approx(s_t.get_last_lr(), rel=1e-12), (case, how, value, k)


def test_momentum_equal_to_the_last_lr_is_still_written():
    # NOTE [dict versions]: LR and momentum take the same two values in opposite phase, so each
    # step's momentum equals the LR the step before wrote; what a group holds under "momentum"
    # is its own record's, never the LR's (a float of equal bits is kept, not stored)
    def build(M):
        opt = _optimizer()
        return opt, M.CyclicLR(opt, base_lr=0.8, max_lr=0.9, step_size_up=1, base_momentum=0.8, max_momentum=0.9)
    (opt_t, s_t), (opt_f, s_f) = build(TORCH), build(L)
    for k in range(6):
        for s in (s_t, s_f):
            s.optimizer.step()
            s.step()
        for name in ("lr", "momentum"):
            assert [g[name] for g in opt_f.param_groups] == [g[name] for g in opt_t.param_groups], (k, name)
    assert [g["momentum"] for g in opt_f.param_groups] != [g["lr"] for g in opt_f.param_groups]


def test_a_replaced_group_dict_and_dict_subclass_groups_are_read():
    class Group(dict):
        pass

    def opt(kind):
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
        return torch.optim.SGD([kind(params=[p], lr=0.01 * (1 + g)) for g, p in enumerate(params)], lr=0.01)

    for kind in (dict, Group):
        opt_t, opt_f = opt(kind), opt(kind)
        s_t, s_f = TORCH.ExponentialLR(opt_t, 0.9), L.ExponentialLR(opt_f, 0.9)
        for k in range(8):
            if k == 4:  # the group dict itself replaced by an equal one with another LR
                for o in (opt_t, opt_f):
                    o.param_groups[2] = kind(o.param_groups[2], lr=0.3)
            for s in (s_t, s_f):
                s.optimizer.step()
                s.step()
            assert [g["lr"] for g in opt_f.param_groups] == pytest.approx([g["lr"] for g in opt_t.param_groups],
                                                                           rel=1e-12), (kind, k)


@pytest.mark.parametrize("how", sorted(_DICT_EDITS))
def test_a_scheduler_stepped_after_another_sees_edits_made_between_them(how):
    # NOTE [dict versions]: the second reads the groups as the first left them, unless touched since;
    # a second optimizer stepped in between (a GAN's two) keeps its own groups apart
    def build(M):
        opt, other = _optimizer(), _optimizer()
        return opt, other, [M.ExponentialLR(opt, 0.9), M.StepLR(opt, step_size=2, gamma=0.5),
                            M.CosineAnnealingLR(other, T_max=5)]
    opt_t, other_t, s_t = build(TORCH)
    opt_f, other_f, s_f = build(L)
    for k in range(8):
        for opt, other, (first, second, third) in ((opt_t, other_t, s_t), (opt_f, other_f, s_f)):
            opt.step()
            other.step()
            first.step()
            if k in (3, 6):
                _DICT_EDITS[how](opt.param_groups[k % 3], "lr", 0.25 * k)
            third.step()
            second.step()
        for a, b in ((opt_f, opt_t), (other_f, other_t)):
            assert [g["lr"] for g in a.param_groups] == pytest.approx([g["lr"] for g in b.param_groups], rel=1e-12), k
        for a, b in zip(s_f, s_t):
            assert a.get_last_lr() == pytest.approx(b.get_last_lr(), rel=1e-12), k


def test_a_scheduler_gone_leaves_nothing_the_next_one_reads():
    # the record of the last compiled step goes with its scheduler (and with a dropped program)
    import gc

    def run(M, opt):
        first = M.ExponentialLR(opt, 0.9)
        for _ in range(3):
            first.step()
        first.gamma = 0.8  # lrfast: the program is dropped, its FastStep goes at the next step
        first.step()
        del first
        gc.collect()
        second = M.StepLR(opt, step_size=2, gamma=0.5)
        for _ in range(5):
            second.step()
        return second

    opt_t, opt_f = _optimizer(), _optimizer()
    s_t, s_f = run(TORCH, opt_t), run(L, opt_f)
    assert [g["lr"] for g in opt_f.param_groups] == pytest.approx([g["lr"] for g in opt_t.param_groups], rel=1e-12)
    assert s_f.get_last_lr() == pytest.approx(s_t.get_last_lr(), rel=1e-12)


# NOTE [plateau record] (csrc/scheduler_step.cpp): ReduceLROnPlateau's compiled step takes a group's
# LR from its record while the dict is as its last step left it; every edit is seen, before steps
# that reduce and steps that do not, in groups written and in a group at its floor (never written)
@pytest.mark.parametrize("how", sorted(_DICT_EDITS))
@pytest.mark.parametrize("value", ["new", "equal, another object", "the same object"])
def test_every_dict_edit_between_plateau_steps_is_seen(how, value):
    def build(M):
        opt = _optimizer()
        return opt, M.ReduceLROnPlateau(opt, patience=1, factor=0.5, min_lr=[0.0, 0.02, 0.0])

    (opt_t, s_t), (opt_f, s_f) = build(TORCH), build(L)
    for k in range(12):  # a flat metric: reductions at steps 2, 4, 6, ...
        if k in (3, 4, 7, 8):
            for opt in (opt_t, opt_f):
                group = opt.param_groups[k % 3]
                held = group["lr"]
                new = {"new": 0.125 * k, "equal, another object": float(repr(held)), "the same object": held}[value]
                _DICT_EDITS[how](group, "lr", new)
        for s in (s_t, s_f):
            s.step(1.0)
        assert [g["lr"] for g in opt_f.param_groups] == [g["lr"] for g in opt_t.param_groups], (how, value, k)
        assert s_f.get_last_lr() == s_t.get_last_lr(), (how, value, k)
    assert s_f._lrfast_record.recorded() == 3  # the steps above ran with the record


def test_plateau_groups_replaced_added_or_not_floats_are_read():
    def build(M):
        opt = _optimizer()
        return opt, M.ReduceLROnPlateau(opt, patience=1, factor=0.5)

    (opt_t, s_t), (opt_f, s_f) = build(TORCH), build(L)
    for k in range(10):
        for opt, s in ((opt_t, s_t), (opt_f, s_f)):
            if k == 3:  # a group dict replaced by an equal one with another LR
                opt.param_groups[2] = dict(opt.param_groups[2], lr=0.3)
            if k == 5:  # an int LR (torch keeps it until a reduction writes a float)
                opt.param_groups[0]["lr"] = 1
            if k == 7:  # a group added (with its own min_lr: torch's min_lrs grows only by hand)
                opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.07})
                s.min_lrs = [*s.min_lrs, 0.0]
            s.step(1.0)
        assert [g["lr"] for g in opt_f.param_groups] == [g["lr"] for g in opt_t.param_groups], k
        assert s_f.get_last_lr() == s_t.get_last_lr(), k
        assert [type(v) for v in s_f.get_last_lr()] == [type(v) for v in s_t.get_last_lr()], k


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_plateau_deep_copy_starts_with_an_empty_record_and_steps_as_the_original(how):
    import copy
    import pickle

    opt = _optimizer()
    s = L.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for _ in range(3):
        s.step(1.0)
    assert s._lrfast_record.recorded() == 3
    c = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda x: pickle.loads(pickle.dumps(x))}[how](s)
    assert all("record" not in key for key in s.state_dict())
    if how == "copy":  # a shallow copy shares the slots, as it shares the optimizer: the record holds for both
        assert c._lrfast_record is s._lrfast_record
        return
    assert c._lrfast_record.recorded() == 0
    for k in range(6):
        s.step(1.0)
        c.step(1.0)
        assert [g["lr"] for g in c.optimizer.param_groups] == [g["lr"] for g in opt.param_groups], k
        assert c.get_last_lr() == s.get_last_lr(), k


class _EditWhenCollected:
    """A garbage cycle whose finalizer edits a group: collected where the interpreter collects,
    which on Python 3.11 is inside the first allocation of a container after the threshold."""

    def __init__(self, group: dict, value: float) -> None:
        self.group, self.value, self.cycle = group, value, self

    def __del__(self) -> None:
        self.group["lr"] = self.value


def _collect_at_the_next_allocation(group: dict, value: float) -> tuple[int, int, int]:
    import gc

    gc.collect()
    _EditWhenCollected(group, value)  # garbage at once: a cycle only the collector frees
    thresholds = gc.get_threshold()
    gc.set_threshold(1)
    return thresholds


@pytest.mark.parametrize("case", ["ReduceLROnPlateau", "ExponentialLR"])
def test_a_finalizer_editing_a_group_inside_a_step_is_never_recorded(case):
    # NOTE [dict versions]: a record vouches for a group only if no Python ran between its read and
    # the record (the steps hold the collector off). Group 1 is never written (at its floor / a
    # gamma of 1), so a record made after the finalizer's edit would keep the old LR for it.
    import gc

    opt = _optimizer()
    if case == "ReduceLROnPlateau":
        s = L.ReduceLROnPlateau(opt, patience=0, factor=0.5, min_lr=[0.0, 0.02, 0.0])
        call = lambda: _C.plateau_host_step(s, 1.0, True, s._lrfast_record)  # noqa: E731
    else:
        s = L.ExponentialLR(opt, gamma=1.0)
        rt = s._lrfast_rt
        step = rt.fast.step  # bound here: binding allocates, and would collect before the step
        call = lambda: step(s, rt)  # noqa: E731
    for _ in range(3):
        s.step(1.0) if case == "ReduceLROnPlateau" else s.step()
    thresholds = _collect_at_the_next_allocation(opt.param_groups[1], 0.5)
    try:
        assert call() is True
    finally:
        gc.set_threshold(*thresholds)
    gc.collect()
    assert opt.param_groups[1]["lr"] == 0.5  # the finalizer ran (in the step or just after it)
    s.step(1.0) if case == "ReduceLROnPlateau" else s.step()
    expected = 0.25 if case == "ReduceLROnPlateau" else 0.5  # torch's step from what the group holds
    assert opt.param_groups[1]["lr"] == expected
    assert s.get_last_lr()[1] == expected


class _EditWhenReleased:
    """An object whose release edits a group (no cycle: freed when the last reference goes)."""

    def __init__(self, group: dict, value: float) -> None:
        self.group, self.value = group, value

    def __del__(self) -> None:
        self.group["lr"] = self.value


@pytest.mark.parametrize("case", ["ReduceLROnPlateau", "ExponentialLR"])
def test_an_edit_run_by_releasing_the_old_last_lr_is_never_recorded(case):
    # NOTE [dict versions]: the step's record is made before it replaces _last_lr, whose old items
    # the user may have set to anything; group 1 is never written (at its floor / a gamma of 1)
    opt = _optimizer()
    if case == "ReduceLROnPlateau":
        s = L.ReduceLROnPlateau(opt, patience=0, factor=0.5, min_lr=[0.0, 0.02, 0.0])
    else:
        s = L.ExponentialLR(opt, gamma=1.0)
    step = (lambda: s.step(1.0)) if case == "ReduceLROnPlateau" else s.step
    for _ in range(3):
        step()
    s._last_lr = [_EditWhenReleased(opt.param_groups[1], 0.5)]
    step()
    assert opt.param_groups[1]["lr"] == 0.5  # released by the step, after its writes
    step()
    expected = 0.25 if case == "ReduceLROnPlateau" else 0.5  # torch's step from what the group holds
    assert opt.param_groups[1]["lr"] == expected
    assert s.get_last_lr()[1] == expected
