"""CPU: lrfast.optim's API against torch's: arguments and errors, skipped parameters,
state dicts both ways, GradScaler, schedules as LRs, scheduler binding, odd layouts."""

from __future__ import annotations

import io
import sys
import warnings

import pytest
import torch

import lrfast
import lrfast.optim
from lrfast import lr_scheduler
from lrfast import schedules as S
from lrfast._backend import registry

SIZES = (1, 300, 70001, 5)


def params_of(dtype=torch.float32, sizes=SIZES, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(n, generator=g).to(dtype)) for n in sizes]


def grads_for(params, step):
    g = torch.Generator().manual_seed(500 + step)
    return [torch.randn(p.shape, generator=g).to(p.dtype) for p in params]


def set_grads(*param_lists, step):
    for grads in [grads_for(param_lists[0], step)]:
        for params in param_lists:
            for p, gr in zip(params, grads):
                p.grad = gr.clone()


def assert_params_equal(ours, theirs, exact=False, rtol=1e-6, atol=1e-7):
    """Equal to float32 rounding (torch's fused CPU kernel runs a tensor's last
    ``numel % 16`` elements through scalar code of its own, so "equal" is not bit for bit
    there); ``exact``: bit for bit."""
    for p, q in zip(ours, theirs):
        if exact:
            assert torch.equal(p, q)
        else:
            torch.testing.assert_close(p, q, rtol=rtol, atol=atol)


# -- construction -----------------------------------------------------------------------

BAD_ARGUMENTS = [
    ("SGD", dict(lr=-0.1)), ("SGD", dict(momentum=-1.0)), ("SGD", dict(weight_decay=-1.0)),
    ("SGD", dict(lr=0.1, nesterov=True)), ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    ("SGD", dict(lr=torch.tensor([0.1, 0.2]))), ("SGD", dict(fused=True, foreach=True)),
    ("Adam", dict(lr=-1.0)), ("Adam", dict(eps=-1.0)), ("Adam", dict(betas=(1.0, 0.9))),
    ("Adam", dict(betas=(0.9, -0.1))), ("Adam", dict(weight_decay=-0.5)), ("Adam", dict(lr=torch.tensor([1.0, 2.0]))),
    ("Adam", dict(betas=(0.9, torch.tensor(0.99)))), ("Adam", dict(lr=torch.tensor(0.1), foreach=True)),
    ("Adam", dict(fused=True, foreach=True)), ("Adam", dict(fused=True, differentiable=True)),
    ("AdamW", dict(lr=-1.0)), ("AdamW", dict(betas=(0.5, 1.0))), ("AdamW", dict(weight_decay=-1e-2)),
    ("AdamW", dict(betas=(torch.tensor([0.9, 0.8]), torch.tensor(0.99)))),
]


@pytest.mark.parametrize("name,kwargs", BAD_ARGUMENTS, ids=[f"{n}-{sorted(k)}" for n, k in BAD_ARGUMENTS])
def test_bad_arguments_raise_what_torch_raises(name, kwargs):
    with pytest.raises(Exception) as theirs:
        getattr(torch.optim, name)(params_of(), **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        getattr(lrfast.optim, name)(params_of(), **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_defaults_and_isinstance_match_torch():
    for name in ("SGD", "Adam", "AdamW"):
        ours = getattr(lrfast.optim, name)(params_of())
        theirs = getattr(torch.optim, name)(params_of())
        assert isinstance(ours, getattr(torch.optim, name))
        assert ours.defaults == theirs.defaults
        assert ours._step_supports_amp_scaling
    assert lrfast.optim.AdamW(params_of()).defaults["weight_decay"] == 1e-2


def test_torch_only_flags_are_accepted_and_differentiable_refused():
    lrfast.optim.AdamW(params_of(), foreach=True, capturable=True)
    lrfast.optim.Adam(params_of(), fused=True)
    lrfast.optim.SGD(params_of(), lr=0.1, foreach=False, fused=True)
    for name in ("SGD", "Adam", "AdamW"):
        with pytest.raises(RuntimeError, match="differentiable=True is not supported"):
            getattr(lrfast.optim, name)(params_of(), differentiable=True)


def test_complex_and_duplicate_parameters_are_refused():
    with pytest.raises(TypeError, match="complex parameters are not supported"):
        lrfast.optim.AdamW([torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))])
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="holds the same tensor twice"):
        lrfast.optim.SGD([p, p], lr=0.1)
    opt = lrfast.optim.SGD([p], lr=0.1)
    with pytest.raises(TypeError, match="complex"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2, dtype=torch.complex128))]})
    assert len(opt.param_groups) == 1


