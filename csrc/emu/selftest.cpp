// Kernels and conversions that test the emulator itself (selftest.h), written as the
// kernels in csrc/cuda are: shim headers, __shared__, __syncthreads, LRFAST_LAUNCH.
#include "selftest.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "launch.cuh"

namespace lrfast {
namespace emu {
namespace {

constexpr unsigned int kMaxSelftestThreads = 1024;

__global__ void divergent_barrier_kernel(unsigned int skip_every) {
  if (threadIdx.x % skip_every == 1) return;
  __syncthreads();
}

__global__ void block_sums_kernel(const std::int32_t* in, std::int32_t* out, bool with_barrier) {
  __shared__ std::int32_t partial[kMaxSelftestThreads];
  partial[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x];
  if (with_barrier) __syncthreads();
  if (threadIdx.x == 0) {
    std::int32_t sum = 0;
    for (unsigned int i = 0; i < blockDim.x; ++i) sum += partial[i];
    out[blockIdx.x] = sum;
  }
}

}  // namespace

void selftest_divergent_barrier(unsigned int threads, unsigned int skip_every) {
  LRFAST_LAUNCH(1, threads, 0, nullptr, divergent_barrier_kernel)(skip_every == 0 ? 1u : skip_every);
}

void selftest_block_sums(const std::int32_t* in, std::int32_t* out, unsigned int blocks, unsigned int threads,
                         bool with_barrier) {
  if (threads > kMaxSelftestThreads) threads = kMaxSelftestThreads;
  LRFAST_LAUNCH(blocks, threads, 0, nullptr, block_sums_kernel)(in, out, with_barrier);
}

void selftest_float_to_narrow(const float* in, std::uint16_t* out, std::int64_t n, int format) {
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = format == 0 ? __float2half_rn(in[i]).bits : __float2bfloat16_rn(in[i]).bits;
  }
}

void selftest_narrow_to_float(const std::uint16_t* in, float* out, std::int64_t n, int format) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (format == 0) {
      __half h;
      h.bits = in[i];
      out[i] = __half2float(h);
    } else {
      __nv_bfloat16 b;
      b.bits = in[i];
      out[i] = __bfloat162float(b);
    }
  }
}

}  // namespace emu
}  // namespace lrfast
