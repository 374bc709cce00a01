"""Lion on CUDA through the out-of-tree extension ``lion_cuda_ext`` (built with CMake).

The LR is evaluated inside the extension's kernel from the bound lrfast scheduler's
packed descriptors, copied once to the device; the step is passed by value.
"""

from __future__ import annotations

import numpy as np
import torch

from lrfast.schedules import constant, pack_many


class CudaLion(torch.optim.Optimizer):
    def __init__(self, params, ext, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))
        self._ext = ext
        self._scheduler = None
        self._device_program = None

    def lrfast_bind_scheduler(self, scheduler) -> None:
        self._scheduler = scheduler
        self._device_program = None

    def _program(self, device):
        packed = self._scheduler.packed_lr() if self._scheduler is not None else \
            pack_many([constant(float(g["lr"])) for g in self.param_groups])
        key = (id(packed.descriptors), device)
        if self._device_program is None or self._device_program[0] != key:
            descriptors = torch.from_numpy(np.atleast_2d(packed.descriptors).copy()).to(device)
            table = torch.from_numpy(np.append(packed.table, 0.0)).to(device)
            self._device_program = (key, descriptors, table)
        return self._device_program[1], self._device_program[2]

    @torch.no_grad()
    def step(self, closure=None):
        step = float(self._scheduler.current_step) if self._scheduler is not None else 0.0
        for i, group in enumerate(self.param_groups):
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                descriptors, table = self._program(p.device)
                self._ext.lion_step(p.data_ptr(), p.grad.data_ptr(), state["exp_avg"].data_ptr(), p.numel(),
                                    descriptors[i].data_ptr(), table.data_ptr(), 0, step, beta1, beta2,
                                    group["weight_decay"], torch.cuda.current_stream(p.device).cuda_stream)