def test_sparse_gradients_raise_runtime_error_like_torch():
    for name in ("Adam", "AdamW"):
        p, q = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
        p.grad = torch.zeros(4).to_sparse()
        q.grad = torch.zeros(4).to_sparse()
        with pytest.raises(RuntimeError) as theirs:
            getattr(torch.optim, name)([q]).step()
        with pytest.raises(RuntimeError) as ours:
            getattr(lrfast.optim, name)([p]).step()
        assert str(ours.value) == str(theirs.value)
    p = torch.nn.Parameter(torch.zeros(4))
    opt = lrfast.optim.SGD([p], lr=0.1)
    p.grad = torch.ones(4)
    opt.step()
    p.grad = torch.zeros(4).to_sparse()  # a sparse grad after a dense one: the refresh path
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()


def test_unsupported_device_and_missing_cuda_backend(monkeypatch):
    with pytest.raises(RuntimeError, match="meta devices are not supported"):
        registry.backend_for(torch.device("meta"))
    monkeypatch.setitem(sys.modules, "lrfast._backend.cuda_optim", None)  # as if this build had none
    registry.reset_backends()
    try:
        with pytest.raises(RuntimeError, match="the CUDA fused path .* is not available in this build"):
            registry.backend_for(torch.device("cuda"))
    finally:
        registry.reset_backends()


def test_warmup_is_exported(monkeypatch):
    # every kind and dtype, its arguments as the default call passes them (the compiles
    # themselves are the same for every pair: one pair is compiled here, and
    # tests/test_cpu_compiled_variants.py checks that a step then compiles nothing)
    from lrfast._backend import cpu

    asked = []
    monkeypatch.setattr(cpu, "warmup", lambda kinds, dtypes=None: asked.append((list(kinds), dtypes)))
    assert lrfast.warmup() is True
    assert asked == [(["sgd", "adam"], None)]
    monkeypatch.undo()
    assert lrfast.warmup(optimizers=("sgd",), dtypes=(torch.float32,)) is True
    with pytest.raises(ValueError, match="optimizers must be among"):
        lrfast.warmup(optimizers=("lion",))
    with pytest.raises(ValueError, match="dtypes must be among"):
        lrfast.warmup(optimizers=("adam",), dtypes=(torch.int32,))


# -- skipped parameters, odd layouts ---------------------------------------------------

def test_params_without_grad_are_skipped_and_their_step_does_not_advance():
    ours, theirs = params_of(), params_of()
    a = lrfast.optim.AdamW(ours, lr=1e-2, amsgrad=True)
    b = torch.optim.AdamW(theirs, lr=1e-2, amsgrad=True, fused=True)
    for step in range(12):
        set_grads(ours, theirs, step=step)
        for i in range(len(ours)):
            if (step + i) % 3 == 0:
                ours[i].grad = None
                theirs[i].grad = None
        a.step()
        b.step()
        assert_params_equal(ours, theirs)
    for p, q in zip(ours, theirs):
        assert a.state[p]["step"].item() == b.state[q]["step"].item() < 12


def test_sgd_skips_params_without_grad_and_keeps_their_buffers():
    ours, theirs = params_of(), params_of()
    a = lrfast.optim.SGD(ours, lr=1e-2, momentum=0.9, dampening=0.2)
    b = torch.optim.SGD(theirs, lr=1e-2, momentum=0.9, dampening=0.2, foreach=False)
    for step in range(10):
        set_grads(ours, theirs, step=step)
        if step < 4:
            ours[2].grad = theirs[2].grad = None  # its first step (buffer = grad) comes later
        a.step()
        b.step()
        assert_params_equal(ours, theirs, exact=True)
    for p, q in zip(ours, theirs):
        assert torch.equal(a.state[p]["momentum_buffer"], b.state[q]["momentum_buffer"])


