"""lrfast.plot (PNG rendering and the data on its axes) and the progress bar (lrfast.tools.progress)."""

from __future__ import annotations

import io
import warnings

import matplotlib
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import lrfast
from lrfast import lr_scheduler
from lrfast import schedules as S
from lrfast.integrations.transformers import get_wsd_schedule
from lrfast.tools.progress import Progress, track

matplotlib.use("Agg")  # no display: render to files (switching after pyplot's import is allowed)

STEPS = 120


def _adamw(groups: int = 2) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(3)) for _ in range(groups)]
    return torch.optim.AdamW([{"params": [p], "lr": 1e-3 * (i + 1)} for i, p in enumerate(params)])


def _one_cycle(module, optimizer):
    return module.OneCycleLR(optimizer, max_lr=[1e-2, 4e-3], total_steps=STEPS, pct_start=0.25)


def _torch_trajectory() -> tuple[np.ndarray, np.ndarray]:
    """torch's OneCycleLR, stepped: (lr, beta1) per group at steps 0 .. STEPS - 1."""
    opt = _adamw()
    sched = _one_cycle(torch.optim.lr_scheduler, opt)
    lrs, betas = [], []
    for t in range(STEPS):
        lrs.append([g["lr"] for g in opt.param_groups])
        betas.append([g["betas"][0] for g in opt.param_groups])
        if t < STEPS - 1:
            opt.step()
            sched.step()
    return np.array(lrs).T, np.array(betas).T


def test_png_of_lr_and_momentum_curves(tmp_path) -> None:
    path = tmp_path / "onecycle.png"
    cosine = S.cosine_decay(5e-3, decay_steps=100)
    fig = lrfast.plot([_one_cycle(lr_scheduler, _adamw()), cosine], STEPS, path,
                      labels=["one cycle", "cosine"], title="t")

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert not plt.fignum_exists(fig.number)  # saved figures are closed

    lr_ax, mom_ax = fig.axes
    assert [line.get_label() for line in lr_ax.lines] == ["one cycle group 0", "one cycle group 1", "cosine"]
    assert [line.get_label() for line in mom_ax.lines] == ["one cycle group 0 momentum", "one cycle group 1 momentum"]
    want_lr, want_beta = _torch_trajectory()
    for i in range(2):
        np.testing.assert_array_equal(lr_ax.lines[i].get_xdata(), np.arange(STEPS))
        np.testing.assert_allclose(lr_ax.lines[i].get_ydata(), want_lr[i], rtol=1e-9, atol=0)
        np.testing.assert_allclose(mom_ax.lines[i].get_ydata(), want_beta[i], rtol=1e-9, atol=0)
        assert mom_ax.lines[i].get_color() == lr_ax.lines[i].get_color()  # a group's pair shares a colour
        assert mom_ax.lines[i].get_linestyle() == "--"
    np.testing.assert_allclose(lr_ax.lines[2].get_ydata(), [cosine(t) for t in range(STEPS)], rtol=1e-12, atol=0)
    assert lr_ax.lines[0].get_color() != lr_ax.lines[1].get_color() != lr_ax.lines[2].get_color()
    legend = lr_ax.get_legend()
    assert legend is not None and len(legend.get_texts()) == 5  # one legend for both axes


