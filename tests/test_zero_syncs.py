"""Host syncs per steady-state training step, counted on the emulated device, in every
documented configuration (docs/emulated-device.md, "Host syncs per configuration").

Each case builds a small training loop, runs warm-up steps (buckets built, tables uploaded),
then counts the device->host reads (NOTE [sync counting] in lrfast/_backend/device_api.py)
of each following step. Zero, except where docs say why a read is needed: then the exact count.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import lrfast.optim
from lrfast import lr_scheduler, schedules
from lrfast._backend import device_api

pytest.importorskip("lrfast._C_emu", reason="the emulated device needs lrfast._C_emu")

WARMUP = 3
COUNTED = 6


@pytest.fixture
def emulated():
    with device_api.use(device_api.emulated()) as api:
        yield api


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def _loss(model):
    x = torch.linspace(-1, 1, 24).reshape(4, 6)
    return model(x).square().mean()


def _syncs_per_step(api, step, warmup=WARMUP, counted=COUNTED):
    """The reads of each of ``counted`` steps after ``warmup`` steps, and the launches they made."""
    for i in range(warmup):
        step(i)
    launches = api.kernels().emu_launch_count()
    per_step = []
    for i in range(warmup, warmup + counted):
        with device_api.count_syncs() as syncs:
            step(i)
        per_step.append(syncs.reads)
    assert api.kernels().emu_launch_count() > launches  # the CUDA path ran
    return per_step


def _scaler_step(model, opt, scaler, i, skipped):
    """One GradScaler step; on the steps in ``skipped`` a gradient holds an inf."""
    opt.zero_grad(set_to_none=False)
    scaler.scale(_loss(model)).backward()
    if i in skipped:
        next(model.parameters()).grad.view(-1)[0] = float("inf")
    scaler.step(opt)
    scaler.update()


def _scaler():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2)


def _training_step(model, opt, sched=None, set_to_none=True):
    """One step of a plain training loop: zero_grad, backward, optimizer step, scheduler step."""
    def step(i):
        opt.zero_grad(set_to_none=set_to_none)
        _loss(model).backward()
        opt.step()
        if sched is not None:
            sched.step()
    return step


# -- bound schedulers -------------------------------------------------------------------------

@pytest.mark.parametrize("opt_cls, kwargs", [
    (lrfast.optim.AdamW, dict(lr=1e-3, weight_decay=0.01)),
    (lrfast.optim.Adam, dict(lr=1e-3, amsgrad=True)),
    (lrfast.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
])
@pytest.mark.parametrize("set_to_none", [False, True])
def test_bound_scheduler(emulated, opt_cls, kwargs, set_to_none):
    model = _model()
    opt = opt_cls(model.parameters(), **kwargs)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=100)

    assert _syncs_per_step(emulated, _training_step(model, opt, sched, set_to_none=set_to_none)) == [[]] * COUNTED


def test_bound_composite_scheduler_with_tensor_lr(emulated):
    model = _model()
    opt = lrfast.optim.AdamW(model.parameters(), lr=torch.tensor(1e-3, dtype=torch.float64))
    warm = lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=4)
    cos = lr_scheduler.CosineAnnealingLR(opt, T_max=50)
    sched = lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[4])

    assert _syncs_per_step(emulated, _training_step(model, opt, sched)) == [[]] * COUNTED


# -- a Schedule as the lr ---------------------------------------------------------------------

def test_schedule_as_lr(emulated):
    model = _model()
    opt = lrfast.optim.AdamW(model.parameters(), lr=schedules.warmup_cosine_decay(0.0, 1e-2, 3, 50))

    assert _syncs_per_step(emulated, _training_step(model, opt)) == [[]] * COUNTED


@pytest.mark.parametrize("opt_cls", [lrfast.optim.AdamW, lrfast.optim.SGD])
def test_schedule_as_lr_with_grad_scaler_skipping_steps(emulated, opt_cls):
    """NOTE [schedule count on the device]: the count advances on the device, by found_inf == 0."""
    model = _model()
    kwargs = dict(momentum=0.9) if opt_cls is lrfast.optim.SGD else {}
    schedule = schedules.warmup_cosine_decay(0.0, 1e-2, 3, 50)
    opt = opt_cls(model.parameters(), lr=schedule, **kwargs)
    scaler = _scaler()
    skipped = {1, 5, 6}  # a warm-up step and two counted ones

    def step(i):
        _scaler_step(model, opt, scaler, i, skipped)

    assert _syncs_per_step(emulated, step) == [[]] * COUNTED
    taken = WARMUP + COUNTED - len(skipped)
    group = opt.param_groups[0]
    assert int(group["lr_step"]) == taken  # (reads: after the counted steps)
    assert float(group["lr"]) == pytest.approx(schedule(taken), rel=1e-15)


def test_grad_copies_written_back_without_a_sync(emulated):
    """A gradient whose layout differs from its parameter's is staged; under GradScaler the
    unscaled values go back to the user's gradient only on steps taken, chosen on the device."""
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = lrfast.optim.AdamW([w], lr=1e-3)
    scaler = _scaler()
    grad = torch.ones(3, 4).t()  # transposed strides: staged in w's layout

    seen = []
    two = torch.full((4, 3), 2.0)

    def step(i):
        w.grad = grad
        if i in (4, WARMUP + COUNTED - 1):
            grad.fill_(float("inf"))
        else:
            grad.copy_(scaler.scale(two))  # in place, as backward() into a kept grad
        scaler.step(opt)
        seen.append(grad.clone())
        scaler.update()

    assert _syncs_per_step(emulated, step) == [[]] * COUNTED
    assert w.grad is grad
    assert seen[3].unique().tolist() == [2.0]  # taken: unscaled in place
    assert seen[4].isinf().all() and seen[-1].isinf().all()  # skipped: left as the user wrote it