def test_grads_updated_in_place_and_reallocated_both_work():
    ours, theirs = params_of(), params_of()
    a = lrfast.optim.Adam(ours, lr=1e-2)
    b = torch.optim.Adam(theirs, lr=1e-2, fused=True)
    for p, q in zip(ours, theirs):
        p.grad, q.grad = torch.zeros_like(p), torch.zeros_like(q)
    for step in range(8):
        grads = grads_for(ours, step)
        for p, q, g in zip(ours, theirs, grads):
            if step < 4:  # zero_grad(set_to_none=False) style: same grad tensors
                p.grad.copy_(g)
                q.grad.copy_(g)
            else:  # set_to_none=True style: new tensors every step
                p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
        assert_params_equal(ours, theirs)


def test_parameter_storage_replaced_between_steps():
    ours, theirs = params_of(), params_of()
    a = lrfast.optim.AdamW(ours, lr=1e-2)
    b = torch.optim.AdamW(theirs, lr=1e-2, fused=True)
    for step in range(6):
        if step == 3:
            for p, q in zip(ours, theirs):
                p.data = p.data.clone() * 0.5  # as module.to(...) does
                q.data = q.data.clone() * 0.5
        set_grads(ours, theirs, step=step)
        a.step()
        b.step()
        assert_params_equal(ours, theirs)


def test_zero_size_and_mixed_dtype_parameters():
    ours = params_of(torch.float32, (0, 3, 1000)) + params_of(torch.bfloat16, (7, 0, 2000), seed=1)
    theirs = params_of(torch.float32, (0, 3, 1000)) + params_of(torch.bfloat16, (7, 0, 2000), seed=1)
    a = lrfast.optim.Adam(ours, lr=1e-2)
    b = torch.optim.Adam(theirs, lr=1e-2, fused=True)
    for step in range(5):
        set_grads(ours, theirs, step=step)
        a.step()
        b.step()
        assert_params_equal(ours, theirs)
    assert len(a._lrfast_planner.buckets) == 2
    assert all(a.state[p]["step"].item() == 5 for p in ours)


def test_non_contiguous_layouts():
    """A channels-last parameter (dense, not contiguous), a transposed gradient of a
    contiguous parameter (staged, and written back unscaled under a grad scale)."""
    weight = torch.randn(4, 3, 5, 5).to(memory_format=torch.channels_last)
    ours = [torch.nn.Parameter(weight.clone()), torch.nn.Parameter(torch.randn(6, 7))]
    theirs = [torch.nn.Parameter(weight.clone()), torch.nn.Parameter(ours[1].detach().clone())]
    assert not ours[0].is_contiguous()
    a = lrfast.optim.SGD(ours, lr=0.1, momentum=0.9)
    b = torch.optim.SGD(theirs, lr=0.1, momentum=0.9, foreach=False)
    for _ in range(4):
        g0 = torch.randn(4, 3, 5, 5).to(memory_format=torch.channels_last)
        g1 = torch.randn(7, 6).t()  # not contiguous
        for params in (ours, theirs):
            params[0].grad, params[1].grad = g0.clone(), g1.clone().t().contiguous().t()
        a.step()
        b.step()
        assert_params_equal(ours, theirs)
    assert a.state[ours[0]]["momentum_buffer"].stride() == ours[0].stride()
    ours[1].grad = (torch.ones(7, 6) * 4).t()
    a.step(grad_scale=torch.tensor(4.0))
    assert torch.equal(ours[1].grad, torch.ones(6, 7))  # unscaled in place, like torch's fused kernels


