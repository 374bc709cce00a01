"""Plots of learning-rate curves (matplotlib, imported only when plotting)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .schedules import Schedule

__all__ = ["plot"]


def _curves(item, steps: int, label: str) -> list[tuple[str, np.ndarray]]:
    if isinstance(item, Schedule):
        return [(label, item.values(steps))]
    schedules = getattr(item, "schedules", None)  # an lrfast scheduler: one curve per group
    if schedules is None:
        raise TypeError(f"plot: expected lrfast Schedule objects or lrfast schedulers, got {item!r}")
    curves = [(f"{label} group {i}" if len(schedules) > 1 else label, s.values(steps))
              for i, s in enumerate(schedules)]
    momentum = item.packed_momentum() if hasattr(item, "packed_momentum") else None
    if momentum is not None:
        from . import _C

        values = _C.evaluate(momentum.descriptors, momentum.table, np.arange(steps, dtype=np.float64))
        curves += [(f"{label} momentum{f' group {i}' if len(values) > 1 else ''}", v) for i, v in enumerate(values)]
    return curves


def plot(items, steps: int, path: str | Path | None = None, labels: Sequence[str] | None = None,
         title: str | None = None, log_y: bool = False):
    """Draw the LR (and momentum, for cycling schedulers) of each schedule or scheduler
    over ``steps`` steps on one figure; save it to ``path`` when given.

    >>> from lrfast import schedules as S, plot
    >>> fig = plot([S.cosine_decay(1.0, 100), S.warmup_constant(0.0, 1.0, 10)], 120)  # doctest: +SKIP
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(items, Schedule) or hasattr(items, "schedules"):
        items = [items]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"plot: steps must be a positive int, got {steps!r}")
    labels = list(labels) if labels is not None else [repr(i) if isinstance(i, Schedule) else type(i).__name__
                                                      for i in items]
    if len(labels) != len(items):
        raise ValueError(f"plot: labels must have one entry per schedule ({len(items)}), got {len(labels)}")
    fig, ax = plt.subplots(figsize=(9, 4.8))
    lr_ax, mom_ax = ax, None
    for item, label in zip(items, labels):
        for name, values in _curves(item, steps, label):
            if " momentum" in name:
                mom_ax = mom_ax or ax.twinx()
                mom_ax.plot(np.arange(steps), values, linestyle="--", label=name)
            else:
                short = name if len(name) <= 70 else name[:67] + "..."
                lr_ax.plot(np.arange(steps), values, label=short)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if log_y:
        ax.set_yscale("log")
    if mom_ax is not None:
        mom_ax.set_ylabel("momentum / beta1")
        mom_ax.legend(loc="lower right", fontsize="small")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)
    ax.set_title(title or "lrfast schedules")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
