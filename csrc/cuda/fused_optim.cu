// The fused optimizer step: one launch per bucket (tensors of one device and dtype) for
// every group and tensor. Each block walks one chunk of one tensor; its first thread
// finds the tensor, evaluates the group's LR (and beta1 / momentum when scheduled) from
// the step count and the group's descriptor, and computes the bias corrections once;
// then the block streams the chunk, vectorised where aligned. The last block to finish
// (a ticket) advances the per-tensor step counts, after every block has read them.
// See NOTE [persistent pointer table] in lrfast/fused_tables.h.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <lrfast/fused_tables.h>
#include <lrfast/optim_math.h>
#include <lrfast/schedule.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "check.cuh"
#include "scalars.cuh"
#include "cuda_api.h"
#include "launch.cuh"
#include "memory.cuh"

namespace lrfast {
namespace cuda {
namespace {

using fused::kBlockSize;
using fused::kChunkSize;
using fused::kILP;
namespace ts = fused::tensor_slot;
namespace gs = fused::group_slot;

struct FusedArgs {
  const std::int64_t* tensors;
  std::int64_t n_tensors;
  const double* groups;
  const std::uint64_t* lr_tensors;  // per group: address of a tensor LR, or 0
  const double* lr_descriptors;
  const double* lr_table;
  const double* beta1_descriptors;
  const double* beta1_table;
  std::int64_t* step_counter;        // NOTE [schedule step counter], or null
  int counter_mode;                  // fused::CounterMode
  std::int64_t counter_next;         // kCounterEager: the value the counter holds after the launch
  bool hold_counter_on_skip;         // kCounterGraph: do not advance the counter when found_inf is set
  const float* grad_scale;           // GradScaler: divide grads by *grad_scale, or null
  const float* found_inf;            // GradScaler: skip the step when *found_inf != 0, or null
  unsigned int* ticket;              // zero between launches
};

template <typename T> struct MathType { using type = float; };
template <> struct MathType<double> { using type = double; };

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};


// The tensor owning chunk `chunk`: the last tensor whose first chunk is <= chunk.
__device__ __forceinline__ std::int64_t tensor_of_chunk(const DeviceArray<const std::int64_t>& tensors,
                                                        std::int64_t n, std::int64_t chunk) {
  std::int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo + 1) / 2;
    if (tensors[mid * fused::kTensorSlots + ts::kChunkStart] <= chunk) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// One element, in the math type M: unscale the gradient (GradScaler), then the update.
// s0/s1/s2 are exp_avg/exp_avg_sq/max_exp_avg_sq (Adam) or the momentum buffer (SGD).
template <typename M, int kAlgorithm>
__device__ __forceinline__ void update_values(M& param, M& grad, M& s0, M& s1, M& s2, bool unscale, M grad_divisor,
                                              const AdamScalars<M>& adam, const SgdScalars<M>& sgd) {
  if (unscale) grad = grad / grad_divisor;
  if constexpr (kAlgorithm == fused::kSgd) {
    sgd_update(param, grad, s0, sgd);
  } else {
    adam_update(param, grad, s0, s1, s2, adam);
  }
}

template <typename T>
__device__ __forceinline__ bool aligned_to_pack(const T* ptr) {
  return ptr == nullptr || reinterpret_cast<std::uintptr_t>(ptr) % (sizeof(T) * kILP) == 0;
}

template <typename T, int kAlgorithm>
__global__ void __launch_bounds__(kBlockSize) fused_step_kernel(FusedArgs a) {
  using M = typename MathType<T>::type;
  __shared__ std::int64_t s_tensor;
  __shared__ bool s_skip;
  __shared__ AdamScalars<M> s_adam;
  __shared__ SgdScalars<M> s_sgd;
  __shared__ bool s_last_block;
  const std::int64_t chunk = blockIdx.x;
  const auto tensors = device_array(a.tensors, a.n_tensors * fused::kTensorSlots, "tensors");
  const auto found_inf = device_array(a.found_inf, 1, "found_inf");
  const auto step_counter = device_array(a.step_counter, 1, "step_counter");

  if (threadIdx.x == 0) {
    s_skip = found_inf && *found_inf != 0.0f;
    const std::int64_t t = tensor_of_chunk(tensors, a.n_tensors, chunk);
    s_tensor = t;
    const auto row = tensors + t * fused::kTensorSlots;
    const std::int64_t g = row[ts::kGroup];
    // The group count is not a launch argument: the group rows are bounded only on the emulator's
    // registered allocations (memory.cuh: kUnknownCount).
    const auto grp = device_array(a.groups, kUnknownCount, "groups") + g * fused::kGroupSlots;
    const double sched_step = a.counter_mode == fused::kCounterGraph ? static_cast<double>(*step_counter)
                                                                     : grp[gs::kScheduleStep];
    double lr;
    switch (static_cast<int>(grp[gs::kLrSource])) {
      case fused::kLrSchedule:
        lr = evaluate(span(device_array(a.lr_descriptors, kUnknownCount, "lr_descriptors"), g * kDescriptorSize,
                           kDescriptorSize),
                      a.lr_table, sched_step);
        break;
      case fused::kLrTensor:
        lr = load_scalar(device_array(a.lr_tensors, kUnknownCount, "lr_tensors")[g],
                         static_cast<int>(grp[gs::kLrTensorDtype]));
        break;
      default: lr = grp[gs::kLr]; break;
    }
    const double beta1 =
        grp[gs::kBeta1Scheduled] != 0.0
            ? evaluate(span(device_array(a.beta1_descriptors, kUnknownCount, "beta1_descriptors"),
                            g * kDescriptorSize, kDescriptorSize),
                       a.beta1_table, sched_step)
            : grp[gs::kBeta1];
    if constexpr (kAlgorithm == fused::kSgd) {
      s_sgd.lr = static_cast<M>(lr);
      s_sgd.momentum = static_cast<M>(beta1);
      s_sgd.one_minus_dampening = static_cast<M>(1.0 - grp[gs::kDampening]);
      s_sgd.weight_decay = static_cast<M>(grp[gs::kWeightDecay]);
      s_sgd.nesterov = grp[gs::kNesterov] != 0.0;
      s_sgd.maximize = grp[gs::kMaximize] != 0.0;
      s_sgd.first_step = (row[ts::kFlags] & fused::kFirstStepFlag) != 0;
    } else {
      // torch keeps the step as a float32 tensor and increments it before use.
      const double step = static_cast<double>(*device_array<const float>(row[ts::kStep], 1, "step")) + 1.0;
      const double beta2 = grp[gs::kBeta2];
      s_adam.lr = static_cast<M>(lr);
      s_adam.beta1 = static_cast<M>(beta1);
      s_adam.beta2 = static_cast<M>(beta2);
      s_adam.eps = static_cast<M>(grp[gs::kEps]);
      s_adam.weight_decay = static_cast<M>(grp[gs::kWeightDecay]);
      s_adam.one_minus_beta1 = static_cast<M>(1.0 - beta1);
      s_adam.one_minus_beta2 = static_cast<M>(1.0 - beta2);
      s_adam.decay = static_cast<M>(1.0 - lr * grp[gs::kWeightDecay]);
      s_adam.step_size = static_cast<M>(lr / (1.0 - pow(beta1, step)));
      s_adam.bias_correction2_sqrt = static_cast<M>(sqrt(1.0 - pow(beta2, step)));
      s_adam.decoupled = grp[gs::kDecoupled] != 0.0;
      s_adam.amsgrad = grp[gs::kAmsgrad] != 0.0;
      s_adam.maximize = grp[gs::kMaximize] != 0.0;
    }
  }
  __syncthreads();

  if (!s_skip) {
    // Only the algorithm's own scalars were written; the other struct stays value-initialised.
    AdamScalars<M> adam{};
    SgdScalars<M> sgd{};
    if constexpr (kAlgorithm == fused::kSgd) sgd = s_sgd; else adam = s_adam;
    const auto row = tensors + s_tensor * fused::kTensorSlots;
    const std::int64_t start = (chunk - row[ts::kChunkStart]) * kChunkSize;
    const std::int64_t numel = row[ts::kNumel];
    const std::int64_t n = numel - start < kChunkSize ? numel - start : kChunkSize;
    const auto p = device_array<T>(row[ts::kParam], numel, "param") + start;
    const auto g = device_array<T>(row[ts::kGrad], numel, "grad") + start;
    // Which state arrays this algorithm reads and writes.
    const bool has0 = kAlgorithm != fused::kSgd || sgd.momentum != M(0);
    const bool read0 = has0 && !(kAlgorithm == fused::kSgd && sgd.first_step);
    const bool has1 = kAlgorithm != fused::kSgd;
    const bool has2 = kAlgorithm != fused::kSgd && adam.amsgrad;
    const auto s0 = has0 ? device_array<T>(row[ts::kState0], numel, "state0") + start : DeviceArray<T>(nullptr);
    const auto s1 = has1 ? device_array<T>(row[ts::kState1], numel, "state1") + start : DeviceArray<T>(nullptr);
    const auto s2 = has2 ? device_array<T>(row[ts::kState2], numel, "state2") + start : DeviceArray<T>(nullptr);
    const bool unscale = a.grad_scale != nullptr;
    const M divisor = unscale ? static_cast<M>(*device_array(a.grad_scale, 1, "grad_scale")) : M(1);
    const bool aligned = n % kILP == 0 && aligned_to_pack(raw(p)) && aligned_to_pack(raw(g)) &&
                         aligned_to_pack(raw(s0)) && aligned_to_pack(raw(s1)) && aligned_to_pack(raw(s2));
    if (aligned) {
      using P = Pack<T, kILP>;
      for (std::int64_t i = static_cast<std::int64_t>(threadIdx.x) * kILP; i < n;
           i += static_cast<std::int64_t>(blockDim.x) * kILP) {
        const P pp = pack_at<P>(p, i);
        const P gp = pack_at<P>(g, i);
        P p0{}, p1{}, p2{};
        if (read0) p0 = pack_at<P>(s0, i);
        if (has1) p1 = pack_at<P>(s1, i);
        if (has2) p2 = pack_at<P>(s2, i);
        P out_p, out_g, out0, out1, out2;
#pragma unroll
        for (int k = 0; k < kILP; ++k) {
          M param = static_cast<M>(pp.v[k]), grad = static_cast<M>(gp.v[k]);
          M v0 = read0 ? static_cast<M>(p0.v[k]) : M(0);
          M v1 = has1 ? static_cast<M>(p1.v[k]) : M(0);
          M v2 = has2 ? static_cast<M>(p2.v[k]) : M(0);
          update_values<M, kAlgorithm>(param, grad, v0, v1, v2, unscale, divisor, adam, sgd);
          out_p.v[k] = static_cast<T>(param);
          out_g.v[k] = static_cast<T>(grad);
          out0.v[k] = static_cast<T>(v0);
          out1.v[k] = static_cast<T>(v1);
          out2.v[k] = static_cast<T>(v2);
        }
        pack_at<P>(p, i) = out_p;
        if (unscale) pack_at<P>(g, i) = out_g;  // torch's fused step leaves grads unscaled
        if (has0) pack_at<P>(s0, i) = out0;
        if (has1) pack_at<P>(s1, i) = out1;
        if (has2) pack_at<P>(s2, i) = out2;
      }
    } else {
      for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        M param = static_cast<M>(p[i]), grad = static_cast<M>(g[i]);
        M v0 = read0 ? static_cast<M>(s0[i]) : M(0);
        M v1 = has1 ? static_cast<M>(s1[i]) : M(0);
        M v2 = has2 ? static_cast<M>(s2[i]) : M(0);
        update_values<M, kAlgorithm>(param, grad, v0, v1, v2, unscale, divisor, adam, sgd);
        p[i] = static_cast<T>(param);
        if (unscale) g[i] = static_cast<T>(grad);
        if (has0) s0[i] = static_cast<T>(v0);
        if (has1) s1[i] = static_cast<T>(v1);
        if (has2) s2[i] = static_cast<T>(v2);
      }
    }
  }

