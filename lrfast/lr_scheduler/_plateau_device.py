"""ReduceLROnPlateau's device engine: the decision on the device, and the host mirror of it.

A :class:`DeviceEngine` exists while the device decides (NOTE [plateau mirror] in
``_plateau.py``): made from the host state by the first CUDA metric (its program uploaded
from the host engine's, NOTE [plateau state]), it runs one ``cuda_plateau_step`` launch
per step and refreshes the scheduler's host mirror when asked (:meth:`DeviceEngine.pull`,
the one sync). The public class drops it when a host metric brings the state back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._backend import device_api
from .._scheduling_protocol import host_float
from ._base import optimizer_device
from ._plateau_host import STATE_SIZE, HostProgram, PlateauOwner

__all__ = ["DeviceProgram", "DeviceEngine", "device_metric"]


class DeviceProgram:
    """The device copy of a host program, the decision state and the kernel's targets
    (NOTE [plateau state]); the table here is the live one."""

    def __init__(self, groups: list[dict[str, Any]], host: HostProgram, device: torch.device,
                 out: torch.Tensor) -> None:
        from .._backend.cuda import DTYPE_CODES, upload

        self.device = device
        self.n_groups = len(groups)
        self._keep: list = []
        self.descriptors = upload(host.descriptors, device, self._keep)
        self.table = upload(host.table, device, self._keep)
        self.slot_index = upload(host.slots, device, self._keep)
        self.min_lrs = upload(host.min_lrs, device, self._keep)
        self.min_lrs_key = host.min_lrs.tolist()
        self.state = torch.zeros(STATE_SIZE, dtype=torch.float64, device=device)
        self.out = out
        addresses = np.zeros(self.n_groups, dtype=np.uint64)
        dtypes = np.full(self.n_groups, DTYPE_CODES[torch.float64], dtype=np.int32)
        self.tensors: list[torch.Tensor | None] = []
        self.host_groups: list[int] = []  # groups the kernel cannot write: the mirror does
        for g, group in enumerate(groups):
            lr = group["lr"]
            if isinstance(lr, torch.Tensor) and lr.device == device and lr.numel() == 1 and lr.dtype in DTYPE_CODES:
                addresses[g] = lr.data_ptr()
                dtypes[g] = DTYPE_CODES[lr.dtype]
                self.tensors.append(lr)
            else:
                self.tensors.append(None)
                self.host_groups.append(g)
        self.targets = upload(addresses.view(np.int64), device, self._keep)
        self.dtypes = upload(dtypes, device, self._keep)
        self.pinned = device_api.active().pinned_empty(STATE_SIZE + 2 * self.n_groups, torch.float64)
        self.event = device_api.active().event()
        self.staged = -1  # the device step whose values the pinned buffer is receiving

    def still_valid(self, groups: list[dict], min_lrs: list) -> bool:
        if len(groups) != self.n_groups or list(map(float, min_lrs)) != self.min_lrs_key:
            return False
        for group, tensor in zip(groups, self.tensors):
            lr = group["lr"]
            if tensor is None:
                if isinstance(lr, torch.Tensor) and lr.device == self.device:
                    return False
            elif lr is not tensor or lr.data_ptr() != tensor.data_ptr():
                return False
        return True

    def stage(self, step_id: int) -> None:
        """Start copying state, LRs and slots into pinned memory; nothing waits."""
        n = self.n_groups
        self.pinned[:STATE_SIZE].copy_(self.state, non_blocking=True)
        self.pinned[STATE_SIZE:STATE_SIZE + n].copy_(self.out, non_blocking=True)
        self.pinned[STATE_SIZE + n:].copy_(self.table.index_select(0, self.slot_index), non_blocking=True)
        self.event.record(device_api.active().current_stream(self.device))
        self.staged = step_id

    def read(self, step_id: int) -> np.ndarray:
        """The staged values of ``step_id``: waits for the copies (the one sync)."""
        if self.staged != step_id:
            self.stage(step_id)
        self.event.synchronize()
        return self.pinned.numpy().copy()


def device_metric(metrics: Any, optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, int] | None:
    """(metric, dtype code) when this step runs on the device (NOTE [plateau mirror]); None
    when torch's host path takes it, ``float(metric)``."""
    if not (isinstance(metrics, torch.Tensor) and device_api.is_device(metrics.device)):
        return None
    if metrics.numel() != 1:
        raise RuntimeError(f"a Tensor with {metrics.numel()} elements cannot be converted to Scalar")
    if optimizer_device(optimizer) != metrics.device or not device_api.kernels().has_cuda():
        return None  # not where the LRs live (or no kernels)
    from .._backend.cuda import DTYPE_CODES

    metric = metrics.detach()
    if metric.is_complex():
        return None  # torch's float() decides what that means
    if metric.dtype not in DTYPE_CODES:
        metric = metric.to(torch.float64)  # ints and bools: a device conversion, no sync
    return metric, DTYPE_CODES[metric.dtype]


