// An out-of-tree CUDA optimizer (Lion) that evaluates lrfast's schedule in its own kernel.
// Built against the headers lrfast installs (find_package(lrfast CONFIG), lrfast::headers).
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <lrfast/schedule.h>

#include <cstdint>
#include <stdexcept>
#include <string>

static_assert(LRFAST_LAYOUT_VERSION == 1, "this example reads descriptor layout version 1");

namespace {

__global__ void lion_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ exp_avg,
                            std::int64_t n, const double* __restrict__ descriptor, const double* __restrict__ table,
                            const std::int64_t* __restrict__ step_counter, double host_step, float beta1,
                            float beta2, float weight_decay) {
  __shared__ float lr;
  if (threadIdx.x == 0) {
    const double step = step_counter ? static_cast<double>(*step_counter) : host_step;
    lr = static_cast<float>(lrfast::evaluate(descriptor, table, step));
  }
  __syncthreads();
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float g = grad[i];
    const float c = beta1 * exp_avg[i] + (1.0f - beta1) * g;
    const float update = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : 0.0f);
    param[i] = param[i] * (1.0f - lr * weight_decay) - lr * update;
    exp_avg[i] = beta2 * exp_avg[i] + (1.0f - beta2) * g;
  }
}

void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("lion_cuda: ") + call + " failed: " + cudaGetErrorString(status));
  }
}

// All pointers are device addresses; step_counter may be 0 (then host_step is used).
void lion_step(std::uintptr_t param, std::uintptr_t grad, std::uintptr_t exp_avg, std::int64_t n,
               std::uintptr_t descriptor, std::uintptr_t table, std::uintptr_t step_counter, double host_step,
               double beta1, double beta2, double weight_decay, std::uintptr_t stream) {
  if (n <= 0) return;
  const int threads = 256;
  const std::int64_t blocks64 = (n + threads - 1) / threads;
  const int blocks = static_cast<int>(blocks64 < 4096 ? blocks64 : 4096);
  lion_kernel<<<blocks, threads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<float*>(param), reinterpret_cast<const float*>(grad), reinterpret_cast<float*>(exp_avg), n,
      reinterpret_cast<const double*>(descriptor), reinterpret_cast<const double*>(table),
      reinterpret_cast<const std::int64_t*>(step_counter), host_step, static_cast<float>(beta1),
      static_cast<float>(beta2), static_cast<float>(weight_decay));
  check(cudaGetLastError(), "lion_kernel launch");
}

}  // namespace

PYBIND11_MODULE(lion_cuda_ext, m) {
  m.def("lion_step", &lion_step, "One Lion step on raw device pointers, LR from an lrfast descriptor.");
  m.attr("layout_version") = lrfast::kLayoutVersion;
}
