"""GPU benchmark: lrfast's fused AdamW + cosine schedule against torch, side by side.

    python benchmarks/gpu_bench.py [--quick | --emulated] [--json out.json] [--markdown out.md]

Contenders, on the same parameters and gradients, each timed with CUDA events (median of
many steps after warm-up), one `opt.step(); sched.step()` per step:
  lrfast          lrfast.optim.AdamW + lrfast CosineAnnealingLR (schedule in the kernel)
  torch-fused     torch.optim.AdamW(fused=True) + torch CosineAnnealingLR
  torch-graph     torch.optim.AdamW(foreach=True, capturable=True, lr=tensor) stepped in a
                  CUDA graph (the schedule written into the lr tensor by lrfast's writer
                  inside the same graph, since torch's schedulers cannot be captured)
Sets: one 256M-element tensor; GPT-2-small shapes (148 tensors, 124M elements); 2,000
small tensors. GB/s counts 28 bytes per element (read p, g, m, v; write p, m, v), and is
reported beside a device-to-device copy measured in the same run. The host cost of
`opt.step(); sched.step()` is timed separately (perf_counter, no sync, median).

``--emulated`` runs the same contenders and report on lrfast's emulated device (the CPU
standing for the GPU, kernels from lrfast._C_emu: docs/emulated-device.md) at a tiny size,
timed with perf_counter: it checks the script end to end where there is no GPU (CI); its
numbers say nothing about a GPU. torch's own steps cannot be captured off a GPU, so there
the "graph" contender runs its graph's contents (torch AdamW with a tensor lr, lrfast's LR
writer) eagerly, without ``capturable`` (so with torch's for-loop, not foreach).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import torch

import lrfast

BYTES_PER_ELEMENT = 28


def gpt2_small_shapes(d: int = 768, vocab: int = 50257, ctx: int = 1024, layers: int = 12) -> list[tuple[int, ...]]:
    """The 148 parameter tensors of GPT-2 small (124M), as in Hugging Face's layout (smaller
    widths: the same layout, smaller)."""
    shapes: list[tuple[int, ...]] = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    shapes += [(d,), (d,)]
    return shapes


def sets(quick: bool, emulated: bool = False) -> dict[str, list[tuple[int, ...]]]:
    if emulated:  # the emulator runs each CUDA thread as a coroutine: tiny sizes
        return {
            "1 x 4K (emulated)": [(4096,)],
            "GPT-2 layout, d=8 (148 tensors, emulated)": gpt2_small_shapes(d=8, vocab=64, ctx=16),
            "20 small tensors (emulated)": [(8 + (i % 7) * 4,) for i in range(20)],
        }
    big = 2**24 if quick else 2**28
    return {
        f"1 x {big // 2**20}M": [(big,)],
        "GPT-2 small (148 tensors)": gpt2_small_shapes(),
        "2,000 small tensors": [(512 + (i % 7) * 64,) for i in range(2000)],
    }


class Device:
    """Where the benchmark runs: the GPU (CUDA events, CUDA graphs) or, with ``emulated``,
    lrfast's emulated device (CPU tensors, perf_counter)."""

    def __init__(self, emulated: bool) -> None:
        self.emulated = emulated
        self.name = "cpu" if emulated else "cuda"

    def synchronize(self) -> None:
        if not self.emulated:
            torch.cuda.synchronize()

    def time_once(self, fn) -> float:
        """Seconds ``fn()`` takes on the device."""
        if self.emulated:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def description(self) -> str:
        if self.emulated:
            return f"emulated device (lrfast._C_emu on the CPU, {platform.machine()}, {os.cpu_count()} cores)"
        return torch.cuda.get_device_name()


def copy_bandwidth(device: Device, n: int) -> float:
    src = torch.empty(n, device=device.name)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = [device.time_once(lambda: dst.copy_(src)) for _ in range(20)]
    return 2 * 4 * n / statistics.median(times) / 1e9


CONTENDERS = {"lrfast": "lrfast", "torch-fused": "torch fused", "torch-graph": "torch foreach+graph"}


def make_contender(name: str, shapes, device: Device, seed: int = 0):
    """Parameters with gradients, and one step of ``name`` (built by lrfast.tools.bench, so
    that the CLI report and this script time the very same contenders)."""
    from lrfast.tools.bench.contenders import optimizer_step

    g = torch.Generator(device=device.name).manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, device=device.name, generator=g)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, device=device.name, generator=g) * 1e-3
    warnings.simplefilter("ignore")
    if device.emulated and name == "torch-graph":
        return graph_contents_eagerly(params), params
    return optimizer_step(CONTENDERS[name], "adamw", params, device.name), params


