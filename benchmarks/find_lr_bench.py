"""The LR range test: lrfast.find_lr vs Lightning's Tuner.lr_find, side by side in one run.

    python benchmarks/find_lr_bench.py [--steps 50,200] [--repeats 5] [--threads 1] [--device cpu]
        [--width 64] [--batch 64]

The same MLP (``width`` hidden units, two hidden layers), the same batches (a list of 50
on ``--device``), SGD with momentum, ``early_stop`` off (Lightning: ``early_stop_threshold=None``)
so that every run takes exactly the steps asked for. Each repeat times one whole call of
each contender, in turn, for each step count: Lightning's ``lr_find`` on a Trainer built
beforehand (its checkpoint save and restore included, as a user pays them), and
``lrfast.find_lr`` with torch's SGD and with lrfast's fused SGD (the LR from the kernel's
Schedule), and, as the floor, the same steps in a bare loop. Reported: the median
seconds per call at each step count, the cost per step (the slope between the two step
counts), the fixed cost per call (the intercept), steps per second over the longest run,
and the ratios lrfast / Lightning. A markdown table on stdout (Lightning's progress bar
on stderr). On a GPU: ``--device cuda --threads 0``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="50,200", help="two step counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: leave torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    short, long = sorted(int(s) for s in args.steps.split(","))

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):  # its INFO lines on every call
        logging.getLogger(name).setLevel(logging.ERROR)

    import lrfast
    import lrfast.optim

    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(args.batch, 32, generator=g).to(device), torch.randn(args.batch, 1, generator=g).to(device))
            for _ in range(50)]

    def make_net() -> torch.nn.Module:
        torch.manual_seed(0)
        w = args.width
        return torch.nn.Sequential(torch.nn.Linear(32, w), torch.nn.ReLU(), torch.nn.Linear(w, w), torch.nn.ReLU(),
                                   torch.nn.Linear(w, 1)).to(device)

    def loss_fn(model, batch):
        return torch.nn.functional.mse_loss(model(batch[0]), batch[1])

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_net()

        def training_step(self, batch, batch_idx):
            return loss_fn(self.net, batch)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)

    loader = torch.utils.data.DataLoader(data, batch_size=None)
    scratch = tempfile.mkdtemp(prefix="find_lr_bench_")

    def lightning(n: int) -> float:
        trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=scratch,
                             accelerator="gpu" if device.type == "cuda" else "cpu", devices=1)
        module = Module()
        start = time.perf_counter()
        Tuner(trainer).lr_find(module, train_dataloaders=loader, num_training=n, early_stop_threshold=None,
                               update_attr=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def ours(optimizer_class):
        def run(n: int) -> float:
            model = make_net()
            optimizer = optimizer_class(model.parameters(), lr=0.01, momentum=0.9)
            start = time.perf_counter()
            lrfast.find_lr(model, optimizer, data, loss_fn, num_steps=n, early_stop=False)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start
        return run

    def plain(n: int) -> float:  # the floor: the same steps in a bare loop, no LR changes, nothing recorded
        model = make_net()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
        start = time.perf_counter()
        for k in range(n):
            loss = loss_fn(model, data[k % len(data)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    contenders = {"Lightning Tuner.lr_find (torch SGD)": lightning,
                  "lrfast.find_lr, torch SGD": ours(torch.optim.SGD),
                  "lrfast.find_lr, lrfast.optim.SGD": ours(lrfast.optim.SGD),
                  "a bare training loop, torch SGD (the floor)": plain}
    for run in contenders.values():  # warm-up: imports, Numba kernels, Lightning's first Trainer
        run(short)
    times: dict[str, dict[int, list[float]]] = {name: {short: [], long: []} for name in contenders}
    for _ in range(args.repeats):
        for n in (short, long):
            for name, run in contenders.items():
                times[name][n].append(run(n))

    med = {name: {n: statistics.median(v) for n, v in per.items()} for name, per in times.items()}
    print(f"# find_lr vs Lightning: {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.node()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), lightning {pl.__version__}, device {device}")
    print(f"# command: python {' '.join(sys.argv)}")
    print(f"# MLP 32-{args.width}-{args.width}-1, batch {args.batch}, medians of {args.repeats} calls\n")
    base = "Lightning Tuner.lr_find (torch SGD)"
    base_step = (med[base][long] - med[base][short]) / (long - short)
    print(f"| contender | s/call at {short} steps | s/call at {long} steps | ms/step (slope) | fixed s/call "
          f"| steps/s at {long} | vs Lightning (steps/s) | vs Lightning (ms/step) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in contenders:
        per_step = (med[name][long] - med[name][short]) / (long - short)
        fixed = med[name][short] - short * per_step
        rate = long / med[name][long]
        print(f"| {name} | {med[name][short]:.3f} | {med[name][long]:.3f} | {per_step * 1e3:.3f} | {fixed:.3f} "
              f"| {rate:.0f} | {rate / (long / med[base][long]):.2f}x | {base_step / per_step:.2f}x |")


if __name__ == "__main__":
    main()
