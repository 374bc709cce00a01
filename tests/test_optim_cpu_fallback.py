"""Without Numba the package imports, schedules work, and the CPU optimizers fall back
to torch's own code with a one-line warning (Numba hidden by an import hook in a fresh
interpreter)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from numba_hidden import HIDE_NUMBA

SCRIPT = HIDE_NUMBA + textwrap.dedent('''
    import warnings
    import torch
    import lrfast
    from lrfast import schedules as S, lr_scheduler
    import lrfast.optim

    assert lrfast.numba_status()[0] is False
    assert S.cosine_decay(1.0, 10)(5) == 0.5
    assert lrfast.warmup() is False

    def run(lib, cls, steps, **kw):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(n)) for n in (1, 100, 3000)]
        groups = [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3}]
        opt = getattr(lib, cls)(groups, lr=1e-2, **kw)
        sched = (lr_scheduler if lib is lrfast.optim else torch.optim.lr_scheduler).OneCycleLR(
            opt, max_lr=[0.02, 0.01], total_steps=steps)
        for step in range(steps):
            g = torch.Generator().manual_seed(step)
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step(**({"found_inf": torch.tensor(float(step == 3))} if lib is lrfast.optim else {}))
            if step < steps - 1:
                sched.step()
        return params

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = run(lrfast.optim, "AdamW", 8, amsgrad=True)
        ours_sgd = run(lrfast.optim, "SGD", 8, momentum=0.9, dampening=0.1)
        schedule_params = [torch.nn.Parameter(torch.ones(4))]
        opt = lrfast.optim.Adam(schedule_params, lr=S.linear(0.1, 0.0, 10))
        for _ in range(3):
            schedule_params[0].grad = torch.ones(4)
            opt.step()
        assert opt.param_groups[0]["lr_step"] == 3
    relevant = [w for w in caught if "Numba is unavailable" in str(w.message)]
    assert len(relevant) == 1, [str(w.message) for w in caught]
    assert issubclass(relevant[0].category, RuntimeWarning)
    assert "\\n" not in str(relevant[0].message)

    # torch with the same skipped step (found_inf at step 3: torch's optimizer simply is not called)
    def torch_run(cls, steps, **kw):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(n)) for n in (1, 100, 3000)]
        opt = getattr(torch.optim, cls)([{"params": params[:2]}, {"params": params[2:], "lr": 3e-3}], lr=1e-2,
                                        foreach=False, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[0.02, 0.01], total_steps=steps)
        for step in range(steps):
            g = torch.Generator().manual_seed(step)
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            if step != 3:
                opt.step()
            if step < steps - 1:
                sched.step()
        return params

    for p, q in zip(ours, torch_run("AdamW", 8, amsgrad=True)):
        assert torch.equal(p, q)
    for p, q in zip(ours_sgd, torch_run("SGD", 8, momentum=0.9, dampening=0.1)):
        assert torch.equal(p, q)
    print("fallback ok")
''')


def test_without_numba_everything_falls_back_to_torch():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fallback ok" in result.stdout
