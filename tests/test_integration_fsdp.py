"""FSDP2 (``fully_shard``) on CPU with gloo, two processes, and torch.distributed.checkpoint.

An lrfast scheduler (OneCycleLR: LR and beta1) drives AdamW over FSDP2-sharded
parameters. The sharded run must match a single-process run with torch's own scheduler;
the optimizer + scheduler (+ model) state saves with ``dcp.save`` and loads with
``dcp.load`` into freshly built objects, and the resumed run must continue bit for bit
as the uninterrupted one did.

The workers are spawned processes on a free port of 127.0.0.1 with short collective
timeouts; a watchdog kills them if they outlive the test's deadline.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from distributed_support import run_ranks
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.stateful import Stateful
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

import lrfast.lr_scheduler
from lrfast.optim import AdamW

WORLD = 2
STEPS, SAVE_AT = 12, 5
BATCH = 6  # per rank
DEADLINE_S = 150

def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    # Awkward sizes on purpose: 15 and 7 rows do not split evenly over two ranks.
    return torch.nn.Sequential(torch.nn.Linear(8, 15), torch.nn.Tanh(), torch.nn.Linear(15, 7), torch.nn.Tanh(),
                               torch.nn.Linear(7, 1))


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return AdamW([{"params": list(model[0].parameters()) + list(model[2].parameters()), "lr": 1e-2},
                  {"params": model[4].parameters(), "lr": 3e-3}], weight_decay=0.01)


def _scheduler(module, optimizer):
    return module.OneCycleLR(optimizer, max_lr=[1e-2, 3e-3], total_steps=STEPS, pct_start=0.4)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(STEPS, WORLD * BATCH, 8, generator=g), torch.randn(STEPS, WORLD * BATCH, 1, generator=g)


def _train(model, optimizer, scheduler, steps: range, rank: int | None) -> list[list[float]]:
    """Train over ``steps``; rank None: the whole batch, else this rank's slice of it."""
    x, y = _data()
    lrs = []
    for s in steps:
        rows = slice(None) if rank is None else slice(rank * BATCH, (rank + 1) * BATCH)
        loss = torch.nn.functional.mse_loss(model(x[s, rows]), y[s, rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        lrs.append([g["lr"] for g in optimizer.param_groups] + [g["betas"][0] for g in optimizer.param_groups])
    return lrs


def _full(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded parameters (a collective on a sharded model: every rank calls it)."""
    return {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
            for k, v in model.named_parameters()}


class AppState(Stateful):
    """What a checkpoint holds: model, optimizer (sharded) and scheduler state."""

    def __init__(self, model, optimizer, scheduler) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler

    def state_dict(self) -> dict:
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        return {"model": model_sd, "optim": optim_sd, "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        self.scheduler.load_state_dict(state["scheduler"])


def _sharded(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    model = _model(seed)
    mesh = init_device_mesh("cpu", (WORLD,))  # fully_shard's default mesh is CUDA wherever a GPU is
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optimizer = _optimizer(model)
    return model, optimizer, _scheduler(lrfast.lr_scheduler, optimizer)


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    try:
        result = _run(rank, Path(out_dir))
        if rank == 0:
            torch.save(result, Path(out_dir) / "result.pt")
    finally:
        dist.destroy_process_group()


def _run(rank: int, out_dir: Path) -> dict:
    model, optimizer, scheduler = _sharded(seed=0)
    weight = model[0].weight
    local_rows = weight.to_local().shape[0]
    lrs = _train(model, optimizer, scheduler, range(SAVE_AT), rank)
    dcp.save({"app": AppState(model, optimizer, scheduler)}, checkpoint_id=str(out_dir / "ckpt"))
    lrs += _train(model, optimizer, scheduler, range(SAVE_AT, STEPS), rank)
    params = _full(model)
    scheduler_state = scheduler.state_dict()

    # A fresh model (other weights), optimizer and scheduler, loaded from the checkpoint.
    model2, optimizer2, scheduler2 = _sharded(seed=1)
    dcp.load({"app": AppState(model2, optimizer2, scheduler2)}, checkpoint_id=str(out_dir / "ckpt"))
    resumed_at = scheduler2.last_epoch
    resumed_lrs = _train(model2, optimizer2, scheduler2, range(SAVE_AT, STEPS), rank)
    resumed_params = _full(model2)

    result = {"lrs": lrs, "params": params, "local_rows": local_rows, "resumed_at": resumed_at,
              "resumed_lrs": resumed_lrs, "resumed_params": resumed_params, "scheduler_state": scheduler_state,
              "resumed_scheduler_state": scheduler2.state_dict()}
    if rank == 0:  # the single-process reference: whole batches, torch's scheduler
        ref_model = _model(seed=0)
        ref_optimizer = _optimizer(ref_model)
        ref_scheduler = _scheduler(torch.optim.lr_scheduler, ref_optimizer)
        result["ref_lrs"] = _train(ref_model, ref_optimizer, ref_scheduler, range(STEPS), None)
        result["ref_params"] = {k: v.detach().clone() for k, v in ref_model.named_parameters()}
    return result


pytestmark = pytest.mark.slow  # spawns gloo ranks, each importing torch


@pytest.fixture(scope="module")
def fsdp_result(tmp_path_factory) -> dict:
    out_dir = tmp_path_factory.mktemp("fsdp")
    run_ranks(_worker, str(out_dir), WORLD, DEADLINE_S, "FSDP")
    return torch.load(out_dir / "result.pt", weights_only=False)


def test_parameters_are_sharded(fsdp_result) -> None:
    assert fsdp_result["local_rows"] == 8  # 15 rows over two ranks: 8 here, 7 on rank 1


def test_sharded_run_matches_single_process(fsdp_result) -> None:
    lrs, ref = fsdp_result["lrs"], fsdp_result["ref_lrs"]
    assert len(lrs) == len(ref) == STEPS
    for step, (got, want) in enumerate(zip(lrs, ref)):
        assert got == pytest.approx(want, rel=1e-9, abs=0), step
    assert len({row[0] for row in lrs}) > 3 and len({row[2] for row in lrs}) > 3  # LR and beta1 both cycle
    for name, value in fsdp_result["params"].items():
        torch.testing.assert_close(value, fsdp_result["ref_params"][name], rtol=1e-5, atol=1e-6, msg=name)


def test_dcp_resume_continues_identically(fsdp_result) -> None:
    assert fsdp_result["resumed_at"] == SAVE_AT
    assert fsdp_result["resumed_lrs"] == fsdp_result["lrs"][SAVE_AT:]
    for name, value in fsdp_result["params"].items():
        assert torch.equal(fsdp_result["resumed_params"][name], value), name
    assert fsdp_result["resumed_scheduler_state"] == fsdp_result["scheduler_state"]


def test_no_worker_left_behind(fsdp_result) -> None:
    assert not [p for p in mp.active_children() if p.is_alive()]
