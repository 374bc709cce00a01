#!/usr/bin/env bash
# One command for the lent GPU machine (device tool): build in place, run the GPU tests and
# the Python CUDA layer's suite, run the GPU benchmark, and leave every number
# docs/benchmarks.md's GPU section needs in one file, $OUT/summary.md (logs beside it).
#   bash benchmarks/gpu_check.sh              on the GPU machine (OUT defaults to ./gpu-out)
#   bash benchmarks/gpu_check.sh --emulated   anywhere: the same steps on the emulated device
#                                             (docs/emulated-device.md), the benchmark tiny
# Each step has its own time limit and a failed step does not stop the ones after it: the
# summary says which failed. On the GPU machine the limits add up to 7 min 50 s (its calls
# allow 10 min; the check must finish within 8): machine description 30 s, build 170 s,
# `lrfast info` 25 s, GPU tests 110 s, the Python CUDA layer's suite 75 s, benchmark 60 s.
# --emulated multiplies them by GPU_CHECK_TIME_SCALE (default 3: CI's two shared cores
# against the GPU machine's 16). Exit status: 0 when every step passed and the summary
# holds what it must (checked at the end), else 1.
# The install is the GPU machine's: its python3 (torch 2.11 there, Python 3.12, setuptools
# older than 77), `pip install --no-build-isolation --no-deps -e .`, no package index.
set -uo pipefail
cd "$(dirname "$0")/.."

emulated=0
case "${1:-}" in
  "") ;;
  --emulated) emulated=1 ;;
  *) echo "gpu_check.sh: unknown argument ${1@Q} (the only option is --emulated)" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
summary="$OUT/summary.md"
: > "$summary"
export PIP_NO_INDEX=1 PYTHONUNBUFFERED=1
failed=()
note() { echo "$*" | tee -a "$summary"; }
indent() { sed 's/^/    /' >> "$summary"; }
# step NAME SECONDS LOG COMMAND...: run with a time limit (scaled), note its status and time
step() {
  local name=$1 limit=$(( $2 * scale )) log=$3; shift 3
  local t0=$SECONDS rc
  timeout "$limit" "$@" > "$OUT/$log" 2>&1
  rc=$?
  local how="exit $rc"
  if [ "$rc" -eq 124 ]; then how="TIMED OUT after $limit s"; fi
  if [ "$rc" -ne 0 ]; then failed+=("$name"); how="FAILED ($how)"; else how="ok"; fi
  note "- $name: $how in $(( SECONDS - t0 )) s ($log)"
  return "$rc"
}

scale=1
if [ "$emulated" -eq 1 ]; then
  scale=${GPU_CHECK_TIME_SCALE:-3}
  mode="emulated device (lrfast._C_emu on the CPU); the benchmark at a tiny size: its numbers say nothing about a GPU"
  export LRFAST_CUDA=0  # the emulator module is built either way; nvcc is not needed
else
  mode="GPU"
  export LRFAST_CUDA=1  # setup.py builds for the visible GPU only (its arch from nvidia-smi)
fi

note "# lrfast GPU check — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note ""
note "Mode: $mode; time limits x$scale. Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
note ""
note "## Machine"
{
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  else
    echo "nvidia-smi: not on this machine"
  fi
  if command -v nvcc > /dev/null; then nvcc --version | tail -n 1; else echo "nvcc: not on this machine"; fi
  echo "cpu: $(nproc) cores, $(uname -m), $(uname -r)"
  timeout $(( 20 * scale )) "$PYTHON" -c "import platform, torch, numpy, setuptools; print('python', platform.python_version(), \
'| torch', torch.__version__, '(cuda', str(torch.version.cuda) + ')', '| numpy', numpy.__version__, \
'| setuptools', setuptools.__version__)" 2>&1
  timeout $(( 10 * scale )) "$PYTHON" -c "import numba; print('numba', numba.__version__)" 2>&1
} | tee "$OUT/machine.txt" | indent
note ""
note "## Steps"

start=$SECONDS
step "build (pip install --no-build-isolation --no-deps -e ., LRFAST_CUDA=$LRFAST_CUDA)" 170 build.log \
  "$PYTHON" -m pip install --no-build-isolation --no-deps -e .
step "lrfast info" 25 info.log "$PYTHON" -m lrfast info

# pytest-benchmark may be absent: then no flag
bench_flag=()
if "$PYTHON" -c "import pytest_benchmark" 2>/dev/null; then bench_flag=(--benchmark-disable); fi
# The GPU tests (and the CUDA Lion example): on the emulated device they skip at import,
# saying why, which still checks that every file imports and collects.
step "GPU tests" 110 gpu-tests.log "$PYTHON" -m pytest -q -p no:cacheprovider -rs \
  "${bench_flag[@]}" --maxfail=25 tests/test_gpu_schedules.py tests/test_gpu_lr_scheduler.py \
  tests/test_gpu_plateau.py tests/test_lr_tensor_gpu.py tests/test_gpu_optim.py tests/test_gpu_lr_finder.py tests/test_examples_lion.py \
  tests/test_cuda_optim_layout.py
# The Python CUDA layer's suite (docs/emulated-device.md): its "cuda" variants on the GPU
# (they skip, saying why, without one) and its emulated variants in three thread orders.
step "Python CUDA layer tests (GPU variants + emulated)" 75 cuda-layer-tests.log \
  "$PYTHON" -m pytest -q -p no:cacheprovider -rs "${bench_flag[@]}" --maxfail=25 tests/test_cuda_python_layer.py
for log in gpu-tests.log cuda-layer-tests.log; do
  note "  - $log: $(tail -n 1 "$OUT/$log" 2>/dev/null)"
  grep -E "^(FAILED|ERROR)" "$OUT/$log" 2>/dev/null | head -40 | indent
done

bench_args=(--quick)
if [ "$emulated" -eq 1 ]; then bench_args=(--emulated); fi
step "benchmark (gpu_bench.py ${bench_args[*]})" 60 gpu-bench.log \
  "$PYTHON" benchmarks/gpu_bench.py "${bench_args[@]}" --json "$OUT/gpu_bench.json" --markdown "$OUT/gpu_bench.md"
note "- total: $(( SECONDS - start )) s"
note ""
note "## Benchmark"
if [ -s "$OUT/gpu_bench.md" ]; then cat "$OUT/gpu_bench.md" >> "$summary"; else note "(no table: see gpu-bench.log)"; fi
note ""
note "The rows as measured (gpu_bench.json):"
if [ -s "$OUT/gpu_bench.json" ]; then indent < "$OUT/gpu_bench.json"; fi

# The summary must hold what docs/benchmarks.md's GPU section takes from it.
missing=()
grep -q "^- build .*: ok" "$summary" || missing+=("a successful build")
grep -q "^| set | lrfast ms" "$summary" || missing+=("the benchmark table")
[ "$(grep -c '^| .* | .*x | .*x | .* / .* |$' "$summary")" -eq 3 ] || missing+=("three benchmark rows")
grep -q '"copy_GB/s"' "$summary" || missing+=("the copy bandwidth")
grep -q "^    python 3" "$summary" || missing+=("the Python and torch versions")
note ""
if [ "${#missing[@]}" -gt 0 ]; then
  note "SUMMARY INCOMPLETE: no $(IFS=,; echo "${missing[*]}" | sed 's/,/, no /g')"
  failed+=("summary")
fi
if [ "${#failed[@]}" -gt 0 ]; then
  note "RESULT: FAILED: $(IFS=';'; echo "${failed[*]}")"
  exit 1
fi
note "RESULT: every step passed"
