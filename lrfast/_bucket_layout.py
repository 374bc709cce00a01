"""The bucket layout: column and row numbers shared by the optimizers, the planner and the CPU kernels.

NOTE [bucket layout] A bucket (``lrfast._backend.bucket.Bucket``) hands a backend
plain arrays whose columns and rows are named here: the per-group hyperparameters
(``GROUP_*`` columns of ``Bucket.group_hyper``), the per-tensor data pointers
(``ROW_*`` rows of ``Bucket.pointers``) and the per-tensor scalars the CPU kernels
derive once per step (``SCALAR_*``). Pure Python facts with no C++ twin (the CUDA
kernels' tables are fused_tables.h's, lrfast._descriptor.FUSED_LAYOUT), so that the
package imports without Numba and without torch. (The descriptor's layout is
lrfast/_descriptor.py's.)
"""

from __future__ import annotations

__all__ = [
    "GROUP_LR", "GROUP_MOMENTUM", "GROUP_BETA2", "GROUP_EPS", "GROUP_WEIGHT_DECAY", "GROUP_DAMPENING",
    "GROUP_NESTEROV", "GROUP_AMSGRAD", "GROUP_MAXIMIZE", "GROUP_DECOUPLED", "GROUP_LR_SCHEDULED",
    "GROUP_MOMENTUM_SCHEDULED", "GROUP_COLUMNS", "ROW_PARAM", "ROW_GRAD", "ROW_EXP_AVG", "ROW_MOMENTUM_BUFFER",
    "ROW_EXP_AVG_SQ", "ROW_MAX_EXP_AVG_SQ", "ROW_STEP", "POINTER_ROWS", "SCALAR_LR", "SCALAR_MOMENTUM",
    "SCALAR_LERP_COEFF", "SCALAR_BETA2", "SCALAR_ONE_MINUS_BETA2", "SCALAR_BC2_SQRT", "SCALAR_EPS", "SCALAR_DECAY",
    "SCALAR_WEIGHT_DECAY", "SCALAR_DAMPENING", "SCALAR_SIGN", "SCALAR_GRAD_SCALE", "SCALAR_ONE", "SCALAR_COLUMNS",
    "FLAG_LERP_SMALL", "FLAG_MODE", "FLAG_COLUMNS", "MODE_AMSGRAD", "MODE_COUPLED_WD", "MODE_DECOUPLED_WD",
    "MODE_MOMENTUM", "MODE_NESTEROV", "MODE_FRESH"
]

# -- per-group hyperparameters: Bucket.group_hyper[g, GROUP_*] (float64) -----------
GROUP_LR = 0             # learning rate (ignored where GROUP_LR_SCHEDULED is 1)
GROUP_MOMENTUM = 1       # SGD momentum, or Adam beta1 (ignored where GROUP_MOMENTUM_SCHEDULED is 1)
GROUP_BETA2 = 2          # Adam beta2
GROUP_EPS = 3            # Adam eps
GROUP_WEIGHT_DECAY = 4
GROUP_DAMPENING = 5      # SGD dampening
GROUP_NESTEROV = 6       # SGD: 1.0 for Nesterov momentum
GROUP_AMSGRAD = 7        # Adam: 1.0 for AMSGrad
GROUP_MAXIMIZE = 8       # 1.0 to ascend the gradient
GROUP_DECOUPLED = 9      # Adam: 1.0 for decoupled (AdamW) weight decay
GROUP_LR_SCHEDULED = 10  # 1.0: evaluate the LR from Bucket.lr_schedule at Bucket.schedule_t[g]
GROUP_MOMENTUM_SCHEDULED = 11  # 1.0: momentum / beta1 from Bucket.momentum_schedule
GROUP_COLUMNS = 12

# -- per-tensor data pointers: Bucket.pointers[ROW_*, t] (int64; 0 where absent) ------
ROW_PARAM = 0
ROW_GRAD = 1
ROW_EXP_AVG = 2          # Adam exp_avg; SGD momentum_buffer
ROW_MOMENTUM_BUFFER = 2
ROW_EXP_AVG_SQ = 3
ROW_MAX_EXP_AVG_SQ = 4   # only where the tensor's group has amsgrad
ROW_STEP = 5             # Adam: the float32 0-d ``step`` tensor
POINTER_ROWS = 6

# -- per-tensor scalars of the CPU kernels (math dtype: float32, float64 for float64) --
SCALAR_LR = 0            # SGD lr; Adam: -lr / bias_correction1
SCALAR_MOMENTUM = 1      # SGD momentum; Adam 1 - beta1 (the lerp weight)
SCALAR_LERP_COEFF = 2    # Adam: lerp weight, or weight - 1 where the weight is >= 0.5
SCALAR_BETA2 = 3
SCALAR_ONE_MINUS_BETA2 = 4
SCALAR_BC2_SQRT = 5      # sqrt(bias_correction2)
SCALAR_EPS = 6
SCALAR_DECAY = 7         # AdamW: 1 - lr * weight_decay
SCALAR_WEIGHT_DECAY = 8  # coupled weight decay (Adam, SGD)
SCALAR_DAMPENING = 9     # SGD: 1 - dampening
SCALAR_SIGN = 10         # -1 to maximize, else 1
SCALAR_GRAD_SCALE = 11   # GradScaler's scale (1 when none)
SCALAR_ONE = 12
SCALAR_COLUMNS = 13

# per-tensor integer flags of the CPU kernels
FLAG_LERP_SMALL = 0      # Adam: the lerp weight is < 0.5 (torch's lerp picks its formula by it)
FLAG_MODE = 1            # bit set of MODE_*
FLAG_COLUMNS = 2

MODE_AMSGRAD = 1
MODE_COUPLED_WD = 2      # Adam / SGD: weight_decay != 0 added to the gradient
MODE_DECOUPLED_WD = 4    # AdamW: weight_decay != 0 applied to the parameter
MODE_MOMENTUM = 8        # SGD: momentum buffer in use
MODE_NESTEROV = 16
MODE_FRESH = 32          # SGD: momentum buffer not initialised yet (first step)