def test_a_staged_gradient_written_in_place_is_staged_again():
    """The same transposed gradient tensor every step (zero_grad(set_to_none=False), then
    backward writing into it): the staged copy takes each step's values."""
    ours, theirs = torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(4, 3))
    a = lrfast.optim.SGD([ours], lr=1.0, momentum=0.5)
    b = torch.optim.SGD([theirs], lr=1.0, momentum=0.5, foreach=False)
    grad = torch.empty(3, 4).t()
    ours.grad, theirs.grad = grad, grad
    for step in range(4):
        grad.copy_(torch.arange(12.0).reshape(4, 3) * (step + 1))
        a.step()
        b.step()
        assert_params_equal([ours], [theirs])
    grad.fill_(8.0)
    a.step(grad_scale=torch.tensor(4.0))
    assert torch.equal(grad, torch.full((4, 3), 2.0))  # unscaled in place


def test_non_dense_parameters_are_refused():
    p = torch.nn.Parameter(torch.randn(8)[::2])
    p.grad = torch.ones(4)
    with pytest.raises(ValueError, match="must be dense"):
        lrfast.optim.SGD([p], lr=0.1).step()


def test_closure_is_called_with_grad_enabled():
    p = torch.nn.Parameter(torch.ones(3))
    opt = lrfast.optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 3.0
    assert torch.allclose(p, torch.full((3,), 0.8))


def test_tensor_lr_is_read_every_step():
    ours, theirs = params_of(), params_of()
    lr_a, lr_b = torch.tensor(0.01), torch.tensor([0.01])
    a = lrfast.optim.SGD(ours, lr=lr_a, momentum=0.5)
    b = torch.optim.SGD(theirs, lr=lr_b, momentum=0.5, foreach=False)
    for step in range(5):
        lr_a.fill_(0.01 * (step + 1))
        lr_b.fill_(0.01 * (step + 1))
        set_grads(ours, theirs, step=step)
        a.step()
        b.step()
        assert_params_equal(ours, theirs)


def test_refresh_after_editing_state_by_hand_and_amsgrad_switched_on():
    ours = params_of()
    opt = lrfast.optim.Adam(ours, lr=1e-2)
    set_grads(ours, step=0)
    opt.step()
    opt.state[ours[1]]["exp_avg"] = torch.zeros_like(ours[1])
    opt.refresh()
    before = ours[1].detach().clone()
    ours[1].grad = torch.zeros_like(ours[1])
    opt.step()
    torch.testing.assert_close(ours[1].detach(), before)  # m = 0.9 * 0 + 0: no movement
    opt.param_groups[0]["amsgrad"] = True
    set_grads(ours, step=1)
    opt.step()
    assert all("max_exp_avg_sq" in opt.state[p] for p in ours)


# -- state dicts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,options", [("AdamW", dict(amsgrad=True, weight_decay=0.1)),
                                          ("Adam", dict(maximize=True)),
                                          ("SGD", dict(momentum=0.9, nesterov=True))])
def test_state_dict_moves_torch_to_lrfast_to_torch_mid_run(name, options):
    ref_kw = {"fused": True} if name != "SGD" else {"foreach": False}
    reference = params_of()
    ref_opt = getattr(torch.optim, name)(reference, lr=1e-2, **options, **ref_kw)
    params = params_of()
    first = getattr(torch.optim, name)(params, lr=1e-2, **options, **ref_kw)
    for step in range(30):
        set_grads(reference, params, step=step)
        ref_opt.step()
        if step < 10:
            opt = first
        elif step == 10:
            opt = getattr(lrfast.optim, name)(params, lr=1e-2, **options)
            opt.load_state_dict(first.state_dict())
        elif step == 20:
            back = getattr(torch.optim, name)(params, lr=1e-2, **options, **ref_kw)
            back.load_state_dict(opt.state_dict())
            opt = back
        opt.step()
        assert_params_equal(params, reference, exact=name == "SGD")
    state = opt.state_dict()
    ref_state = ref_opt.state_dict()
    assert state["state"].keys() == ref_state["state"].keys()
    for i in state["state"]:
        assert state["state"][i].keys() == ref_state["state"][i].keys()