class DeviceEngine:
    """The device decides (module docstring): its program, its step count and what the host
    mirror last read."""

    def __init__(self, scheduler: PlateauOwner, device: torch.device) -> None:
        """From the host state: the host engine's program, the decision state uploaded."""
        from .._backend.cuda import upload

        host = scheduler._lrfast_host.program(scheduler, device)
        groups = scheduler.optimizer.param_groups
        self.program = DeviceProgram(groups, host, device, scheduler._lrfast_out(device))
        self.program.state = upload(scheduler._lrfast_state_array(), device, self.program._keep)
        self.known_lrs: dict[int, Any] = {g: groups[g]["lr"] for g in self.program.host_groups}
        self.steps = 0  # device steps so far
        self.pulled = 0  # the device step the host mirror reflects
        self.lrs_pulled: list[float] = host.lrs.tolist()  # every group's LR at the step pulled

    def rebuild(self, scheduler: PlateauOwner) -> None:
        """A new device program with the old one's state and slots, copied on the device
        (the groups' tensors, min_lrs or an inner scheduler's schedules changed)."""
        old = self.program
        host = scheduler._lrfast_host.program(scheduler, old.device)
        groups = scheduler.optimizer.param_groups
        new = DeviceProgram(groups, host, old.device, scheduler._lrfast_out(old.device))
        new.state.copy_(old.state)
        new.table.index_copy_(0, new.slot_index, old.table.index_select(0, old.slot_index))
        self.program = new
        self.known_lrs = {g: groups[g]["lr"] for g in new.host_groups}

    def upload_changed_lrs(self, scheduler: PlateauOwner) -> None:
        """Plain rule: a float group's lr set by hand since the device last wrote it is what
        the next reduction starts from, as in torch."""
        from .._backend.cuda import upload

        program = self.program
        groups = scheduler.optimizer.param_groups
        for g in program.host_groups:
            lr = groups[g]["lr"]
            if lr is not self.known_lrs.get(g):
                # the caching host allocator keeps the pinned source until the copy ran
                value = upload(np.array([host_float(lr, sync=True)]), program.device, [])
                program.table.index_copy_(0, program.slot_index[g:g + 1], value)
                self.known_lrs[g] = lr

    def step(self, scheduler: PlateauOwner, metric: tuple[torch.Tensor, int] | None, epoch: float) -> None:
        """One launch: decide on ``metric`` (None: advance a composed schedule only), write
        the LRs, and start staging the mirror's values when some group needs them."""
        api = device_api.active()
        program = self.program
        value, code = metric if metric is not None else (None, 0)
        api.kernels().cuda_plateau_step(
            0 if value is None else value.data_ptr(), code, program.state.data_ptr(), program.descriptors.data_ptr(),
            program.table.data_ptr(), program.min_lrs.data_ptr(), program.n_groups, float(epoch),
            program.targets.data_ptr(), program.dtypes.data_ptr(), program.out.data_ptr(),
            stream=api.current_stream(program.device).cuda_stream, device=api.device_index(program.device),
            **scheduler._lrfast_rule())
        self.steps += 1
        if program.host_groups:
            program.stage(self.steps)

    def pull(self, scheduler: PlateauOwner) -> None:
        """Refresh the host mirror from the device: the one sync (NOTE [plateau mirror]);
        nothing when nothing changed since the last pull."""
        if self.pulled == self.steps:
            return
        program = self.program
        values = program.read(self.steps)
        n = program.n_groups
        lrs, slots = values[STATE_SIZE:STATE_SIZE + n], values[STATE_SIZE + n:]
        scheduler._lrfast_set_state(values[:STATE_SIZE])
        composed = scheduler.composed
        if composed:
            scheduler._lrfast_factors = slots.tolist()
        groups = scheduler.optimizer.param_groups
        known = self.known_lrs
        for g in program.host_groups:
            value = float(lrs[g])
            lr = groups[g]["lr"]
            if isinstance(lr, torch.Tensor):
                lr.fill_(value)
            elif not composed and lr is not known.get(g):
                continue  # set by hand since: it stands, and the next step uploads it (torch's rule)
            elif lr != value or composed:
                groups[g]["lr"] = value
            known[g] = groups[g]["lr"]
        self.lrs_pulled = lrs.tolist()
        self.pulled = self.steps

    def last_lr(self, scheduler: PlateauOwner) -> list[float | torch.Tensor]:
        """get_last_lr(): tensors on the device are cloned there (no sync); other groups
        read the mirror."""
        if self.program.host_groups:
            self.pull(scheduler)
        return [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
                for g in scheduler.optimizer.param_groups]
