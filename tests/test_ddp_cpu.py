"""DDP on CPU (gloo, two spawned processes): lrfast AdamW + lrfast OneCycleLR.

Both ranks must hold the same parameters after every step, and those must match a
single-process run over the whole batches (DDP averages the ranks' gradients, and the
mean loss over a whole batch is the average of the two halves' mean losses). The same
workers then train the model sharded with FSDP2 (``fully_shard``: DTensor parameters,
whose local shards the kernel updates). The workers run on a free port of 127.0.0.1;
a watchdog kills them past the deadline.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from distributed_support import run_ranks
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

import lrfast.optim
from lrfast import lr_scheduler

WORLD = 2
STEPS = 20
BATCH = 8  # per rank
DEADLINE_S = 150


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 33), torch.nn.Tanh(), torch.nn.Linear(33, 5), torch.nn.Tanh(),
                               torch.nn.Linear(5, 1))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(STEPS, WORLD * BATCH, 10, generator=g), torch.randn(STEPS, WORLD * BATCH, 1, generator=g)


def _train(model: torch.nn.Module, params, rank: int | None) -> list[list[torch.Tensor]]:
    """AdamW (two groups) + OneCycleLR (LR and beta1); rank None: whole batches."""
    params = list(params)
    optimizer = lrfast.optim.AdamW([{"params": params[:4], "lr": 1e-2}, {"params": params[4:], "lr": 3e-3}],
                                   weight_decay=0.01)
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=[1e-2, 3e-3], total_steps=STEPS, pct_start=0.3)
    x, y = _data()
    history = []
    for step in range(STEPS):
        rows = slice(None) if rank is None else slice(rank * BATCH, (rank + 1) * BATCH)
        loss = torch.nn.functional.mse_loss(model(x[step, rows]), y[step, rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step < STEPS - 1:
            scheduler.step()
        history.append([p.detach().clone() for p in params])
    return history


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    try:
        model = DistributedDataParallel(_model())
        history = _train(model, model.parameters(), rank)
        torch.save(history, Path(out_dir) / f"rank{rank}.pt")
        sharded = _model()
        mesh = init_device_mesh("cpu", (WORLD,))
        for layer in sharded:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        _train(sharded, sharded.parameters(), rank)
        full = [p.full_tensor().detach().clone() for p in sharded.parameters()]  # a collective: every rank
        torch.save({"full": full, "local_rows": sharded[0].weight.to_local().shape[0]},
                   Path(out_dir) / f"fsdp{rank}.pt")
    finally:
        dist.destroy_process_group()


pytestmark = pytest.mark.slow  # spawns gloo ranks, each importing torch


@pytest.fixture(scope="module")
def ddp_histories(tmp_path_factory) -> list:
    out_dir = tmp_path_factory.mktemp("ddp")
    run_ranks(_worker, str(out_dir), WORLD, DEADLINE_S, "DDP")
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)] + \
        [torch.load(out_dir / f"fsdp{r}.pt") for r in range(WORLD)]


def test_ranks_agree_at_every_step(ddp_histories) -> None:
    first, second = ddp_histories[:2]
    assert len(first) == len(second) == STEPS
    for step, (a, b) in enumerate(zip(first, second)):
        for p, q in zip(a, b):
            assert torch.equal(p, q), step


def test_ddp_matches_a_single_process_run(ddp_histories) -> None:
    model = _model()
    reference = _train(model, model.parameters(), None)
    for step, (got, want) in enumerate(zip(ddp_histories[0], reference)):
        for p, q in zip(got, want):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=lambda m, step=step: f"step {step}: {m}")
    assert not torch.equal(reference[0][0], reference[-1][0])  # it trained


def test_fsdp2_sharded_parameters_match_a_single_process_run(ddp_histories) -> None:
    fsdp = ddp_histories[2:]
    assert [r["local_rows"] for r in fsdp] == [17, 16]  # 33 rows over two ranks
    model = _model()
    reference = _train(model, model.parameters(), None)[-1]
    for rank in fsdp:
        for p, q in zip(rank["full"], reference):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_no_worker_left_behind(ddp_histories) -> None:
    assert not [p for p in mp.active_children() if p.is_alive()]
