// Round-to-nearest-even conversions between double/float and the 16-bit formats, as the
// device's __float2half_rn / __float2bfloat16_rn (and their double versions) round: one
// rounding from the exact value, ties to the even significand, overflow to infinity,
// gradual underflow through the subnormals. Used by the cuda_fp16.h / cuda_bf16.h shims.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace lrfast {
namespace emu {

// Bits of `value` rounded to a binary format with `exp_bits` exponent bits and
// `mant_bits` stored significand bits (half: 5, 10; bfloat16: 8, 7). A float argument
// converts to double exactly, so one routine serves both sources. NaN gives 0x7fff, the
// canonical NaN the device's conversions return.
inline std::uint16_t round_to_narrow(double value, int exp_bits, int mant_bits) {
  const std::uint16_t sign = std::signbit(value) ? std::uint16_t(1u << (exp_bits + mant_bits)) : 0;
  const std::uint16_t inf = std::uint16_t(((1u << exp_bits) - 1) << mant_bits);
  if (std::isnan(value)) return 0x7fff;
  const double a = std::fabs(value);
  if (std::isinf(a)) return sign | inf;
  if (a == 0.0) return sign;
  const int bias = (1 << (exp_bits - 1)) - 1;
  const int emin = 1 - bias;
  int e = std::ilogb(a);
  if (e < emin) {
    // Subnormal: an integer multiple of 2^(emin - mant_bits). Scaling by a power of two is
    // exact, and nearbyint rounds ties to even in the default rounding mode; a carry into
    // 2^mant_bits is the smallest normal's encoding.
    return sign | static_cast<std::uint16_t>(std::nearbyint(std::ldexp(a, mant_bits - emin)));
  }
  double q = std::nearbyint(std::ldexp(a, mant_bits - e));  // in [2^m, 2^(m+1)]
  if (q == std::ldexp(1.0, mant_bits + 1)) {
    ++e;
    q = std::ldexp(1.0, mant_bits);
  }
  if (e > bias) return sign | inf;
  const auto significand = static_cast<std::uint32_t>(q) - (1u << mant_bits);
  return sign | static_cast<std::uint16_t>((static_cast<std::uint32_t>(e + bias) << mant_bits) | significand);
}

inline float half_bits_to_float(std::uint16_t bits) {
  const float sign = (bits & 0x8000u) ? -1.0f : 1.0f;
  const int e = (bits >> 10) & 0x1f;
  const int m = bits & 0x3ff;
  if (e == 0x1f) return m ? NAN : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(static_cast<float>(m), -24);
  return sign * std::ldexp(static_cast<float>(m | 0x400), e - 25);
}

inline float bfloat16_bits_to_float(std::uint16_t bits) {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

}  // namespace emu
}  // namespace lrfast
