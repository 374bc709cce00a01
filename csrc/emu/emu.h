// The CPU grid emulator (docs/emulator.md): runs the kernels of csrc/cuda/*.cu, compiled
// as host C++, on one OS thread. Each CUDA thread of a block is a coroutine that runs
// until it reaches __syncthreads() or returns; a block is released from a barrier only
// when every one of its threads waits there. Blocks run one after another. The order in
// which the threads (and the blocks) are visited is selectable, so that a missing
// barrier changes the result instead of hiding behind one lucky interleaving.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

// The built-in index variables, as the CUDA compiler provides them to device code.
struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

// Set by the scheduler before it resumes a thread; read-only to kernels. Plain globals:
// one launch runs at a time (launches are serialised, as on one stream).
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;

namespace lrfast {
namespace emu {

// The order in which the threads of a block are resumed at each phase (between two
// barriers), and in which the blocks of a grid run: forward (0, 1, ...), reversed, or a
// fresh permutation from a seeded generator at every phase and for every grid.
enum class Order { kForward, kReversed, kShuffled };

void set_thread_order(Order order, std::uint64_t seed);
Order thread_order();
std::uint64_t thread_order_seed();
const char* order_name(Order order);
// "forward" / "reversed" / "shuffled"; throws std::invalid_argument naming the value.
Order parse_order(const std::string& name);

// Runs `body` once per thread of every block of `grid`; throws std::runtime_error when a
// barrier is not reached by every thread of a block. `name` labels error messages.
void run_grid(const char* name, dim3 grid, dim3 block, const std::function<void()>& body);

// Suspends the calling thread until every thread of its block waits here.
void syncthreads();

// Number of grids run since the module was loaded (tests check that a launch happened).
std::uint64_t launches();

// Whether a grid is running now (read without waiting for it: tests/test_emu_kernels.py
// checks from another Python thread that the launchers release the GIL).
bool launch_in_progress();

// The CUDA version the emulated driver supports (CUDART_VERSION unless set; 0 = no
// driver): lets tests see what the runtime reports on a machine with an older driver.
int driver_version();
void set_driver_version(int version);

// A kernel bound to its launch configuration; calling it with the kernel's arguments
// runs the grid. Arguments are copied once here, and each thread receives its own copy
// of them, as kernel parameters are on the device.
template <typename... Params>
struct BoundLaunch {
  const char* name;
  void (*kernel)(Params...);
  dim3 grid, block;

  void operator()(Params... args) const {
    run_grid(name, grid, block, [&] { kernel(args...); });
  }
};

template <typename... Params>
BoundLaunch<Params...> bind_launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block) {
  return BoundLaunch<Params...>{name, kernel, grid, block};
}

}  // namespace emu
}  // namespace lrfast