# -- GradScaler with a bound scheduler ---------------------------------------------------------

def test_bound_scheduler_with_grad_scaler_skipping_steps(emulated):
    model = _model()
    opt = lrfast.optim.AdamW(model.parameters(), lr=1e-3)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=40)
    scaler = _scaler()

    def step(i):
        _scaler_step(model, opt, scaler, i, {1, 4, 7})
        sched.step()

    assert _syncs_per_step(emulated, step) == [[]] * COUNTED


def test_skip_schedule_on_overflow_reads_found_inf_once_per_step(emulated):
    """The documented sync (NOTE [skipped steps]): a bound scheduler holding its schedule on
    skipped steps reads found_inf on the host, once per scheduler step."""
    model = _model()
    opt = lrfast.optim.AdamW(model.parameters(), lr=1e-3)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=40)
    sched.skip_schedule_on_overflow = True
    scaler = _scaler()

    def step(i):
        _scaler_step(model, opt, scaler, i, {1, 4, 7})
        sched.step()

    assert _syncs_per_step(emulated, step) == [["item"]] * COUNTED
    assert sched.last_epoch == WARMUP + COUNTED - 3


# -- ReduceLROnPlateau on the device ----------------------------------------------------------

def _plateau_step(model, opt, sched):
    def step(i):
        opt.zero_grad()
        loss = _loss(model)
        loss.backward()
        opt.step()
        sched.step(loss.detach() * 0 + 1.0)  # a device metric that never improves
    return step


def test_device_plateau_with_tensor_lrs(emulated):
    model = _model()
    opt = lrfast.optim.AdamW(model.parameters(), lr=torch.tensor(1e-2, dtype=torch.float64))
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    assert _syncs_per_step(emulated, _plateau_step(model, opt, sched)) == [[]] * COUNTED
    assert float(opt.param_groups[0]["lr"]) < 1e-2  # it did reduce


def test_device_plateau_with_float_lrs_syncs_once_per_optimizer_step(emulated):
    """The documented sync (docs/schedulers.md): a float lr cannot be written from the device,
    so the optimizer's step pre-hook waits for the staged values."""
    model = _model()
    opt = lrfast.optim.AdamW(model.parameters(), lr=1e-2)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    assert _syncs_per_step(emulated, _plateau_step(model, opt, sched)) == [["Event.synchronize"]] * COUNTED


# -- lr_tensor logging -------------------------------------------------------------------------

def test_lr_tensor_logging(emulated):
    model = _model()
    opt = lrfast.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=4)
    log = torch.zeros(WARMUP + COUNTED, 1, dtype=torch.float64)

    def step(i):
        opt.zero_grad()
        _loss(model).backward()
        opt.step()
        sched.step()
        log[i].copy_(sched.lr_tensor)  # logged on the device, read once at the end

    assert _syncs_per_step(emulated, step) == [[]] * COUNTED
    assert log[:, 0].tolist() == pytest.approx([sched.schedules[0](t) for t in range(1, WARMUP + COUNTED + 1)])


# -- CUDA graph replay ------------------------------------------------------------------------