def graph_contents_eagerly(params):
    """The "torch-graph" contender's step without the capture (the emulated device: torch's
    steps cannot be captured off a GPU): torch AdamW(tensor lr) and lrfast's writer."""
    from lrfast import lr_scheduler, schedules

    lr = torch.tensor(1e-3)
    # a tensor lr needs capturable=True (GPU only) with foreach: the for-loop takes it
    opt = torch.optim.AdamW(params, lr=lr, foreach=False, weight_decay=0.01)
    counter = torch.zeros((), dtype=torch.int64)
    write_lr = lr_scheduler.graph_lr_step([lr], [schedules.cosine_annealing(1e-3, 10_000)], counter)

    def step() -> None:
        opt.step()
        write_lr()
    return step


def time_device(device: Device, step, iters: int) -> float:
    for _ in range(5):
        step()
    device.synchronize()
    return statistics.median(device.time_once(step) for _ in range(iters))


def time_host(device: Device, step, iters: int) -> float:
    device.synchronize()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)
        if len(samples) % 16 == 0:
            device.synchronize()  # keep the queue short; not inside the timed region
    return statistics.median(samples)


def _writable_file(parser: argparse.ArgumentParser, option: str, path: str | None) -> None:
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"{option}: the folder {folder!r} of {path!r} does not exist")


def main() -> int:
    parser = argparse.ArgumentParser(description="lrfast's fused AdamW + cosine against torch's on the GPU.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sets and fewer steps (16M-element tensor)")
    mode.add_argument("--emulated", action="store_true",
                      help="on lrfast's emulated device (the CPU, lrfast._C_emu) at a tiny size: checks the script "
                           "without a GPU; the numbers say nothing about a GPU")
    parser.add_argument("--json", default=None, help="write the rows and the run's description here")
    parser.add_argument("--markdown", default=None, help="write the table here")
    args = parser.parse_args()
    _writable_file(parser, "--json", args.json)
    _writable_file(parser, "--markdown", args.markdown)
    device = Device(args.emulated)
    if args.emulated:
        from lrfast._backend import device_api

        try:
            api = device_api.emulated("forward")
        except RuntimeError as exc:
            print(f"gpu_bench: --emulated: {exc}", file=sys.stderr)
            return 2
        before = api.kernels().emu_launch_count()
        with device_api.use(api):
            status = run(args, device)
        launches = api.kernels().emu_launch_count() - before
        print(f"gpu_bench: {launches} kernel launches on the emulated device")
        if launches == 0:
            print("gpu_bench: --emulated: lrfast launched no kernel on the emulated device", file=sys.stderr)
            return 1
        return status
    if not torch.cuda.is_available() or not lrfast.cuda_status()[0]:
        print(f"gpu_bench: needs a GPU and lrfast's CUDA kernels: {lrfast.cuda_status()[1]}", file=sys.stderr)
        return 2
    return run(args, device)


def run(args: argparse.Namespace, device: Device) -> int:
    iters = 5 if args.emulated else 20 if args.quick else 100
    copy_gbs = copy_bandwidth(device, 2**20 if args.emulated else 2**26 if args.quick else 2**28)
    rows = []
    for set_name, shapes in sets(args.quick, args.emulated).items():
        n = sum(int(torch.Size(s).numel()) for s in shapes)
        result = {"set": set_name, "tensors": len(shapes), "elements": n}
        for contender in ("lrfast", "torch-fused", "torch-graph"):
            step, params = make_contender(contender, shapes, device)
            seconds = time_device(device, step, iters)
            result[contender] = {"ms": seconds * 1e3, "GB/s": BYTES_PER_ELEMENT * n / seconds / 1e9}
            if contender != "torch-graph":
                result[contender]["host_us"] = time_host(device, step, iters) * 1e6
            del step, params
            if not device.emulated:
                torch.cuda.empty_cache()
        rows.append(result)
        print(json.dumps(result), flush=True)
    meta = {"device": device.description(), "torch": torch.__version__, "lrfast": lrfast.__version__,
            "python": platform.python_version(), "copy_GB/s": copy_gbs, "quick": args.quick, "emulated": args.emulated,
            "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
    copy_name = "host copy" if args.emulated else "device-to-device copy"
    lines = [f"Device: {meta['device']}; torch {meta['torch']}; Python {meta['python']}; "
             f"{copy_name} {copy_gbs:.0f} GB/s; "
             f"{meta['date']}; `{meta['command']}`", "",
             "| set | lrfast ms (GB/s, % of copy) | torch fused ms (GB/s) | torch foreach+graph ms (GB/s) | "
             "lrfast vs fused | lrfast vs graph | host µs lrfast / torch fused |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b, c = r["lrfast"], r["torch-fused"], r["torch-graph"]
        lines.append(
            f"| {r['set']} | {a['ms']:.3f} ({a['GB/s']:.0f}, {100 * a['GB/s'] / copy_gbs:.0f}%) | "
            f"{b['ms']:.3f} ({b['GB/s']:.0f}) | {c['ms']:.3f} ({c['GB/s']:.0f}) | {b['ms'] / a['ms']:.2f}x | "
            f"{c['ms'] / a['ms']:.2f}x | {a['host_us']:.1f} / {b['host_us']:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
