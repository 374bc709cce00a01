// LRFAST_LAUNCH: the one way the launchers start a kernel, so that the same sources
// build with nvcc (a triple-chevron launch) and for the CPU grid emulator (csrc/emu,
// docs/emulator.md), which runs the kernel's threads as coroutines:
//   LRFAST_LAUNCH(grid, block, shared_bytes, stream, kernel<T>)(arguments...);
// The kernel comes last so that a template argument list may hold commas.
#pragma once

// LRFAST_EMU selects the emulated build (bounds-checked arrays, memory.cuh): never in a
// real CUDA build.
#if defined(__CUDACC__) && defined(LRFAST_EMU)
#error "LRFAST_EMU is for the host-compiled emulator build (lrfast._C_emu) only"
#endif

#include <cuda_runtime.h>

#if defined(__CUDACC__)
#define LRFAST_LAUNCH(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<(grid), (block), (shared_bytes), (stream)>>>
#else
// The emulator ignores the stream (one launch runs at a time, to completion) and
// dynamic shared memory (no kernel here uses it).
#define LRFAST_LAUNCH(grid, block, shared_bytes, stream, ...) \
  ((void)(shared_bytes), (void)(stream), ::lrfast::emu::bind_launch(#__VA_ARGS__, __VA_ARGS__, (grid), (block)))
#endif
