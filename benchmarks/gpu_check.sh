#!/usr/bin/env bash
# One command for the lent GPU machine (device tool): build in place, run the GPU tests,
# run the GPU benchmarks, write logs and a summary under $OUT. Budget: under 10 minutes
# (build <= 200 s, tests <= 200 s, the Python CUDA layer's suite <= 90 s, benchmarks <= 70 s).
#   run: bash benchmarks/gpu_check.sh            (OUT defaults to ./gpu-out)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
summary="$OUT/summary.md"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

note "# lrfast GPU check — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$OUT/nvidia-smi.txt" \
  | sed 's/^/    /' >> "$summary"

start=$(date +%s)
# Build for the visible GPU only (setup.py reads its arch from nvidia-smi), into this python.
if ! timeout 200 env LRFAST_CUDA=1 python -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1; then
  note "BUILD FAILED (see build.log)"; tail -30 "$OUT/build.log" >> "$summary"; exit 1
fi
note "build: ok in $(( $(date +%s) - start )) s"
python -c "import lrfast; lrfast.info()" 2>&1 | tee "$OUT/info.txt" | sed 's/^/    /' >> "$summary"

# GPU tests (and the CUDA Lion example). pytest-benchmark may be absent there: then no flag.
bench_flag=""
if python -c "import pytest_benchmark" 2>/dev/null; then bench_flag="--benchmark-disable"; fi
t0=$(date +%s)
timeout 200 python -m pytest -q -p no:cacheprovider -rs $bench_flag --maxfail=25 \
  tests/test_gpu_schedules.py tests/test_gpu_lr_scheduler.py tests/test_gpu_plateau.py tests/test_lr_tensor_gpu.py \
  tests/test_gpu_optim.py tests/test_gpu_lr_finder.py tests/test_examples_lion.py tests/test_cuda_optim_layout.py \
  > "$OUT/gpu-tests.log" 2>&1
rc=$?
note "gpu tests: exit $rc in $(( $(date +%s) - t0 )) s — $(tail -n 1 "$OUT/gpu-tests.log")"
grep -E "^(FAILED|ERROR)" "$OUT/gpu-tests.log" | head -40 >> "$summary"

# The Python CUDA layer's suite (docs/emulated-device.md): the same assertions on the real GPU
# (its "cuda" variants) and, where _C_emu was built, on the emulated device in three thread orders.
t0=$(date +%s)
timeout 90 python -m pytest -q -p no:cacheprovider -rs --maxfail=25 tests/test_cuda_python_layer.py \
  > "$OUT/cuda-layer-tests.log" 2>&1
layer_rc=$?
note "python cuda layer tests (real GPU + emulated): exit $layer_rc in $(( $(date +%s) - t0 )) s — \
$(tail -n 1 "$OUT/cuda-layer-tests.log")"
grep -E "^(FAILED|ERROR)" "$OUT/cuda-layer-tests.log" | head -40 >> "$summary"
if [ "$rc" -eq 0 ]; then rc=$layer_rc; fi

# GPU benchmarks (quick sizes: 16M-element single tensor, GPT-2 small, 2,000 small tensors).
t0=$(date +%s)
timeout 70 python benchmarks/gpu_bench.py --quick --json "$OUT/gpu_bench.json" --markdown "$OUT/gpu_bench.md" \
  > "$OUT/gpu-bench.log" 2>&1
note "gpu bench: exit $? in $(( $(date +%s) - t0 )) s"
cat "$OUT/gpu_bench.md" >> "$summary" 2>/dev/null
note "total: $(( $(date +%s) - start )) s"
exit $rc
