// Loading and storing one scalar of a torch dtype (ScalarType codes of cuda_api.h) at a
// raw device address: LR tensors, plateau state, scheduled values.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "cuda_api.h"
#include "memory.cuh"

namespace lrfast {
namespace cuda {

__device__ __forceinline__ double load_scalar(std::uintptr_t address, int dtype) {
  switch (dtype) {
    case kFloat32: return static_cast<double>(*device_array<const float>(address, 1, "scalar"));
    case kFloat64: return *device_array<const double>(address, 1, "scalar");
    case kFloat16: return static_cast<double>(__half2float(*device_array<const __half>(address, 1, "scalar")));
    case kBFloat16:
      return static_cast<double>(__bfloat162float(*device_array<const __nv_bfloat16>(address, 1, "scalar")));
    default: return static_cast<double>(NAN);  // rejected on the host before launch
  }
}

// As torch's fill_(double) stores into a tensor of that dtype: a half or bfloat16 value
// goes through float first (c10::Half and c10::BFloat16 are built from a float).
__device__ __forceinline__ void store_scalar(std::uintptr_t address, int dtype, double value) {
  switch (dtype) {
    case kFloat32: *device_array<float>(address, 1, "scalar") = static_cast<float>(value); break;
    case kFloat64: *device_array<double>(address, 1, "scalar") = value; break;
    case kFloat16: *device_array<__half>(address, 1, "scalar") = __float2half_rn(static_cast<float>(value)); break;
    case kBFloat16:
      *device_array<__nv_bfloat16>(address, 1, "scalar") = __float2bfloat16_rn(static_cast<float>(value));
      break;
    default: break;  // rejected on the host before launch
  }
}

}  // namespace cuda
}  // namespace lrfast
