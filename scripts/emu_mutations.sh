#!/usr/bin/env bash
# The mutation check of the emulated kernel tests (docs/emulator.md): builds lrfast._C_emu
# three times, each with one deliberate bug compiled into csrc/cuda/fused_optim.cu (the
# LRFAST_EMU_MUTATION_* guards exist only in the emulated build), and requires that
# tests/test_emu_kernels.py fails on every one of them. Run from an environment where
# `pip install -e ".[test]"` has been done; takes a few minutes (three builds).
#   bash scripts/emu_mutations.sh [MUTATION ...]
set -euo pipefail
cd "$(dirname "$0")/.."

mutations=("$@")
if [ ${#mutations[@]} -eq 0 ]; then
  mutations=(NO_SETUP_BARRIER TICKET_NEVER_RESET LAST_BLOCK_OFF_BY_ONE)
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pybind11_dir="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

survivors=()
for mutation in "${mutations[@]}"; do
  echo "== mutation ${mutation}: building lrfast._C_emu with LRFAST_EMU_MUTATION_${mutation}"
  build="${work}/${mutation}"
  cmake -S . -B "${build}" "${generator[@]}" -DPython_EXECUTABLE="$(command -v python)" \
    -Dpybind11_DIR="${pybind11_dir}" -DLRFAST_CUDA=0 -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="${build}/out" \
    -DLRFAST_EMU_DEFINES="LRFAST_EMU_MUTATION_${mutation}" >"${build}.log" 2>&1
  cmake --build "${build}" --target _C_emu --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-2}" >>"${build}.log" 2>&1 \
    || { cat "${build}.log"; echo "emu_mutations: build of ${mutation} failed"; exit 2; }
  module="$(ls "${build}"/out/_C_emu*.so)"
  if LRFAST_TEST_EMU_MODULE="${module}" python -m pytest -x -q -p no:cacheprovider tests/test_emu_kernels.py \
      >"${build}.test.log" 2>&1; then
    echo "   SURVIVED: every emulated test passed with the bug compiled in"
    survivors+=("${mutation}")
  else
    echo "   caught: $(grep -m1 -E '^(FAILED|ERROR)' "${build}.test.log" || tail -n 1 "${build}.test.log")"
  fi
done
if [ ${#survivors[@]} -ne 0 ]; then
  echo "emu_mutations: not caught by tests/test_emu_kernels.py: ${survivors[*]}"
  exit 1
fi
echo "emu_mutations: every mutation was caught"
