"""Scheduled LRs for torch's own optimizers stepped inside a CUDA graph."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..schedules import Schedule, pack_many

__all__ = ["graph_lr_step"]


def graph_lr_step(lrs: Sequence[torch.Tensor], schedules: Sequence[Schedule],
                  counter: torch.Tensor) -> Callable[[], None]:
    """A function to capture in a CUDA graph beside ``optimizer.step()`` of a torch optimizer
    whose LRs are tensors (``capturable=True``): each call adds one to ``counter`` (an int64
    one-element tensor on the LRs' device, the schedule step) and writes ``schedules[i](counter)``
    into ``lrs[i]``, in one launch that reads the step on the device, so every replay of the
    graph advances the schedule. (An :mod:`lrfast.lr_scheduler` scheduler passes its step by
    value, which a graph would freeze; lrfast's own optimizers advance their schedules inside
    their kernels.) Needs lrfast's CUDA kernels.

    >>> import torch, lrfast
    >>> from lrfast import lr_scheduler, schedules
    >>> cosine = schedules.cosine_annealing(0.1, 100)
    >>> if lrfast.cuda_status()[0]:
    ...     lr, step = torch.tensor(0.1, device="cuda"), torch.zeros((), dtype=torch.int64, device="cuda")
    ...     write = lr_scheduler.graph_lr_step([lr], [cosine], step)
    ...     write()                                  # step 1; capture it with opt.step() to replay
    ...     assert int(step) == 1 and abs(float(lr) - cosine(1)) < 1e-8
    """
    from .._backend.cuda import ScalarWriter

    lrs, schedules = list(lrs), list(schedules)
    if len(lrs) != len(schedules) or not lrs:
        raise ValueError(f"graph_lr_step: needs one schedule per LR tensor, got {len(schedules)} schedules for "
                         f"{len(lrs)} LR tensors")
    if not all(isinstance(t, torch.Tensor) for t in lrs) or not all(isinstance(s, Schedule) for s in schedules):
        raise TypeError(f"graph_lr_step: lrs must be torch.Tensors and schedules lrfast.schedules Schedules, got "
                        f"{[type(t).__name__ for t in lrs]} and {[type(s).__name__ for s in schedules]}")
    writer = ScalarWriter(lrs, pack_many(schedules))  # checks the LR tensors, and that the kernels are here
    if not (isinstance(counter, torch.Tensor) and counter.dtype == torch.int64 and counter.numel() == 1
            and counter.device == writer.device):
        got = (f"{counter.dtype} with {counter.numel()} elements on {counter.device}"
               if isinstance(counter, torch.Tensor) else repr(counter))
        raise TypeError(f"graph_lr_step: counter must be a one-element torch.int64 tensor on {writer.device}, "
                        f"got {got}")

    def write() -> None:
        writer.write(0.0, counter=counter, increment=1)
    return write
