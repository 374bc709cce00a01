// Writes each param group's scheduled value into that group's own scalar tensor (a
// tensor `lr`, or a momentum / beta1 tensor) and, when asked, into one (G,) float64
// buffer (a scheduler's lr_tensor): one launch for all groups, no host sync.
// The step comes either from the host (a kernel argument) or from a device counter
// that the kernel advances, so the launch can be captured in a CUDA graph and replayed.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <lrfast/schedule.h>

#include <stdexcept>

#include "check.cuh"
#include "scalars.cuh"
#include "cuda_api.h"
#include "launch.cuh"
#include "memory.cuh"

namespace lrfast {
namespace cuda {
namespace {

constexpr int kWriterThreads = 256;


__global__ void write_scheduled_values_kernel(const double* __restrict__ descriptors,
                                              const double* __restrict__ table, std::int64_t n_groups,
                                              const std::uint64_t* __restrict__ targets,
                                              const std::int32_t* __restrict__ dtypes,
                                              double* __restrict__ out, std::int64_t* counter,
                                              std::int64_t increment, double host_step) {
  __shared__ double step;
  const auto desc = device_array(descriptors, n_groups * kDescriptorSize, "descriptors");
  const auto target_of = device_array(targets, n_groups, "targets");
  const auto dtype_of = device_array(dtypes, n_groups, "dtypes");
  const auto values = device_array(out, n_groups, "out");
  const auto count = device_array(counter, 1, "counter");
  // Only thread 0 touches the counter: it reads the step every thread uses and, after
  // the barrier, advances it; no other thread reads it, so no second barrier is needed.
  if (threadIdx.x == 0) step = count ? static_cast<double>(*count + increment) : host_step;
  __syncthreads();
  for (std::int64_t g = threadIdx.x; g < n_groups; g += blockDim.x) {
    const double value = evaluate(span(desc, g * kDescriptorSize, kDescriptorSize), table, step);
    const std::uintptr_t target = target_of ? static_cast<std::uintptr_t>(target_of[g]) : 0;
    if (target) store_scalar(target, dtype_of[g], value);  // 0: a group with no tensor of its own
    if (values) values[g] = value;
  }
  if (count && threadIdx.x == 0) *count += increment;
}

}  // namespace

void write_scheduled_values(std::uintptr_t descriptors, std::uintptr_t table, std::int64_t n_groups,
                            std::uintptr_t targets, std::uintptr_t dtypes, std::uintptr_t out,
                            std::uintptr_t counter, std::int64_t increment, double host_step, std::uintptr_t stream,
                            int device) {
  if (n_groups < 0) throw std::invalid_argument("write_scheduled_values: negative group count");
  if (targets != 0 && dtypes == 0) throw std::invalid_argument("write_scheduled_values: targets without dtypes");
  if (n_groups == 0 && counter == 0) return;
  DeviceGuard guard(device);
  LRFAST_LAUNCH(1, kWriterThreads, 0, reinterpret_cast<cudaStream_t>(stream), write_scheduled_values_kernel)(
      reinterpret_cast<const double*>(descriptors), reinterpret_cast<const double*>(table), n_groups,
      reinterpret_cast<const std::uint64_t*>(targets), reinterpret_cast<const std::int32_t*>(dtypes),
      reinterpret_cast<double*>(out), reinterpret_cast<std::int64_t*>(counter), increment, host_step);
  LRFAST_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace lrfast