  // Ticket: the last block to finish advances every tensor's step (all blocks have read
  // them by then) and the schedule counter, and resets the ticket for the next launch.
  const bool needs_ticket = kAlgorithm != fused::kSgd || a.counter_mode != fused::kCounterNone;
  if (needs_ticket) {
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      const unsigned int done = atomicAdd(&*device_array(a.ticket, 1, "ticket"), 1u);
      s_last_block = done == gridDim.x - 1;
    }
    __syncthreads();
    if (s_last_block) {
      if (kAlgorithm != fused::kSgd && !s_skip) {
        for (std::int64_t t = threadIdx.x; t < a.n_tensors; t += blockDim.x) {
          *device_array<float>(tensors[t * fused::kTensorSlots + ts::kStep], 1, "step") += 1.0f;
        }
      }
      if (threadIdx.x == 0) {
        if (a.counter_mode == fused::kCounterEager) *step_counter = a.counter_next;
        if (a.counter_mode == fused::kCounterGraph && !(s_skip && a.hold_counter_on_skip)) *step_counter += 1;
        *device_array(a.ticket, 1, "ticket") = 0u;
      }
    }
  }
}

template <typename T>
void launch_for_dtype(int algorithm, const FusedArgs& args, std::int64_t n_chunks, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned int>(n_chunks));
  switch (algorithm) {
    case fused::kSgd: LRFAST_LAUNCH(grid, kBlockSize, 0, stream, fused_step_kernel<T, fused::kSgd>)(args); break;
    case fused::kAdam: LRFAST_LAUNCH(grid, kBlockSize, 0, stream, fused_step_kernel<T, fused::kAdam>)(args); break;
    default: throw std::invalid_argument("fused_step: unknown algorithm " + std::to_string(algorithm));
  }
}

}  // namespace

