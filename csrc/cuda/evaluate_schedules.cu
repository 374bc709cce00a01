// Evaluates packed schedules for many groups and steps into a device buffer. The
// GPU tests use it to prove that device and host evaluation of schedule.h agree.
#include <lrfast/schedule.h>

#include <algorithm>
#include <stdexcept>

#include "check.cuh"
#include "cuda_api.h"
#include "launch.cuh"
#include "memory.cuh"

namespace lrfast {
namespace cuda {
namespace {

constexpr int kThreadsPerBlock = 256;
constexpr std::int64_t kMaxBlocks = 65535;

__global__ void evaluate_schedules_kernel(const double* __restrict__ descriptors,
                                          std::int64_t n_descriptors,
                                          const double* __restrict__ table,
                                          const double* __restrict__ steps, std::int64_t n_steps,
                                          double* __restrict__ out) {
  const std::int64_t total = n_descriptors * n_steps;
  const auto desc = device_array(descriptors, n_descriptors * kDescriptorSize, "descriptors");
  const auto at = device_array(steps, n_steps, "steps");
  const auto values = device_array(out, total, "out");
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < total; i += stride) {
    const std::int64_t group = i / n_steps;
    values[i] = evaluate(span(desc, group * kDescriptorSize, kDescriptorSize), table, at[i - group * n_steps]);
  }
}

}  // namespace

void evaluate_schedules(std::uintptr_t descriptors, std::int64_t n_descriptors,
                        std::uintptr_t table, std::uintptr_t steps, std::int64_t n_steps,
                        std::uintptr_t out, std::uintptr_t stream, int device) {
  if (n_descriptors < 0 || n_steps < 0) throw std::invalid_argument("evaluate_schedules: negative size");
  const std::int64_t total = n_descriptors * n_steps;
  if (total == 0) return;
  DeviceGuard guard(device);
  const std::int64_t blocks =
      std::min<std::int64_t>(kMaxBlocks, (total + kThreadsPerBlock - 1) / kThreadsPerBlock);
  LRFAST_LAUNCH(static_cast<unsigned>(blocks), kThreadsPerBlock, 0, reinterpret_cast<cudaStream_t>(stream),
                evaluate_schedules_kernel)(
      reinterpret_cast<const double*>(descriptors), n_descriptors,
      reinterpret_cast<const double*>(table), reinterpret_cast<const double*>(steps), n_steps,
      reinterpret_cast<double*>(out));
  LRFAST_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace lrfast
