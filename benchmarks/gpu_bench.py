"""GPU benchmark: lrfast's fused AdamW + cosine schedule against torch, side by side.

    python benchmarks/gpu_bench.py [--quick] [--json out.json] [--markdown out.md]

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
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings

import torch

import lrfast

BYTES_PER_ELEMENT = 28


def gpt2_small_shapes() -> list[tuple[int, ...]]:
    """The 148 parameter tensors of GPT-2 small (124M), as in Hugging Face's layout."""
    d, vocab, ctx, layers = 768, 50257, 1024, 12
    shapes: list[tuple[int, ...]] = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    shapes += [(d,), (d,)]
    return shapes


def sets(quick: bool) -> dict[str, list[tuple[int, ...]]]:
    big = 2**24 if quick else 2**28
    return {
        f"1 x {big // 2**20}M": [(big,)],
        "GPT-2 small (148 tensors)": gpt2_small_shapes(),
        "2,000 small tensors": [(512 + (i % 7) * 64,) for i in range(2000)],
    }


def copy_bandwidth(n: int) -> float:
    src = torch.empty(n, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * 4 * n / statistics.median(times) / 1e9


CONTENDERS = {"lrfast": "lrfast", "torch-fused": "torch fused", "torch-graph": "torch foreach+graph"}


def make_contender(name: str, shapes, seed: int = 0):
    """Parameters with gradients, and one step of ``name`` (built by lrfast.tools.bench, so
    that the CLI report and this script time the very same contenders)."""
    from lrfast.tools.bench.contenders import optimizer_step

    g = torch.Generator(device="cuda").manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, device="cuda", generator=g)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, device="cuda", generator=g) * 1e-3
    warnings.simplefilter("ignore")
    return optimizer_step(CONTENDERS[name], "adamw", params, "cuda"), params


def time_device(step, iters: int) -> float:
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def time_host(step, iters: int) -> float:
    torch.cuda.synchronize()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)
        if len(samples) % 16 == 0:
            torch.cuda.synchronize()  # keep the queue short; not inside the timed region
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available() or not lrfast.cuda_status()[0]:
        print(f"gpu_bench: needs a GPU and lrfast's CUDA kernels: {lrfast.cuda_status()[1]}", file=sys.stderr)
        return 2
    iters = 20 if args.quick else 100
    copy_gbs = copy_bandwidth(2**26 if args.quick else 2**28)
    rows = []
    for set_name, shapes in sets(args.quick).items():
        n = sum(int(torch.Size(s).numel()) for s in shapes)
        result = {"set": set_name, "tensors": len(shapes), "elements": n}
        for contender in ("lrfast", "torch-fused", "torch-graph"):
            step, params = make_contender(contender, shapes)
            seconds = time_device(step, iters)
            result[contender] = {"ms": seconds * 1e3, "GB/s": BYTES_PER_ELEMENT * n / seconds / 1e9}
            if contender != "torch-graph":
                result[contender]["host_us"] = time_host(step, iters) * 1e6
            del step, params
            torch.cuda.empty_cache()
        rows.append(result)
        print(json.dumps(result), flush=True)
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "lrfast": lrfast.__version__,
            "python": platform.python_version(), "copy_GB/s": copy_gbs, "quick": args.quick,
            "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
    lines = [f"Device: {meta['device']}; torch {meta['torch']}; device-to-device copy {copy_gbs:.0f} GB/s; "
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