def test_graph_replay(emulated):
    model = _model()
    opt = lrfast.optim.AdamW(model.parameters(), lr=1e-3)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=40)
    opt.zero_grad(set_to_none=False)
    _loss(model).backward()  # the same grads every step: a graph reads fixed addresses
    for _ in range(2):  # eager steps first, as torch's graph recipe asks
        opt.step()
        sched.step()
    graph = emulated.graph()
    with emulated.capture(graph):
        opt.step()
        sched.step()
    assert _syncs_per_step(emulated, lambda i: graph.replay()) == [[]] * COUNTED


# -- the Schedule count on the device keeps the host count's semantics -------------------------

def _schedule_lr_run(steps, skipped, emulate, checkpoint_at=None):
    """A Schedule-lr AdamW under GradScaler; the emulated device counts on the device, the
    CPU on the host. Returns (params, lr_step, lr, the state dict taken at ``checkpoint_at``)."""
    schedule = schedules.warmup_cosine_decay(0.0, 1e-2, 3, 20)
    with device_api.use(device_api.emulated()) if emulate else _nothing():
        model = _model()
        opt = lrfast.optim.AdamW([{"params": model[0].parameters()},
                                  {"params": model[2].parameters(), "lr": schedules.constant(1e-3)}], lr=schedule)
        scaler = _scaler()
        saved = None
        for i in range(steps):
            _scaler_step(model, opt, scaler, i, skipped)
            if i == checkpoint_at:
                saved = opt.state_dict()
        params = [p.detach().clone() for p in model.parameters()]
        group = opt.param_groups[0]
        return params, int(group["lr_step"]), float(group["lr"]), saved, opt


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_device_count_equals_the_host_count():
    skipped = {0, 4, 5, 9}
    ours, our_step, our_lr, _, opt = _schedule_lr_run(12, skipped, emulate=True)
    theirs, their_step, their_lr, _, cpu_opt = _schedule_lr_run(12, skipped, emulate=False)
    assert isinstance(opt.param_groups[0]["lr_step"], torch.Tensor)  # counted on the device
    assert isinstance(cpu_opt.param_groups[0]["lr_step"], int)  # on the host: free to read there
    assert our_step == their_step == 12 - len(skipped)
    assert our_lr == their_lr
    assert float(opt.param_groups[1]["lr"]) == 1e-3
    for p, q in zip(ours, theirs):  # the CUDA kernel and the CPU kernel: float32 rounding apart
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_device_count_state_dict_and_copies_hold_plain_numbers():
    import copy

    _, step, lr, saved, opt = _schedule_lr_run(8, {2, 6}, emulate=True, checkpoint_at=4)
    assert [(type(g["lr_step"]), type(g["lr"])) for g in saved["param_groups"]] == [(int, float)] * 2
    assert [g["lr_step"] for g in saved["param_groups"]] == [4, 4]
    with device_api.use(device_api.emulated()):
        now = opt.state_dict()["param_groups"][0]
        assert (now["lr_step"], now["lr"]) == (step, lr)
        twin = copy.deepcopy(opt)
        assert (twin.param_groups[0]["lr_step"], twin.param_groups[0]["lr"]) == (step, lr)
        opt.load_state_dict(saved)
        assert (opt.param_groups[0]["lr_step"], opt.param_groups[0]["lr"]) == \
            (4, opt.param_groups[0]["lr_schedule"](4))


def test_device_count_goes_back_to_the_host_when_counts_differ():
    with device_api.use(device_api.emulated()):
        _, step, _, _, opt = _schedule_lr_run(5, {1}, emulate=True)
        late = torch.nn.Parameter(torch.ones(3))
        late.grad = torch.ones(3)
        opt.add_param_group({"params": [late], "lr": schedules.constant(0.5)})  # starts at lr_step 0
        opt.step(found_inf=torch.zeros(1))
        assert [g["lr_step"] for g in opt.param_groups] == [step + 1, step + 1, 1]  # host ints again
        opt.step(found_inf=torch.ones(1))
        assert [g["lr_step"] for g in opt.param_groups] == [step + 1, step + 1, 1]


def test_device_count_refuses_graph_capture(emulated):
    _, _, _, _, opt = _schedule_lr_run(3, set(), emulate=True)
    graph = emulated.graph()
    with pytest.raises(RuntimeError, match="counted on the device"), emulated.capture(graph):
        opt.step(found_inf=torch.zeros(1))
