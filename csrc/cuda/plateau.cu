// ReduceLROnPlateau on a device metric: one single-block launch makes torch's decision
// (lrfast/plateau.h, NOTE [plateau state]) and writes every group's LR -- into the
// group's own scalar tensor where it has one, and into a (G,) float64 buffer (the
// scheduler's lr_tensor) -- with the state and the per-group slots in device memory,
// so the host never waits for the device.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <lrfast/plateau.h>

#include <stdexcept>

#include "check.cuh"
#include "scalars.cuh"
#include "cuda_api.h"
#include "launch.cuh"
#include "memory.cuh"

namespace lrfast {
namespace cuda {
namespace {

constexpr int kPlateauThreads = 256;


__global__ void plateau_step_kernel(plateau::Rule rule, std::uintptr_t metric, int metric_dtype,
                                    double* __restrict__ state, const double* __restrict__ descriptors,
                                    double* table, const double* __restrict__ min_lrs, std::int64_t n_groups,
                                    double t, const std::uint64_t* __restrict__ targets,
                                    const std::int32_t* __restrict__ dtypes, double* __restrict__ out) {
  __shared__ bool reduce;
  const auto decision = device_array(state, plateau::kStateSize, "state");
  const auto desc = device_array(descriptors, n_groups * kDescriptorSize, "descriptors");
  const auto slots = device_array(table, kUnknownCount, "table");
  const auto floors = device_array(min_lrs, n_groups, "min_lrs");
  const auto target_of = device_array(targets, n_groups, "targets");
  const auto dtype_of = device_array(dtypes, n_groups, "dtypes");
  const auto values = device_array(out, n_groups, "out");
  // Thread 0 alone reads and updates the decision state; the barrier publishes its verdict.
  if (threadIdx.x == 0) {
    reduce = metric != 0 && plateau::observe(rule, span(decision, 0, plateau::kStateSize),
                                             load_scalar(metric, metric_dtype));
  }
  __syncthreads();
  // Each group touches only its own slot (the host checks the slots are distinct), and
  // reads the rest of the table, which nothing writes.
  for (std::int64_t g = threadIdx.x; g < n_groups; g += blockDim.x) {
    const double* descriptor = span(desc, g * kDescriptorSize, kDescriptorSize);
    const std::int64_t slot = plateau::slot_of(descriptor);
    if (slot < 0) {  // rejected on the host: every group has a slot
      if (values) values[g] = static_cast<double>(NAN);
      continue;
    }
    const std::uintptr_t target = target_of ? static_cast<std::uintptr_t>(target_of[g]) : 0;
    const int dtype = target ? dtype_of[g] : kFloat64;
    // Plain: torch reduces the LR the group's tensor holds (float(group["lr"])), rounding included.
    if (!rule.composed && target) slots[slot] = load_scalar(target, dtype);
    const double before = slots[slot];
    double lr = plateau::step_group(rule, reduce, descriptor, raw(slots), floors[g], t);
    if (target && (rule.composed || !(slots[slot] == before))) {
      store_scalar(target, dtype, lr);
      if (!rule.composed) slots[slot] = lr = load_scalar(target, dtype);  // the LR as stored
    }
    if (values) values[g] = lr;
  }
}

}  // namespace

void plateau_step(const plateau::Rule& rule, std::uintptr_t metric, int metric_dtype, std::uintptr_t state,
                  std::uintptr_t descriptors, std::uintptr_t table, std::uintptr_t min_lrs, std::int64_t n_groups,
                  double step, std::uintptr_t targets, std::uintptr_t dtypes, std::uintptr_t out,
                  std::uintptr_t stream, int device) {
  if (n_groups < 0) throw std::invalid_argument("plateau_step: negative group count");
  if (metric != 0 && (metric_dtype < kFloat32 || metric_dtype > kBFloat16)) {
    throw std::invalid_argument("plateau_step: unsupported metric dtype code");
  }
  if (state == 0 || (n_groups > 0 && (descriptors == 0 || table == 0 || min_lrs == 0))) {
    throw std::invalid_argument("plateau_step: null state, descriptors, table or min_lrs");
  }
  if (targets != 0 && dtypes == 0) throw std::invalid_argument("plateau_step: targets without dtypes");
  DeviceGuard guard(device);
  LRFAST_LAUNCH(1, kPlateauThreads, 0, reinterpret_cast<cudaStream_t>(stream), plateau_step_kernel)(
      rule, metric, metric_dtype, reinterpret_cast<double*>(state), reinterpret_cast<const double*>(descriptors),
      reinterpret_cast<double*>(table), reinterpret_cast<const double*>(min_lrs), n_groups, step,
      reinterpret_cast<const std::uint64_t*>(targets), reinterpret_cast<const std::int32_t*>(dtypes),
      reinterpret_cast<double*>(out));
  LRFAST_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace lrfast
