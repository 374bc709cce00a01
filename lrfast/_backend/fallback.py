"""CPU buckets through torch's own functional optimizers, for when Numba is missing.

The same NOTE [bucket contract] as the Numba backend (``lrfast/_backend/bucket.py``),
built from ``torch.optim.adam.adam`` / ``torch.optim.sgd.sgd`` (``foreach=False``) one
group at a time, with the scheduled values evaluated on the host by ``lrfast._C``.
Slower than the fused kernels, and torch's numerics rather than the kernels' (they
differ in the last bit of a few float32 elements).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.optim.adam import adam as torch_adam
from torch.optim.sgd import sgd as torch_sgd

from .. import _C
from .. import _bucket_layout as L

__all__ = ["step_bucket"]


def _scheduled(packed, row: int, t: float) -> float:
    descriptors = np.ascontiguousarray(np.atleast_2d(packed.descriptors)[row:row + 1])
    return float(_C.evaluate_at(descriptors, np.ascontiguousarray(packed.table), float(t))[0])


def step_bucket(bucket) -> None:
    """One optimizer step of a CPU ``bucket`` with torch's code."""
    if bucket.found_inf is not None and float(bucket.found_inf.detach().reshape(-1)[0]) != 0.0:
        return
    hyper = bucket.group_hyper
    with torch.no_grad():
        if bucket.grad_scale is not None:
            scale = bucket.grad_scale.detach().reshape(-1)[0].to(torch.float32)
            for g in bucket.grads:
                g.copy_(g.float().div_(scale))
        groups = bucket.tensor_group.tolist()
        for gi in sorted(set(groups)):
            h = hyper[gi]
            lr = float(h[L.GROUP_LR])
            if h[L.GROUP_LR_SCHEDULED]:
                lr = _scheduled(bucket.lr_schedule, gi, bucket.schedule_t[gi])
            elif bucket.lr_tensors and bucket.lr_tensors[gi] is not None:
                lr = float(bucket.lr_tensors[gi])
            momentum = float(h[L.GROUP_MOMENTUM])
            if h[L.GROUP_MOMENTUM_SCHEDULED]:
                momentum = _scheduled(bucket.momentum_schedule, gi, bucket.schedule_t[gi])
            members = [t for t, g in enumerate(groups) if g == gi]
            params = [bucket.params[t] for t in members]
            grads = [bucket.grads[t] for t in members]
            if bucket.kind == "adam":
                amsgrad = bool(h[L.GROUP_AMSGRAD])
                torch_adam(
                    params, grads, [bucket.state["exp_avg"][t] for t in members],
                    [bucket.state["exp_avg_sq"][t] for t in members],
                    [bucket.state["max_exp_avg_sq"][t] for t in members] if amsgrad else [],
                    [bucket.steps[t] for t in members], foreach=False,
                    decoupled_weight_decay=bool(h[L.GROUP_DECOUPLED]), amsgrad=amsgrad, beta1=momentum,
                    beta2=float(h[L.GROUP_BETA2]), lr=lr, weight_decay=float(h[L.GROUP_WEIGHT_DECAY]),
                    eps=float(h[L.GROUP_EPS]), maximize=bool(h[L.GROUP_MAXIMIZE]),
                )
                continue
            stored = [bucket.state["momentum_buffer"][t] for t in members]
            use_momentum = momentum != 0.0 and all(b is not None for b in stored)
            buffers = [None if bucket.momentum_fresh[t] else b for t, b in zip(members, stored, strict=True)]
            torch_sgd(
                params, grads, buffers if use_momentum else [None] * len(members), foreach=False,
                weight_decay=float(h[L.GROUP_WEIGHT_DECAY]), momentum=momentum if use_momentum else 0.0, lr=lr,
                dampening=float(h[L.GROUP_DAMPENING]), nesterov=bool(h[L.GROUP_NESTEROV]),
                maximize=bool(h[L.GROUP_MAXIMIZE]),
            )
            if use_momentum:
                for t, target, result in zip(members, stored, buffers, strict=True):
                    if bucket.momentum_fresh[t]:
                        target.copy_(result)
                        bucket.momentum_fresh[t] = 0
