// The grid emulator's scheduler (emu.h, docs/emulator.md). One launch at a time (a
// mutex): a grid runs block after block on the calling OS thread; inside a block every
// CUDA thread is a coroutine with its own stack, resumed in the selected order until it
// reaches a barrier or returns.
//
// The switch between coroutines is a few lines of assembly on x86-64 (callee-saved
// registers and the FP control words: what a function call must preserve), because
// ucontext's swapcontext makes a signal-mask system call at every switch, which made a
// block of 512 threads cost milliseconds. Elsewhere, and in sanitizer builds, ucontext.
#include "emu.h"
#include "checked.h"

#include "cuda_runtime.h"  // the emulated runtime's CUDART_VERSION

#include <ucontext.h>

#include <algorithm>
#include <map>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#if defined(__x86_64__) && !defined(LRFAST_EMU_SANITIZE) && !defined(_WIN32)
#define LRFAST_EMU_FAST_SWITCH 1
// lrfast_emu_switch(save, next): saves the callee-saved state on the current stack, stores
// the stack pointer in *save, and continues on the stack `next` (saved the same way).
extern "C" void lrfast_emu_switch(void** save, void* next);
asm(R"(
  .text
  .p2align 4
  .globl lrfast_emu_switch
  .hidden lrfast_emu_switch
  .type lrfast_emu_switch, @function
lrfast_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  fnstcw (%rsp)
  stmxcsr 8(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lrfast_emu_switch, .-lrfast_emu_switch
)");
#endif

uint3 threadIdx{0, 0, 0};
uint3 blockIdx{0, 0, 0};
dim3 blockDim{1, 1, 1};
dim3 gridDim{1, 1, 1};

namespace lrfast {
namespace emu {
namespace {

// Enough for the kernels' frames (schedule evaluation, libm calls) with a wide margin;
// sanitizer builds need more.
#if defined(LRFAST_EMU_SANITIZE)
constexpr std::size_t kStackBytes = 512 * 1024;
#else
constexpr std::size_t kStackBytes = 64 * 1024;
#endif
constexpr unsigned int kMaxThreadsPerBlock = 1024;

enum class State { kRunnable, kAtBarrier, kDone };

struct Thread {
#if defined(LRFAST_EMU_FAST_SWITCH)
  void* stack_pointer = nullptr;
#else
  ucontext_t context;
#endif
  State state = State::kRunnable;
};

struct Scheduler {
#if defined(LRFAST_EMU_FAST_SWITCH)
  void* home = nullptr;  // the launcher's stack pointer, to which every thread switches back
#else
  ucontext_t home;
#endif
  std::vector<Thread> threads;
  std::vector<std::unique_ptr<char[]>> stacks;  // kept across launches: allocation is the slow part
  const std::function<void()>* body = nullptr;
  Thread* current = nullptr;
  const char* name = nullptr;  // the running kernel's, for checked.h's reports
  std::string out_of_bounds;   // the first out-of-bounds access of the running grid, or empty
};

std::mutex launch_mutex;  // guards everything below, and the built-ins
Scheduler scheduler;
Order order = Order::kForward;
std::uint64_t seed = 0;
std::mt19937_64 generator(0);
std::uint64_t grid_count = 0;
std::atomic<bool> running{false};
std::atomic<int> emulated_driver{-1};  // -1: the runtime's own version
std::map<std::uintptr_t, std::uintptr_t> allocations;  // begin -> end (checked.h: register_allocation)
std::atomic<bool> have_allocations{false};
alignas(64) unsigned char scratch_bytes[64];

void thread_entry() {
  (*scheduler.body)();
  scheduler.current->state = State::kDone;
#if defined(LRFAST_EMU_FAST_SWITCH)
  void* finished = nullptr;  // this stack is never resumed: it is rebuilt for the next block
  lrfast_emu_switch(&finished, scheduler.home);
#endif
  // ucontext: returning follows uc_link back to `home`
}

// Prepares `t` to start thread_entry on `stack` at its first resume.
void prepare(Thread& t, char* stack) {
  t.state = State::kRunnable;
#if defined(LRFAST_EMU_FAST_SWITCH)
  // The frame lrfast_emu_switch pops: FP control words, six callee-saved registers, then
  // the "return address" thread_entry, entered with the stack aligned as after a call.
  auto top = reinterpret_cast<std::uintptr_t>(stack + kStackBytes) & ~std::uintptr_t(15);
  auto* slots = reinterpret_cast<std::uint64_t*>(top) - 10;
  std::memset(slots, 0, 10 * sizeof(std::uint64_t));
  std::uint16_t fpu_control;
  std::uint32_t mxcsr;
  asm volatile("fnstcw %0" : "=m"(fpu_control));
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  std::memcpy(&slots[0], &fpu_control, sizeof fpu_control);
  std::memcpy(&slots[1], &mxcsr, sizeof mxcsr);
  slots[8] = reinterpret_cast<std::uint64_t>(&thread_entry);  // slots[9]: a null return address
  t.stack_pointer = slots;
#else
  getcontext(&t.context);
  t.context.uc_stack.ss_sp = stack;
  t.context.uc_stack.ss_size = kStackBytes;
  t.context.uc_link = &scheduler.home;
  makecontext(&t.context, thread_entry, 0);
#endif
}

void resume(Thread& t) {
#if defined(LRFAST_EMU_FAST_SWITCH)
  lrfast_emu_switch(&scheduler.home, t.stack_pointer);
#else
  swapcontext(&scheduler.home, &t.context);
#endif
}

// Visiting order of n items for one phase.
void arrange(std::vector<unsigned int>& items, unsigned int n) {
  items.resize(n);
  std::iota(items.begin(), items.end(), 0u);
  if (order == Order::kReversed) std::reverse(items.begin(), items.end());
  if (order == Order::kShuffled) std::shuffle(items.begin(), items.end(), generator);
}

uint3 unflatten(unsigned int i, dim3 shape) {
  return uint3{i % shape.x, (i / shape.x) % shape.y, i / (shape.x * shape.y)};
}

std::string describe_barrier_failure(const char* name, unsigned int block_index, unsigned int barrier) {
  const auto& threads = scheduler.threads;
  std::vector<unsigned int> waiting, exited;
  for (unsigned int i = 0; i < threads.size(); ++i) {
    (threads[i].state == State::kAtBarrier ? waiting : exited).push_back(i);
  }
  auto list = [](const std::vector<unsigned int>& ids) {
    std::string s;
    for (std::size_t k = 0; k < ids.size() && k < 8; ++k) s += (k ? ", " : "") + std::to_string(ids[k]);
    if (ids.size() > 8) s += ", ... (" + std::to_string(ids.size()) + " in all)";
    return s;
  };
  const uint3 b = unflatten(block_index, gridDim);
  return std::string("lrfast emulator: kernel ") + name + ", block (" + std::to_string(b.x) + "," +
         std::to_string(b.y) + "," + std::to_string(b.z) + "): __syncthreads() number " + std::to_string(barrier) +
         " was reached by threads [" + list(waiting) + "] but threads [" + list(exited) +
         "] returned without reaching it; every thread of a block must reach each barrier (thread order " +
         order_name(order) + ")";
}

}  // namespace

const char* order_name(Order o) {
  switch (o) {
    case Order::kForward: return "forward";
    case Order::kReversed: return "reversed";
    case Order::kShuffled: return "shuffled";
  }
  return "?";
}

Order parse_order(const std::string& name) {
  if (name == "forward") return Order::kForward;
  if (name == "reversed") return Order::kReversed;
  if (name == "shuffled") return Order::kShuffled;
  throw std::invalid_argument("emu_set_thread_order: order must be 'forward', 'reversed' or 'shuffled', got '" +
                              name + "'");
}

void set_thread_order(Order o, std::uint64_t s) {
  std::lock_guard<std::mutex> lock(launch_mutex);
  order = o;
  seed = s;
  generator.seed(s);
}

Order thread_order() {
  std::lock_guard<std::mutex> lock(launch_mutex);
  return order;
}

std::uint64_t thread_order_seed() {
  std::lock_guard<std::mutex> lock(launch_mutex);
  return seed;
}

std::uint64_t launches() {
  std::lock_guard<std::mutex> lock(launch_mutex);
  return grid_count;
}

bool launch_in_progress() { return running.load(); }

void report_out_of_bounds(const char* buffer, std::int64_t index, std::int64_t span, std::int64_t count,
                          bool from_allocation) {
  if (!scheduler.out_of_bounds.empty()) return;  // the first one is the one to fix
  const uint3 t = threadIdx, b = blockIdx;
  std::string what = std::string(buffer) + "[" + std::to_string(index);
  if (span > 1) what += ".." + std::to_string(index + span - 1);
  what += "]";
  std::string why;
  if (count < 0) {
    why = "it is a null pointer";
  } else {
    why = from_allocation ? "its registered allocation holds " + std::to_string(count) + " elements"
                          : "the launch gave it " + std::to_string(count) + " elements";
  }
  scheduler.out_of_bounds = std::string("lrfast emulator: kernel ") + (scheduler.name ? scheduler.name : "?") +
                            ", block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," +
                            std::to_string(b.z) + "), thread (" + std::to_string(t.x) + "," + std::to_string(t.y) +
                            "," + std::to_string(t.z) + "): out-of-bounds access to " + what + " (" + why +
                            "); the access was not made";
}

std::int64_t registered_extent(std::uintptr_t address, std::size_t element_size) {
  if (!have_allocations.load(std::memory_order_relaxed)) return -1;
  auto it = allocations.upper_bound(address);  // the first allocation starting after address
  if (it == allocations.begin()) return -1;
  --it;
  if (address >= it->second) return -1;
  return static_cast<std::int64_t>((it->second - address) / element_size);
}

void register_allocation(std::uintptr_t address, std::uint64_t bytes) {
  std::lock_guard<std::mutex> lock(launch_mutex);
  allocations[address] = address + bytes;
  have_allocations.store(true);
}

void clear_allocations() {
  std::lock_guard<std::mutex> lock(launch_mutex);
  allocations.clear();
  have_allocations.store(false);
}

std::uint64_t allocation_count() {
  std::lock_guard<std::mutex> lock(launch_mutex);
  return allocations.size();
}

void* scratch() {
  std::memset(scratch_bytes, 0, sizeof scratch_bytes);
  return scratch_bytes;
}

int driver_version() {
  const int v = emulated_driver.load();
  return v < 0 ? CUDART_VERSION : v;
}

void set_driver_version(int version) { emulated_driver.store(version); }

void syncthreads() {
  Thread* self = scheduler.current;
  if (self == nullptr) throw std::logic_error("lrfast emulator: __syncthreads() outside a kernel");
  self->state = State::kAtBarrier;
#if defined(LRFAST_EMU_FAST_SWITCH)
  lrfast_emu_switch(&self->stack_pointer, scheduler.home);
#else
  swapcontext(&self->context, &scheduler.home);
#endif
}

void run_grid(const char* name, dim3 grid, dim3 block, const std::function<void()>& body) {
  const std::uint64_t n_blocks = std::uint64_t(grid.x) * grid.y * grid.z;
  const std::uint64_t n_threads = std::uint64_t(block.x) * block.y * block.z;
  if (n_threads == 0 || n_threads > kMaxThreadsPerBlock || n_blocks == 0) {
    // The device's "invalid configuration argument", raised at the launch.
    throw std::runtime_error(std::string("lrfast emulator: kernel ") + name + ": invalid launch configuration (" +
                             std::to_string(n_blocks) + " blocks of " + std::to_string(n_threads) + " threads)");
  }
  std::lock_guard<std::mutex> lock(launch_mutex);
  ++grid_count;
  struct Running {
    Running() { running.store(true); }
    ~Running() { running.store(false); }
  } running_now;
  auto& threads = scheduler.threads;
  threads.resize(n_threads);
  while (scheduler.stacks.size() < n_threads) scheduler.stacks.emplace_back(new char[kStackBytes]);
  scheduler.body = &body;
  scheduler.name = name;
  scheduler.out_of_bounds.clear();
  gridDim = grid;
  blockDim = block;
  std::vector<unsigned int> blocks, visit;
  // The block order follows the thread order: a kernel must not depend on either.
  arrange(blocks, static_cast<unsigned int>(n_blocks));
  for (const unsigned int b : blocks) {
    blockIdx = unflatten(b, grid);
    for (unsigned int i = 0; i < n_threads; ++i) prepare(threads[i], scheduler.stacks[i].get());
    for (unsigned int barrier = 1;; ++barrier) {
      arrange(visit, static_cast<unsigned int>(n_threads));
      for (const unsigned int i : visit) {
        Thread& t = threads[i];
        if (t.state != State::kRunnable) continue;
        threadIdx = unflatten(i, block);
        scheduler.current = &t;
        resume(t);
      }
      scheduler.current = nullptr;
      const auto waiting = std::count_if(threads.begin(), threads.end(),
                                         [](const Thread& t) { return t.state == State::kAtBarrier; });
      if (waiting == 0) break;  // every thread returned
      if (static_cast<std::uint64_t>(waiting) != n_threads) {
        throw std::runtime_error(describe_barrier_failure(name, b, barrier));
      }
      for (Thread& t : threads) t.state = State::kRunnable;
    }
    // An out-of-bounds access stops the grid after its block (checked.h).
    if (!scheduler.out_of_bounds.empty()) throw std::runtime_error(scheduler.out_of_bounds);
  }
}

}  // namespace emu
}  // namespace lrfast
