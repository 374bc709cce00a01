"""Plots of learning-rate curves (matplotlib, imported only when plotting).

Every curve is evaluated in closed form from the schedule over ``0 .. steps - 1``; nothing
is stepped. A scheduler draws one LR curve per param group and, when it cycles momentum /
beta1 (OneCycleLR, CyclicLR), a dashed momentum curve per group, in the same colour, on a
second y axis.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np

from .schedules import Schedule

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch.optim.lr_scheduler import LRScheduler

__all__ = ["plot", "Curve", "curves", "plot_range_test"]


class Curve(NamedTuple):
    """One group's LR over the steps, and its momentum / beta1 when the scheduler cycles it."""

    label: str
    lr: np.ndarray
    momentum: np.ndarray | None = None


def curves(item: Schedule | LRScheduler, steps: int, label: str) -> list[Curve]:
    """The curves :func:`plot` draws for one schedule or lrfast scheduler."""
    if isinstance(item, Schedule):
        return [Curve(label, item.values(steps))]
    schedules = getattr(item, "schedules", None)  # an lrfast scheduler: one curve per group
    if schedules is None:
        raise TypeError(f"plot: expected lrfast Schedule objects or lrfast schedulers, got {item!r}")
    momentum = item.packed_momentum() if hasattr(item, "packed_momentum") else None
    momentum_values = [None] * len(schedules)
    if momentum is not None:
        from . import _C

        momentum_values = list(_C.evaluate(momentum.descriptors, momentum.table, np.arange(steps, dtype=np.float64)))
    return [Curve(f"{label} group {i}" if len(schedules) > 1 else label, s.values(steps), m)
            for i, (s, m) in enumerate(zip(schedules, momentum_values))]


def _short(name: str) -> str:
    return name if len(name) <= 70 else name[:67] + "..."


def _undrawable(drawn: Sequence[Curve], log_y: bool) -> list[str]:
    """What matplotlib would leave out without a word: each curve's inf and NaN values, and
    with ``log_y`` its values <= 0 (a log axis has no place for them)."""
    found = []
    for curve in drawn:
        for what, values in (("LR", curve.lr), ("momentum", curve.momentum)):
            if values is None:
                continue
            values = np.asarray(values, dtype=np.float64)
            bad = ~np.isfinite(values)
            if log_y and what == "LR":
                bad |= np.isfinite(values) & (values <= 0)
            if bad.any():
                kinds = [name for name, mask in (("inf", np.isinf(values)), ("NaN", np.isnan(values)),
                                                 ("<= 0 on the log axis", log_y and what == "LR" and values <= 0))
                         if np.any(mask)]
                steps = np.flatnonzero(bad)
                found.append(f"{_short(curve.label)} {what}: {steps.size} of {values.size} steps "
                             f"({', '.join(kinds)}; first at step {int(steps[0])})")
    return found


def plot(items: Schedule | LRScheduler | Sequence[Schedule | LRScheduler], steps: int,
         path: str | Path | None = None, labels: Sequence[str] | None = None, title: str | None = None,
         log_y: bool = False) -> Figure:
    """Draw the LR (and momentum, for cycling schedulers) of each schedule or scheduler
    over ``steps`` steps on one figure; save it to ``path`` when given (and close it).
    Returns the figure: ``fig.axes[0]`` holds the LR lines (one per group), ``fig.axes[1]``,
    when present, the momentum lines.

    >>> import os, tempfile
    >>> from lrfast import schedules as S, plot
    >>> path = os.path.join(tempfile.mkdtemp(), "lr.png")
    >>> fig = plot([S.cosine_decay(1.0, 100), S.warmup_constant(0.0, 1.0, 10)], 120, path)
    >>> len(fig.axes[0].lines), os.path.getsize(path) > 0
    (2, True)
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(items, Schedule) or hasattr(items, "schedules"):
        items = [items]  # type: ignore[list-item]  # one schedule or scheduler
    items = cast("Sequence[Schedule | LRScheduler]", items)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"plot: steps must be a positive int, got {steps!r}")
    labels = list(labels) if labels is not None else [repr(i) if isinstance(i, Schedule) else type(i).__name__
                                                      for i in items]
    if len(labels) != len(items):
        raise ValueError(f"plot: labels must have one entry per schedule ({len(items)}), got {len(labels)}")
    drawn = [c for item, label in zip(items, labels) for c in curves(item, steps, label)]  # errors before drawing
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    mom_ax = None
    x = np.arange(steps)
    for curve in drawn:
        (line,) = ax.plot(x, curve.lr, label=_short(curve.label))
        if curve.momentum is not None:
            mom_ax = mom_ax or ax.twinx()
            mom_ax.plot(x, curve.momentum, linestyle="--", color=line.get_color(),
                        label=f"{_short(curve.label)} momentum")
    undrawn = _undrawable(drawn, log_y)
    if undrawn:
        message = "plot: not drawn: " + "; ".join(undrawn)
        warnings.warn(message, UserWarning, stacklevel=2)
        fig.text(0.01, 0.01, message, fontsize="x-small", color="firebrick", wrap=True)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if log_y:
        ax.set_yscale("log")
    handles = list(ax.lines)
    if mom_ax is not None:
        mom_ax.set_ylabel("momentum / beta1 (dashed)")
        handles += mom_ax.lines
    # One legend for both axes, under the plot: inside, it would cover the curves.
    ax.legend(handles, [str(h.get_label()) for h in handles], loc="upper center", bbox_to_anchor=(0.5, -0.12),
              ncol=2 if len(handles) > 4 else 1, fontsize="small", frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title(title or "lrfast schedules")
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig


def plot_range_test(lrs: np.ndarray, smoothed: np.ndarray, raw: np.ndarray | None = None,
                    marks: Sequence[tuple[int, str]] = (), *, log_x: bool = True, path: str | Path | None = None,
                    title: str | None = None) -> Figure:
    """Draw an LR range test (:func:`lrfast.find_lr`): the smoothed loss against the LR,
    the raw losses faintly when given, and a dot on the smoothed curve at each
    ``(step, label)`` of ``marks`` (the first red). Save to ``path`` when given (and
    close the figure). ``fig.axes[0].lines[0]`` is the smoothed curve.

    >>> import numpy as np
    >>> lrs = np.geomspace(1e-4, 1.0, 30)
    >>> fig = plot_range_test(lrs, 1.0 + (np.log10(lrs) + 2.0) ** 2, marks=[(10, "suggestion")])
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['smoothed loss', 'suggestion']
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    if lrs.shape != smoothed.shape or lrs.ndim != 1:
        raise ValueError(f"plot_range_test: lrs and smoothed must be 1-d and of one length, got shapes "
                         f"{lrs.shape} and {smoothed.shape}")
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    ax.plot(lrs, smoothed, label="smoothed loss")
    if raw is not None:
        ax.plot(lrs, raw, alpha=0.3, linewidth=0.8, color="grey", label="_raw loss")
    colors = ["red", "darkorange", "green", "purple", "black"]
    for i, (step, label) in enumerate(marks):
        ax.plot(lrs[step], smoothed[step], "o", color=colors[i % len(colors)], markersize=8 if i == 0 else 6,
                label=label)
    # the y axis fits the smoothed curve without its last point: the raw losses and the
    # step that diverged would squash the rest of the curve flat
    scaled = smoothed[:-1] if len(smoothed) > 2 else smoothed
    finite = scaled[np.isfinite(scaled)]
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        pad = 0.05 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + pad)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title or "LR range test")
    if path is not None:
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
    return fig
