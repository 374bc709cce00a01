// Loading and storing one scalar of a torch dtype (ScalarType codes of cuda_api.h) at a
// raw device address: LR tensors, plateau state, scheduled values.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "cuda_api.h"

namespace lrfast {
namespace cuda {

__device__ __forceinline__ double load_scalar(std::uintptr_t address, int dtype) {
  switch (dtype) {
    case kFloat32: return static_cast<double>(*reinterpret_cast<const float*>(address));
    case kFloat64: return *reinterpret_cast<const double*>(address);
    case kFloat16: return static_cast<double>(__half2float(*reinterpret_cast<const __half*>(address)));
    case kBFloat16: return static_cast<double>(__bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(address)));
    default: return static_cast<double>(NAN);  // rejected on the host before launch
  }
}

// As torch's fill_(double) stores into a tensor of that dtype: a half or bfloat16 value
// goes through float first (c10::Half and c10::BFloat16 are built from a float).
__device__ __forceinline__ void store_scalar(std::uintptr_t address, int dtype, double value) {
  switch (dtype) {
    case kFloat32: *reinterpret_cast<float*>(address) = static_cast<float>(value); break;
    case kFloat64: *reinterpret_cast<double*>(address) = value; break;
    case kFloat16: *reinterpret_cast<__half*>(address) = __float2half_rn(static_cast<float>(value)); break;
    case kBFloat16:
      *reinterpret_cast<__nv_bfloat16*>(address) = __float2bfloat16_rn(static_cast<float>(value));
      break;
    default: break;  // rejected on the host before launch
  }
}

}  // namespace cuda
}  // namespace lrfast
