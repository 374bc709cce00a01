// Emulator shim of <cuda_bf16.h>: __nv_bfloat16 as its 16 bits, with the device's
// round-to-nearest-even conversions (narrow_float.h). Only what the kernels use.
#pragma once

#include "cuda_runtime.h"
#include "narrow_float.h"

struct alignas(2) __nv_bfloat16 {
  std::uint16_t bits;
  __nv_bfloat16() = default;
  __nv_bfloat16(float value) : bits(::lrfast::emu::round_to_narrow(value, 8, 7)) {}   // NOLINT: implicit, as CUDA's
  __nv_bfloat16(double value) : bits(::lrfast::emu::round_to_narrow(value, 8, 7)) {}  // NOLINT
  operator float() const { return ::lrfast::emu::bfloat16_bits_to_float(bits); }      // NOLINT
};

inline float __bfloat162float(__nv_bfloat16 b) { return static_cast<float>(b); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __double2bfloat16(double d) { return __nv_bfloat16(d); }
