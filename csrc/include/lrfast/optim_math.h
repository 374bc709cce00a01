// lrfast/optim_math.h -- the per-element update of SGD, Adam and AdamW.
//
// Pure functions on one element in the math type M (float for fp32/fp16/bf16 params,
// double for fp64), host and device. The chunk-walking kernel (csrc/cuda/fused_optim.cu)
// and any user kernel call these; the per-step scalars (lr, bias corrections) are
// computed once per block, not per element. The formulas follow torch.optim's
// single-tensor implementations (torch/optim/sgd.py, adam.py) step for step.
#pragma once

#include <cmath>

#include "schedule.h"  // LRFAST_HD

namespace lrfast {

// Scalars shared by every element of one tensor in one step. The differences 1 - x are
// computed in double by the caller and rounded once, as torch computes them in Python
// (1 - 0.999 rounded to float is not 1 - 0.999f).
template <typename M>
struct AdamScalars {
  M lr;
  M beta1, beta2, eps, weight_decay;
  M one_minus_beta1, one_minus_beta2;  // 1 - beta1, 1 - beta2
  M decay;                  // AdamW: 1 - lr * weight_decay
  M step_size;              // lr / (1 - beta1^step)
  M bias_correction2_sqrt;  // sqrt(1 - beta2^step)
  bool decoupled;           // AdamW: decay the parameter, not the gradient
  bool amsgrad, maximize;
};

template <typename M>
struct SgdScalars {
  M lr, momentum, weight_decay;
  M one_minus_dampening;  // 1 - dampening
  bool nesterov, maximize;
  bool first_step;  // the momentum buffer starts as a copy of the gradient
};

// Adam / AdamW on one element. param, exp_avg, exp_avg_sq, max_exp_avg_sq are updated
// in place (max_exp_avg_sq only when amsgrad).
template <typename M>
LRFAST_HD void adam_update(M& param, M grad, M& exp_avg, M& exp_avg_sq, M& max_exp_avg_sq,
                           const AdamScalars<M>& s) {
  if (s.maximize) grad = -grad;
  if (s.weight_decay != M(0)) {
    if (s.decoupled) param = param * s.decay;
    else grad = grad + s.weight_decay * param;
  }
  exp_avg = exp_avg + (grad - exp_avg) * s.one_minus_beta1;  // torch's lerp_
  exp_avg_sq = exp_avg_sq * s.beta2 + s.one_minus_beta2 * grad * grad;
  M second = exp_avg_sq;
  if (s.amsgrad) {
    max_exp_avg_sq = max_exp_avg_sq > exp_avg_sq ? max_exp_avg_sq : exp_avg_sq;
    second = max_exp_avg_sq;
  }
  // std::sqrt picks the overload of M: an unqualified sqrt(float) is the double ::sqrt on
  // the host (the quotient then computed in double) but float on the device.
  const M denom = std::sqrt(second) / s.bias_correction2_sqrt + s.eps;
  param = param - s.step_size * (exp_avg / denom);
}

// SGD with momentum, dampening, Nesterov, weight decay on one element.
template <typename M>
LRFAST_HD void sgd_update(M& param, M grad, M& momentum_buffer, const SgdScalars<M>& s) {
  if (s.maximize) grad = -grad;
  if (s.weight_decay != M(0)) grad = grad + s.weight_decay * param;
  if (s.momentum != M(0)) {
    momentum_buffer = s.first_step ? grad : momentum_buffer * s.momentum + s.one_minus_dampening * grad;
    grad = s.nesterov ? grad + s.momentum * momentum_buffer : momentum_buffer;
  }
  param = param - s.lr * grad;
}

}  // namespace lrfast