void fused_step(int algorithm, int dtype, std::uintptr_t tensors, std::int64_t n_tensors, std::int64_t n_chunks,
                std::uintptr_t groups, std::uintptr_t lr_tensors, std::uintptr_t lr_descriptors,
                std::uintptr_t lr_table, std::uintptr_t beta1_descriptors, std::uintptr_t beta1_table,
                std::uintptr_t step_counter, int counter_mode, std::int64_t counter_next,
                bool hold_counter_on_skip, std::uintptr_t grad_scale, std::uintptr_t found_inf,
                std::uintptr_t ticket, std::uintptr_t stream, int device) {
  if (n_tensors <= 0 || n_chunks <= 0) return;
  if (n_chunks > 0x7fffffff) throw std::invalid_argument("fused_step: too many chunks for one launch");
  if (counter_mode < fused::kCounterNone || counter_mode > fused::kCounterGraph) {
    throw std::invalid_argument("fused_step: unknown counter mode " + std::to_string(counter_mode));
  }
  if (counter_mode != fused::kCounterNone && step_counter == 0) {
    throw std::invalid_argument("fused_step: this counter mode needs a step counter");
  }
  if ((algorithm != fused::kSgd || counter_mode != fused::kCounterNone) && ticket == 0) {
    throw std::invalid_argument("fused_step: this launch needs a ticket");
  }
  FusedArgs args{};
  args.tensors = reinterpret_cast<const std::int64_t*>(tensors);
  args.n_tensors = n_tensors;
  args.groups = reinterpret_cast<const double*>(groups);
  args.lr_tensors = reinterpret_cast<const std::uint64_t*>(lr_tensors);
  args.lr_descriptors = reinterpret_cast<const double*>(lr_descriptors);
  args.lr_table = reinterpret_cast<const double*>(lr_table);
  args.beta1_descriptors = reinterpret_cast<const double*>(beta1_descriptors);
  args.beta1_table = reinterpret_cast<const double*>(beta1_table);
  args.step_counter = reinterpret_cast<std::int64_t*>(step_counter);
  args.counter_mode = counter_mode;
  args.counter_next = counter_next;
  args.hold_counter_on_skip = hold_counter_on_skip;
  args.grad_scale = reinterpret_cast<const float*>(grad_scale);
  args.found_inf = reinterpret_cast<const float*>(found_inf);
  args.ticket = reinterpret_cast<unsigned int*>(ticket);
  DeviceGuard guard(device);
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (dtype) {
    case kFloat32: launch_for_dtype<float>(algorithm, args, n_chunks, s); break;
    case kFloat64: launch_for_dtype<double>(algorithm, args, n_chunks, s); break;
    case kFloat16: launch_for_dtype<__half>(algorithm, args, n_chunks, s); break;
    case kBFloat16: launch_for_dtype<__nv_bfloat16>(algorithm, args, n_chunks, s); break;
    default: throw std::invalid_argument("fused_step: unsupported dtype code " + std::to_string(dtype));
  }
  LRFAST_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace lrfast
