// Checks of the emulator itself, exposed by lrfast._C_emu for tests/test_emu_kernels.py.
#pragma once

#include <cstdint>

namespace lrfast {
namespace emu {

// Launches a kernel whose threads with threadIdx.x % skip_every == 1 return before the
// block's barrier: the emulator must raise (std::runtime_error).
void selftest_divergent_barrier(unsigned int threads, unsigned int skip_every);

// out[b] = sum of in[b * threads + i] over the block, summed by thread 0 from shared
// memory, with or without the barrier between the stores and the sum.
void selftest_block_sums(const std::int32_t* in, std::int32_t* out, unsigned int blocks, unsigned int threads,
                         bool with_barrier);

// The shims' conversions, element-wise: format 0 = half, 1 = bfloat16.
void selftest_float_to_narrow(const float* in, std::uint16_t* out, std::int64_t n, int format);
void selftest_narrow_to_float(const std::uint16_t* in, float* out, std::int64_t n, int format);

}  // namespace emu
}  // namespace lrfast
