"""The bench's figure: time per step against size, one line per contender with its
interquartile range, log axes, the bandwidth floor drawn (needs matplotlib)."""

from __future__ import annotations

from . import results
from .cases import BYTES_PER_ELEMENT, TITLES
from .report import column
from .results import Result, floor_GBs, floor_seconds, spread

__all__ = ["plot"]


def plot(rows: list[Result], meta: dict, path: str) -> None:
    """Draw the single-tensor size curves of a run to the image ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, algo in zip(axes, BYTES_PER_ELEMENT):
        opt_rows = [r for r in rows if r.section == algo and results.valid(r) and r.tensors == 1]
        for contender in dict.fromkeys(r.contender for r in opt_rows):
            pts = sorted((r.numel, spread(results.samples(r))) for r in opt_rows if r.contender == contender)
            xs = [n for n, _ in pts]
            med = [s["median"] * 1e3 for _, s in pts]
            err = [[(s["median"] - s["q1"]) * 1e3 for _, s in pts], [(s["q3"] - s["median"]) * 1e3 for _, s in pts]]
            ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=column(contender, meta))
        if opt_rows:
            xs = sorted({r.numel for r in opt_rows})
            floor = [floor_seconds(meta, algo, n) * 1e3 for n in xs]
            ax.plot(xs, floor, "k--", label=f"bandwidth floor ({floor_GBs(meta):.1f} GB/s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elements (one tensor)")
        ax.set_ylabel("ms per step (median, IQR bars)")
        ax.set_title(TITLES[algo])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle(f"{meta['device']} — {meta['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