def test_state_layout_is_torchs():
    p = torch.nn.Parameter(torch.randn(10))
    adam = lrfast.optim.AdamW([p], amsgrad=True)
    p.grad = torch.randn(10)
    adam.step()
    state = adam.state[p]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert state["step"].dtype == torch.float32 and state["step"].dim() == 0 and state["step"].item() == 1.0
    sgd = lrfast.optim.SGD([p], lr=0.1, momentum=0.9)
    sgd.step()
    assert set(sgd.state[p]) == {"momentum_buffer"}
    assert not lrfast.optim.SGD([p], lr=0.1).state  # no momentum: no state, as torch


# -- schedules as learning rates -----------------------------------------------------------------

def test_schedule_as_lr_counts_optimizer_steps_and_saves_plain_data():
    schedule = S.warmup_cosine_decay(0.0, 1e-2, warmup_steps=5, decay_steps=40, end_value=1e-4)
    ours, theirs = params_of(), params_of()
    a = lrfast.optim.AdamW(ours, lr=schedule)
    b = torch.optim.AdamW(theirs, lr=schedule(0), fused=True)
    assert a.param_groups[0]["lr"] == schedule(0) and a.param_groups[0]["lr_step"] == 0
    for step in range(20):
        set_grads(ours, theirs, step=step)
        b.param_groups[0]["lr"] = schedule(step)
        a.step()
        b.step()
        assert_params_equal(ours, theirs)
        assert a.param_groups[0]["lr_step"] == step + 1
        assert a.param_groups[0]["lr"] == schedule(step + 1)
    saved = a.state_dict()
    assert "lr_schedule" not in saved["param_groups"][0] and saved["param_groups"][0]["lr_step"] == 20
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    resumed = lrfast.optim.AdamW(resumed_params, lr=schedule)
    resumed.load_state_dict(loaded)
    assert resumed.param_groups[0]["lr_step"] == 20 and resumed.param_groups[0]["lr"] == schedule(20)
    as_torch = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone()) for p in ours], fused=True)
    as_torch.load_state_dict(loaded)  # torch ignores the extra group key
    for step in range(20, 25):
        set_grads(ours, resumed_params, step=step)
        a.step()
        resumed.step()
    assert_params_equal(ours, resumed_params, exact=True)


def test_schedules_per_group_and_added_groups():
    first, second = S.linear(1e-2, 0.0, 10), S.constant(1e-3)
    p, q, r = (torch.nn.Parameter(torch.ones(3)) for _ in range(3))
    opt = lrfast.optim.SGD([{"params": [p], "lr": first}, {"params": [q], "lr": 0.5}], lr=second)
    opt.add_param_group({"params": [r]})  # inherits the default: the Schedule
    assert [g.get("lr_schedule") for g in opt.param_groups] == [first, None, second]
    for t in range(3):
        for x in (p, q, r):
            x.grad = torch.ones(3)
        opt.step()
        assert opt.param_groups[0]["lr"] == first(t + 1) and opt.param_groups[1]["lr"] == 0.5
    assert torch.allclose(p, torch.full((3,), 1 - first(0) - first(1) - first(2)))
    assert torch.allclose(q, torch.full((3,), 1 - 1.5))


