#!/usr/bin/env bash
# The emulated kernel tests under UndefinedBehaviorSanitizer (docs/emulator.md): builds
# lrfast._C_emu with -fsanitize=undefined (any report aborts) into a temporary directory
# and runs tests/test_emu_kernels.py against it. Run where `pip install -e ".[test]"` was
# done; takes a minute or two. Optional: CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S . -B "${work}" "${generator[@]}" -DPython_EXECUTABLE="$(command -v python)" \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" -DLRFAST_CUDA=0 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="${work}/out" \
  -DLRFAST_EMU_SANITIZE=undefined >"${work}/build.log" 2>&1
cmake --build "${work}" --target _C_emu --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-2}" >>"${work}/build.log" 2>&1 \
  || { cat "${work}/build.log"; exit 2; }
module="$(ls "${work}"/out/_C_emu*.so)"
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LRFAST_TEST_EMU_MODULE="${module}" \
  python -m pytest -q -p no:cacheprovider tests/test_emu_kernels.py "$@"
echo "emu_sanitize: no undefined behaviour reported"
