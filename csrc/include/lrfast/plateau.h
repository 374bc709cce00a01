// lrfast/plateau.h -- ReduceLROnPlateau's decision rule, host and device.
//
// torch.optim.lr_scheduler.ReduceLROnPlateau.step(metric), written once for both sides:
// the CUDA kernel (csrc/cuda/plateau.cu) runs it on a device metric, the host entry
// lrfast._C.plateau_step_host runs the very same functions (the tests compare it with
// torch's class on random metric sequences). No torch, no allocation, no exceptions.
#pragma once

#include <lrfast/schedule.h>

namespace lrfast {
namespace plateau {

// NOTE [plateau state]
// The decision state is kStateSize doubles, torch's attributes of the same names:
//   state[kBest]            best metric so far (+inf / -inf before the first)
//   state[kNumBadEpochs]    steps since the last improvement (reset in cooldown)
//   state[kCooldownCounter] steps of cooldown left
// Each param group g has a packed descriptor (schedule.h) holding one kPlateau segment,
// whose table entry -- the group's *slot* -- is the plateau's value for that group:
//   plain    (Rule::composed == 0): the slot is the group's LR itself; the descriptor is
//            that one segment, scale 1, floor 0. A reduction is torch's, on that LR:
//            lr = max(lr * factor, min_lr), kept only when it lowers lr by more than eps.
//   composed (Rule::composed == 1): the slot is a factor f (1 at first) and the descriptor
//            is chain(schedule, kPlateau) with floor min_lr, so lr(t) = max(min_lr, s(t) * f).
//            A reduction applies torch's rule to the LR the group has at the decision step:
//            f *= factor when max(min_lr, s(t) * f * factor) is below max(min_lr, s(t) * f)
//            by more than eps.
// Since the slot lives in the schedule table, every kernel that evaluates the descriptor
// against the live table (a fused optimizer step, say) sees the reduced LR with no host
// involvement.
namespace state_slot {
constexpr int kBest = 0, kNumBadEpochs = 1, kCooldownCounter = 2;
}  // namespace state_slot
constexpr int kStateSize = 3;

enum Mode : int { kMin = 0, kMax = 1 };
enum ThresholdMode : int { kRel = 0, kAbs = 1 };

// torch's hyperparameters, as doubles (torch compares patience and cooldown as numbers).
struct Rule {
  double factor;
  double threshold;
  double eps;
  double patience;
  double cooldown;
  int mode;            // Mode
  int threshold_mode;  // ThresholdMode
  int composed;        // 0: slots hold LRs, 1: slots hold factors (NOTE [plateau state])
};

namespace detail {

// a * b rounded to double on its own: torch computes each operation in Python floats,
// so no product may be fused into a later addition (an FMA would change eps decisions).
LRFAST_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  volatile double product = a * b;
  return product;
#endif
}

// Python's max(a, b): b when b > a, else a (so a NaN first argument wins, a NaN second loses).
LRFAST_HD double py_max(double a, double b) { return b > a ? b : a; }

}  // namespace detail

// torch's _is_better(a, best).
LRFAST_HD bool is_better(const Rule& r, double a, double best) {
  if (r.mode == kMin && r.threshold_mode == kRel) return a < detail::mul_rn(best, 1.0 - r.threshold);
  if (r.mode == kMin) return a < best - r.threshold;
  if (r.threshold_mode == kRel) return a > detail::mul_rn(best, r.threshold + 1.0);
  return a > best + r.threshold;
}

// torch's step(metric) up to the reduction: updates the state and returns whether the LRs
// are reduced at this step (a NaN metric is never better, as in torch).
LRFAST_HD bool observe(const Rule& r, double* state, double metric) {
  using namespace state_slot;
  if (is_better(r, metric, state[kBest])) {
    state[kBest] = metric;
    state[kNumBadEpochs] = 0.0;
  } else {
    state[kNumBadEpochs] += 1.0;
  }
  if (state[kCooldownCounter] > 0.0) {
    state[kCooldownCounter] -= 1.0;
    state[kNumBadEpochs] = 0.0;  // bad epochs in cooldown do not count
  }
  if (state[kNumBadEpochs] > r.patience) {
    state[kCooldownCounter] = r.cooldown;
    state[kNumBadEpochs] = 0.0;
    return true;
  }
  return false;
}

// torch's _reduce_lr on one LR: the reduced LR, or old_lr when the reduction is not
// larger than eps.
LRFAST_HD double reduce_lr(const Rule& r, double old_lr, double min_lr) {
  const double new_lr = detail::py_max(detail::mul_rn(old_lr, r.factor), min_lr);
  return old_lr - new_lr > r.eps ? new_lr : old_lr;
}

// The composed rule: the new factor of a group whose unfloored LR is `product` (= s(t) * f).
LRFAST_HD double reduce_factor(const Rule& r, double f, double product, double floor) {
  const double old_lr = apply_floor(floor, product);
  const double new_lr = apply_floor(floor, detail::mul_rn(product, r.factor));
  return old_lr - new_lr > r.eps ? detail::mul_rn(f, r.factor) : f;
}

// The table offset of the descriptor's kPlateau slot, or -1 when it has none.
LRFAST_HD std::int64_t slot_of(const double* descriptor) {
  const int n = static_cast<int>(descriptor[slot::kNumSegments]);
  for (int s = 0; s < n && s < kMaxSegments; ++s) {
    const double* seg = descriptor + kHeaderSize + s * kSegmentSize;
    if (static_cast<int>(seg[slot::kKind]) == kPlateau) {
      return static_cast<std::int64_t>(seg[slot::kParams + param::plateau::kTableOffset]);
    }
  }
  return -1;
}

// One group's share of a step at schedule step t: applies the reduction (when `reduce`)
// to the group's slot in `table` and returns the group's LR after the step.
LRFAST_HD double step_group(const Rule& r, bool reduce, const double* descriptor, double* table, double min_lr,
                            double t) {
  const std::int64_t slot = slot_of(descriptor);
  if (slot < 0) return evaluate(descriptor, table, t);  // rejected on the host: no slot to reduce
  if (!r.composed) {
    if (reduce) table[slot] = reduce_lr(r, table[slot], min_lr);
    return table[slot];
  }
  if (reduce) {
    table[slot] = reduce_factor(r, table[slot], evaluate_product(descriptor, table, t), descriptor[slot::kFloor]);
  }
  return evaluate(descriptor, table, t);
}

// A whole step on the host: observe (when has_metric) then every group; lrs[g] receives
// group g's LR. The CUDA kernel does the same, spread over threads.
inline bool step_host(const Rule& r, double* state, double* table, const double* descriptors, const double* min_lrs,
                      std::int64_t n_groups, bool has_metric, double metric, double t, double* lrs) {
  const bool reduce = has_metric && observe(r, state, metric);
  for (std::int64_t g = 0; g < n_groups; ++g) {
    lrs[g] = step_group(r, reduce, descriptors + g * kDescriptorSize, table, min_lrs[g], t);
  }
  return reduce;
}

}  // namespace plateau
}  // namespace lrfast