def test_schedule_lr_and_schedulers_do_not_mix():
    p = torch.nn.Parameter(torch.ones(3))
    opt = lrfast.optim.AdamW([p], lr=S.constant(1e-3))
    with pytest.raises(ValueError, match="has a Schedule as its lr"):
        lr_scheduler.StepLR(opt, 10)
    opt2 = lrfast.optim.AdamW([p], lr=S.constant(1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.optim.lr_scheduler.StepLR(opt2, 1, gamma=0.5).step()
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="changed from outside"):
        opt2.step()
    opt3 = lrfast.optim.SGD([p], lr=0.1)
    sched3 = lr_scheduler.StepLR(opt3, 10)  # noqa: F841 (bound while referenced)
    with pytest.raises(ValueError, match="cannot have a Schedule"):
        opt3.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": S.constant(0.1)})


def test_scheduler_binding_follows_the_latest_scheduler_and_outlives_nothing():
    p = torch.nn.Parameter(torch.ones(3))
    opt = lrfast.optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    assert opt._lrfast_bound_scheduler() is sched
    for _ in range(3):
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
    assert torch.allclose(p, torch.full((3,), 1 - 1 - 0.5 - 0.25))
    # groups added after the scheduler: it no longer describes them, the floats rule
    extra = torch.nn.Parameter(torch.ones(2))
    opt.add_param_group({"params": [extra], "lr": 0.1})
    p.grad, extra.grad = torch.ones(3), torch.ones(2)
    opt.step()
    assert torch.allclose(extra, torch.full((2,), 0.9))
    del sched
    opt.step()  # the weak binding is gone: no error


# -- GradScaler -------------------------------------------------------------------------------------

def test_found_inf_skips_everything():
    schedule = S.linear(1e-2, 1e-3, 10)
    params = params_of()
    opt = lrfast.optim.Adam(params, lr=schedule)
    set_grads(params, step=0)
    opt.step()
    before = [p.detach().clone() for p in params]
    state = {k: v.clone() for k, v in opt.state[params[2]].items()}
    set_grads(params, step=1)
    opt.step(grad_scale=torch.tensor(8.0), found_inf=torch.tensor(1.0))
    assert_params_equal(params, before)
    for k, v in opt.state[params[2]].items():
        assert torch.equal(v, state[k])
    assert opt.param_groups[0]["lr_step"] == 1
    sgd_params = params_of()
    sgd = lrfast.optim.SGD(sgd_params, lr=0.1, momentum=0.9, dampening=0.5)
    set_grads(sgd_params, step=0)
    sgd.step(found_inf=torch.tensor(1.0))  # skipped first step: the next one is still the first
    sgd.step()
    for p in sgd_params:
        torch.testing.assert_close(sgd.state[p]["momentum_buffer"], p.grad)


@pytest.mark.parametrize("name", ["AdamW", "SGD"])
def test_grad_scale_and_found_inf_match_torch_fused(name):
    options = {"momentum": 0.9} if name == "SGD" else {"weight_decay": 0.1}
    ours, theirs = params_of(), params_of()
    a = getattr(lrfast.optim, name)(ours, lr=1e-2, **options)
    b = getattr(torch.optim, name)(theirs, lr=1e-2, fused=True, **options)
    for step in range(6):
        set_grads(ours, theirs, step=step)
        scale = torch.tensor(2.0 ** (step + 1))
        found = torch.tensor(1.0 if step == 3 else 0.0)
        for opt in (a, b):
            opt.grad_scale, opt.found_inf = scale, found  # as GradScaler sets them
            opt.step()
            del opt.grad_scale, opt.found_inf
        assert_params_equal(ours, theirs)
        for p, q in zip(ours, theirs):
            torch.testing.assert_close(p.grad, q.grad)  # unscaled in place by both


def test_with_torch_grad_scaler_on_cpu():
    def train(opt_cls, **kw):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        opt = opt_cls(model.parameters(), lr=1e-2, **kw)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=2)
        x, y = torch.randn(32, 8), torch.randn(32, 1)
        for step in range(12):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            if step in (3, 7):
                loss = loss * float("inf")
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        return list(model.parameters()), opt

    ours, our_opt = train(lrfast.optim.AdamW)
    theirs, their_opt = train(torch.optim.AdamW, fused=True)
    assert_params_equal(ours, theirs)
    assert [our_opt.state[p]["step"].item() for p in ours] == [10.0] * 4


def test_step_hooks_and_profiler_range_still_work():
    """The step skips torch's record_function only while nothing listens."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = lrfast.optim.SGD([p], lr=0.5)
    seen = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    post = opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    p.grad = torch.ones(3)
    opt.step()
    assert seen == ["pre", "post"]
    pre.remove()
    post.remove()
    opt.step()
    assert seen == ["pre", "post"]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        opt.step()
    assert any(e.name == "Optimizer.step#SGD.step" for e in prof.events())
    assert torch.equal(p.detach(), torch.full((3,), -0.5))