def test_functional_scheduler_and_log_axis() -> None:
    """A transformers twin (FunctionalLR) draws base_lr times its factor; no momentum axis."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = get_wsd_schedule(opt, num_warmup_steps=10, num_decay_steps=40, num_stable_steps=30, min_lr_ratio=0.01)
    fig = lrfast.plot(sched, 100, log_y=True)
    try:
        (ax,) = fig.axes
        assert ax.get_yscale() == "log"
        assert ax.lines[0].get_label() == "FunctionalLR"
        np.testing.assert_allclose(ax.lines[0].get_ydata(), 0.1 * sched.factors[0].values(100), rtol=1e-15)
        assert ax.lines[0].get_ydata()[25] == pytest.approx(0.1)  # the stable phase (steps 10 .. 39)
        assert ax.lines[0].get_ydata()[99] == pytest.approx(1e-3)  # min_lr_ratio * base
    finally:
        plt.close(fig)


def test_values_a_log_axis_cannot_show_are_named_not_dropped() -> None:
    # a linear decay to 0 over 10 steps: steps 10..19 sit at 0, which a log axis cannot place
    with pytest.warns(UserWarning, match=r"plot: not drawn: .* LR: 10 of 20 steps \(<= 0 on the log axis; "
                                         r"first at step 10\)"):
        fig = lrfast.plot([S.linear(1.0, 0.0, 10)], 20, log_y=True)
    try:
        assert any("not drawn" in t.get_text() for t in fig.texts)  # on the figure too
    finally:
        plt.close(fig)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same curve on a linear axis: everything is drawn, no warning
        plt.close(lrfast.plot([S.linear(1.0, 0.0, 10)], 20))


@pytest.mark.parametrize("call, error, match", [
    (lambda: lrfast.plot([S.constant(1.0)], 0), ValueError, "steps must be a positive int"),
    (lambda: lrfast.plot([S.constant(1.0)], 10, labels=["a", "b"]), ValueError, "one entry per schedule"),
    (lambda: lrfast.plot([lambda t: 1.0], 10), TypeError, "expected lrfast Schedule"),
])
def test_plot_bad_arguments(call, error, match) -> None:
    before = plt.get_fignums()
    with pytest.raises(error, match=match):
        call()
    assert plt.get_fignums() == before  # no half-drawn figure left open


# -- progress -----------------------------------------------------------------------------------

class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_tty_only() -> None:
    silent = io.StringIO()  # not a TTY: pytest's capture, CI logs, pipes
    with Progress(4, "bench", file=silent) as bar:
        bar.update(4)
    assert silent.getvalue() == ""

    tty = FakeTTY()
    with Progress(4, "bench", file=tty, min_interval=0) as bar:
        for name in "abcd":
            bar.update(note=name)
    frames = tty.getvalue().split("\r")[1:]
    assert len(frames) == 6  # the initial frame, one per update, the final one
    assert frames[0].startswith("bench [" + "." * 30 + "] 0/4   0%")
    assert frames[2].startswith("bench [" + "#" * 15 + "." * 15 + "] 2/4  50%") and " eta " in frames[2]
    assert frames[-1].startswith("bench [" + "#" * 30 + "] 4/4 100%") and frames[-1].endswith(" d\n")
    assert " eta " not in frames[-1]


def test_progress_forced_disabled_throttled_and_unbounded() -> None:
    forced = io.StringIO()
    with Progress(2, file=forced, force=True, min_interval=3600) as bar:
        bar.update()  # throttled: within min_interval and not finished
        bar.update()  # finished: always drawn
    frames = forced.getvalue().split("\r")[1:]
    assert [f.split(" ")[1] for f in frames] == ["0/2", "2/2", "2/2"]

    off = FakeTTY()
    with Progress(2, file=off, disable=True) as bar:
        bar.update(2)
    assert off.getvalue() == ""

    counting = FakeTTY()
    assert list(track(iter(range(3)), "items", file=counting, min_interval=0)) == [0, 1, 2]
    assert counting.getvalue().split("\r")[-1].startswith("items 3 done")


def test_track_takes_the_length_and_progress_checks_arguments() -> None:
    out = FakeTTY()
    assert list(track(["x", "y"], "t", file=out, min_interval=0)) == ["x", "y"]
    assert out.getvalue().split("\r")[-1].startswith("t [" + "#" * 30 + "] 2/2 100%")
    with pytest.raises(ValueError, match="Progress: total must be an int >= 0 or None"):
        Progress(-1)
    with pytest.raises(ValueError, match="Progress: width must be a positive int"):
        Progress(3, width=0)
