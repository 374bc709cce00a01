// Host-callable entry points of the CUDA kernels. This header is included by the
// bindings (compiled by the host C++ compiler), so it names no CUDA type: pointers
// and streams travel as integers, exactly as the Python side holds them.
#pragma once

#include <lrfast/plateau.h>

#include <cstdint>
#include <string>

namespace lrfast {
namespace cuda {

// Number of visible CUDA devices; 0 with `why` filled when none can be used.
int device_count(std::string* why);

// out[g * n_steps + s] = evaluate(descriptors + g * kDescriptorSize, table, steps[s])
// for every group g < n_descriptors and step s < n_steps, as one kernel launch on
// `stream` (a cudaStream_t as an integer; 0 = the legacy default stream) of `device`.
// All pointers are device pointers. Throws std::runtime_error naming the failed call.
void evaluate_schedules(std::uintptr_t descriptors, std::int64_t n_descriptors,
                        std::uintptr_t table, std::uintptr_t steps, std::int64_t n_steps,
                        std::uintptr_t out, std::uintptr_t stream, int device);

// Scalar dtypes a written target may have (exported by _C.layout()["scalar_types"], read through
// lrfast/_descriptor.py).
enum ScalarType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// For each group g < n_groups: v = evaluate(descriptor g, step); *targets[g] (of dtype
// dtypes[g]) = v where targets[g] != 0, and out[g] = v when out != 0; step = *counter +
// increment (then *counter += increment) when counter is non-zero, else host_step. One
// single-block launch on `stream` of `device`. targets: uint64 device addresses (or 0 for
// none at all); dtypes: int32 ScalarType codes; out: float64 device buffer of n_groups or 0;
// counter: an int64 device scalar or 0.
void write_scheduled_values(std::uintptr_t descriptors, std::uintptr_t table, std::int64_t n_groups,
                            std::uintptr_t targets, std::uintptr_t dtypes, std::uintptr_t out,
                            std::uintptr_t counter, std::int64_t increment, double host_step, std::uintptr_t stream,
                            int device);

// One ReduceLROnPlateau step (NOTE [plateau state] in lrfast/plateau.h) as one single-block
// launch on `stream` of `device`: when metric != 0, thread 0 reads the metric (a device
// scalar of ScalarType metric_dtype) and updates state (kStateSize float64); then every
// group g < n_groups updates its slot in `table` (float64, device, read-write) and gets its
// LR at schedule step `step`, stored into *targets[g] (dtype dtypes[g]) where targets[g] != 0
// (plain rule: only when it changed, as torch) and into out[g] when out != 0. min_lrs:
// float64 per group. Every descriptor must hold a kPlateau segment, with distinct slots.
void plateau_step(const plateau::Rule& rule, std::uintptr_t metric, int metric_dtype, std::uintptr_t state,
                  std::uintptr_t descriptors, std::uintptr_t table, std::uintptr_t min_lrs, std::int64_t n_groups,
                  double step, std::uintptr_t targets, std::uintptr_t dtypes, std::uintptr_t out,
                  std::uintptr_t stream, int device);

// One fused optimizer step for one bucket (see lrfast/fused_tables.h for the tables and
// csrc/cuda/fused_optim.cu for the kernel). algorithm: fused::Algorithm; dtype: ScalarType
// of params, grads and states. Every address is a device address or 0 where optional
// (lr_tensors, descriptors, tables, step_counter, grad_scale, found_inf); ticket is a
// zeroed uint32 on the device (needed by Adam and by any counter mode). n_chunks: total
// chunks of the bucket (at least 1 for Adam: the step counts advance even for empty
// tensors). counter_mode, counter_next, hold_counter_on_skip: NOTE [schedule step
// counter] in fused_tables.h.
void fused_step(int algorithm, int dtype, std::uintptr_t tensors, std::int64_t n_tensors, std::int64_t n_chunks,
                std::uintptr_t groups, std::uintptr_t lr_tensors, std::uintptr_t lr_descriptors,
                std::uintptr_t lr_table, std::uintptr_t beta1_descriptors, std::uintptr_t beta1_table,
                std::uintptr_t step_counter, int counter_mode, std::int64_t counter_next,
                bool hold_counter_on_skip, std::uintptr_t grad_scale, std::uintptr_t found_inf,
                std::uintptr_t ticket, std::uintptr_t stream, int device);

}  // namespace cuda
}  // namespace lrfast
