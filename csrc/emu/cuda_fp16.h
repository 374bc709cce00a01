// Emulator shim of <cuda_fp16.h>: __half as its 16 bits, with the device's
// round-to-nearest-even conversions (narrow_float.h). Only what the kernels use.
#pragma once

#include "cuda_runtime.h"
#include "narrow_float.h"

struct alignas(2) __half {
  std::uint16_t bits;
  __half() = default;
  __half(float value) : bits(::lrfast::emu::round_to_narrow(value, 5, 10)) {}    // NOLINT: implicit, as CUDA's
  __half(double value) : bits(::lrfast::emu::round_to_narrow(value, 5, 10)) {}   // NOLINT
  operator float() const { return ::lrfast::emu::half_bits_to_float(bits); }    // NOLINT
};

inline float __half2float(__half h) { return static_cast<float>(h); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline __half __double2half(double d) { return __half(d); }
