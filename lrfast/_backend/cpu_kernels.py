"""The CPU twins of the fused optimizer kernels: SGD and Adam/AdamW on a whole bucket.

One call updates every tensor of one dtype (a bucket, NOTE [bucket layout] in
``lrfast/_bucket_layout.py``). It runs in two phases:

1. serially, once per group: the LR (and momentum / beta1) from the group's float or
   from its packed schedule, evaluated on the host by the compiled header (NOTE
   [group values] in ``lrfast/_backend/cpu.py``); once per tensor:
   advance Adam's ``step``, derive the bias corrections and the other scalars, cast
   to the math dtype (float32; float64 for float64 parameters) as torch casts them;
2. in parallel over the chunk map (chunk -> tensor, first element): the element loop.

Tensors are reached through raw data pointers (one int64 table for the bucket), so a
call costs the same whatever the number of tensors. bfloat16 is stored as uint16 and
float16 as int16 (Numba has no half type on the CPU); both load to float32 and store
back with round-to-nearest-even, once per value, as torch's fused CPU kernels do.

NOTE [torch's operation order] The element math follows torch's fused CPU kernels
(``aten/src/ATen/native/cpu/FusedAdamKernel.cpp``, ``FusedSGDKernel.cpp``) operation
for operation, fused multiply-adds where torch's vectorised path has them (its
``lerp`` and the contracted ``a * b + c`` forms), so that float32 results are equal to
torch's fused ones bit for bit on almost every element. ``fastmath`` stays off for
the same reason. ``torch.sqrt`` (MKL) is not correctly rounded, so torch's
``foreach=False`` path differs from both in the last bit of a few parameters.
"""

from __future__ import annotations

import math
import types as types_module

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .. import _bucket_layout as bucket_layout
from .._numba_cache import compiled_functions, digest, drop_stale_cache
from . import cpu_threads as threads

threads.configure()  # before any parallel kernel runs: NOTE [threading layer]

__all__: list[str] = []  # private: lrfast._backend.cpu is the public wrapper

_jit = {"cache": True, "nogil": True, "error_model": "numpy"}  # IEEE division (no checks), fastmath off:
# NOTE [torch's operation order]

# -- intrinsics --------------------------------------------------------------------------

@intrinsic
def _address(typingctx, addr):
    """An int64 address as a ``void*`` for ``numba.carray``."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(types.int64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma), as torch's vectorised ``fmadd``."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return a(a, a, a), codegen


@intrinsic
def _half_to_float(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.int16), codegen


@intrinsic
def _float_to_half(typingctx, value):
    # LLVM's fptrunc rounds to nearest even, as torch's float -> half conversion
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))
    return types.int16(types.float32), codegen


@intrinsic
def _bits_to_float(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@intrinsic
def _float_to_bits(typingctx, value):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


# -- load / store in the math dtype ---------------------------------------------------------

def _load(array, i):  # pragma: no cover - replaced by the overload inside Numba
    raise NotImplementedError


def _store(array, i, value):  # pragma: no cover - replaced by the overload inside Numba
    raise NotImplementedError


@njit(**_jit)
def _bfloat16_bits(value):
    """c10::BFloat16's round_to_nearest_even of a float32; a NaN becomes the quiet NaN."""
    bits = _float_to_bits(value)
    rounded = (bits + ((bits >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)) >> np.uint32(16)
    return np.uint16(rounded) if value == value else np.uint16(0x7FC0)


@overload(_load)
def _load_impl(array, i):
    if array.dtype == types.uint16:  # bfloat16: the high half of a float32
        def load_bf16(array, i):
            return _bits_to_float(np.uint32(array[i]) << np.uint32(16))
        return load_bf16
    if array.dtype == types.int16:  # float16
        def load_f16(array, i):
            return _half_to_float(array[i])
        return load_f16

    def load_plain(array, i):
        return array[i]
    return load_plain


@overload(_store)
def _store_impl(array, i, value):
    if array.dtype == types.uint16:
        def store_bf16(array, i, value):
            array[i] = _bfloat16_bits(value)
        return store_bf16
    if array.dtype == types.int16:
        def store_f16(array, i, value):
            array[i] = _float_to_half(value)
        return store_f16

    def store_plain(array, i, value):
        array[i] = value
    return store_plain


@njit(**_jit)
def _view(pointers, row, t, start, n, proto):
    """``n`` elements of tensor ``t``'s ``row`` from element ``start`` (proto: its dtype)."""
    return numba.carray(_address(pointers[row, t] + start * proto.itemsize), (n,), proto.dtype)


# -- element loops ------------------------------------------------------------------------------

# NOTE [specialised loops] A store under a condition keeps LLVM from vectorising a
# loop, so the optional streams (GradScaler's unscaled gradient, AMSGrad's maximum,
# SGD's momentum buffer) are passed as None when unused: Numba prunes an ``is None``
# branch at compile time, and each combination becomes its own vector loop. Options
# that only select a value (maximize, weight decay, Nesterov, lerp form) stay runtime
# flags: they compile to selects.

@njit(**_jit)
def _adam_chunk(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s, lerp_small, coupled, decoupled, scale):
    neg_step_size = s[bucket_layout.SCALAR_LR]
    weight = s[bucket_layout.SCALAR_MOMENTUM]
    coeff = s[bucket_layout.SCALAR_LERP_COEFF]
    beta2 = s[bucket_layout.SCALAR_BETA2]
    one_minus_beta2 = s[bucket_layout.SCALAR_ONE_MINUS_BETA2]
    bc2_sqrt = s[bucket_layout.SCALAR_BC2_SQRT]
    eps = s[bucket_layout.SCALAR_EPS]
    decay = s[bucket_layout.SCALAR_DECAY]
    weight_decay = s[bucket_layout.SCALAR_WEIGHT_DECAY]
    sign = s[bucket_layout.SCALAR_SIGN]
    for i in range(param.shape[0]):
        g = _load(grad, i)
        if scale is not None:
            g = g / scale
            _store(grad, i, g)
        g = g * sign
        p = _load(param, i)
        if coupled:
            g = _fma(p, weight_decay, g)
        if decoupled:
            p = p * decay
        m = _load(exp_avg, i)
        # exp_avg.lerp_(grad, 1 - beta1), in the form torch's lerp picks by the weight
        m = _fma(weight, g - m, m) if lerp_small else _fma(coeff, g - m, g)
        v = _fma(one_minus_beta2 * g, g, _load(exp_avg_sq, i) * beta2)
        _store(exp_avg, i, m)
        _store(exp_avg_sq, i, v)
        if max_exp_avg_sq is not None:
            old = _load(max_exp_avg_sq, i)
            v = v if (v >= old or v != v) else old  # torch.maximum: a NaN wins
            _store(max_exp_avg_sq, i, v)
        denom = math.sqrt(v) / bc2_sqrt + eps
        p = p + neg_step_size * m / denom
        _store(param, i, p)


@njit(**_jit)
def _sgd_chunk(param, grad, momentum_buffer, s, coupled, nesterov, fresh, scale):
    neg_lr = s[bucket_layout.SCALAR_LR]
    momentum = s[bucket_layout.SCALAR_MOMENTUM]
    one_minus_dampening = s[bucket_layout.SCALAR_DAMPENING]
    weight_decay = s[bucket_layout.SCALAR_WEIGHT_DECAY]
    sign = s[bucket_layout.SCALAR_SIGN]
    for i in range(param.shape[0]):
        g = _load(grad, i)
        if scale is not None:
            g = g / scale
            _store(grad, i, g)
        g = g * sign
        p = _load(param, i)
        if coupled:
            g = _fma(p, weight_decay, g)
        if momentum_buffer is not None:
            b = g if fresh else _fma(g, one_minus_dampening, _load(momentum_buffer, i) * momentum)
            _store(momentum_buffer, i, b)
            g = _fma(b, momentum, g) if nesterov else b
        p = _fma(g, neg_lr, p)
        _store(param, i, p)


@njit(**_jit)
def _adam_dispatch(pointers, t, start, n, proto, s, flags, grad_scale, amsgrad):
    """Run tensor ``t``'s chunk in the loop its options need (NOTE [specialised loops])."""
    mode = flags[bucket_layout.FLAG_MODE]
    lerp_small = flags[bucket_layout.FLAG_LERP_SMALL] != 0
    coupled = (mode & bucket_layout.MODE_COUPLED_WD) != 0
    decoupled = (mode & bucket_layout.MODE_DECOUPLED_WD) != 0
    param = _view(pointers, bucket_layout.ROW_PARAM, t, start, n, proto)
    grad = _view(pointers, bucket_layout.ROW_GRAD, t, start, n, proto)
    exp_avg = _view(pointers, bucket_layout.ROW_EXP_AVG, t, start, n, proto)
    exp_avg_sq = _view(pointers, bucket_layout.ROW_EXP_AVG_SQ, t, start, n, proto)
    scale = None if grad_scale is None else s[bucket_layout.SCALAR_GRAD_SCALE]
    if amsgrad is not None:
        if (mode & bucket_layout.MODE_AMSGRAD) != 0:
            max_exp_avg_sq = _view(pointers, bucket_layout.ROW_MAX_EXP_AVG_SQ, t, start, n, proto)
            _adam_chunk(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s, lerp_small, coupled, decoupled, scale)
            return
    _adam_chunk(param, grad, exp_avg, exp_avg_sq, None, s, lerp_small, coupled, decoupled, scale)


@njit(**_jit)
def _sgd_dispatch(pointers, t, start, n, proto, s, flags, grad_scale, momentum):
    mode = flags[bucket_layout.FLAG_MODE]
    coupled = (mode & bucket_layout.MODE_COUPLED_WD) != 0
    nesterov = (mode & bucket_layout.MODE_NESTEROV) != 0
    fresh = (mode & bucket_layout.MODE_FRESH) != 0
    param = _view(pointers, bucket_layout.ROW_PARAM, t, start, n, proto)
    grad = _view(pointers, bucket_layout.ROW_GRAD, t, start, n, proto)
    scale = None if grad_scale is None else s[bucket_layout.SCALAR_GRAD_SCALE]
    if momentum is not None:
        if (mode & bucket_layout.MODE_MOMENTUM) != 0:
            buffer = _view(pointers, bucket_layout.ROW_MOMENTUM_BUFFER, t, start, n, proto)
            _sgd_chunk(param, grad, buffer, s, coupled, nesterov, fresh, scale)
            return
    _sgd_chunk(param, grad, None, s, coupled, nesterov, fresh, scale)


# -- per-group values ---------------------------------------------------------------------------------

@njit(**_jit)
def _group_values(values, group_hyper, lr_scheduled, momentum_scheduled):
    """values[g] = (lr, momentum or beta1) of every group: the group's float, or its schedule's value.

    ``lr_scheduled`` / ``momentum_scheduled``: the schedules evaluated at each group's
    step on the host (NOTE [group values] in ``lrfast/_backend/cpu.py``); read only
    for the groups whose ``GROUP_*_SCHEDULED`` column is set (empty where none is).
    """
    for g in range(group_hyper.shape[0]):
        lr = group_hyper[g, bucket_layout.GROUP_LR]
        if group_hyper[g, bucket_layout.GROUP_LR_SCHEDULED] != 0.0:
            lr = lr_scheduled[g]
        mom = group_hyper[g, bucket_layout.GROUP_MOMENTUM]
        if group_hyper[g, bucket_layout.GROUP_MOMENTUM_SCHEDULED] != 0.0:
            mom = momentum_scheduled[g]
        values[g, 0] = lr
        values[g, 1] = mom


# -- the kernels ----------------------------------------------------------------------------------------

@njit(**_jit)
def _adam_scalars(values, scalars, flags, pointers, numels, tensor_group, group_hyper, lr_scheduled,
                  momentum_scheduled, scale):
    """Phase 1 of an Adam step: advance the steps, fill every tensor's scalars and flags."""
    _group_values(values, group_hyper, lr_scheduled, momentum_scheduled)
    last_group = -1
    last_step = -1.0
    neg_step_size = 0.0
    bc2_sqrt = 1.0
    for t in range(numels.shape[0]):
        g = tensor_group[t]
        h = group_hyper[g]
        step_view = numba.carray(_address(pointers[bucket_layout.ROW_STEP, t]), (1,), np.float32)
        step_view[0] = step_view[0] + np.float32(1.0)  # torch: step_t += 1 on a float32 tensor
        step = np.float64(step_view[0])
        lr = values[g, 0]
        beta1 = values[g, 1]
        beta2 = h[bucket_layout.GROUP_BETA2]
        if g != last_group or step != last_step:  # most tensors share their group's step
            # in float64, as torch: bias_correction = 1 - beta ** step
            neg_step_size = -(lr / (1.0 - beta1 ** step))
            bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
            last_group = g
            last_step = step
        s = scalars[t]
        s[bucket_layout.SCALAR_ONE] = 1.0
        s[bucket_layout.SCALAR_SIGN] = -1.0 if h[bucket_layout.GROUP_MAXIMIZE] != 0.0 else 1.0
        s[bucket_layout.SCALAR_GRAD_SCALE] = scale
        s[bucket_layout.SCALAR_LR] = neg_step_size
        s[bucket_layout.SCALAR_MOMENTUM] = 1.0 - beta1
        s[bucket_layout.SCALAR_BETA2] = beta2
        s[bucket_layout.SCALAR_ONE_MINUS_BETA2] = 1.0 - beta2
        s[bucket_layout.SCALAR_BC2_SQRT] = bc2_sqrt
        s[bucket_layout.SCALAR_EPS] = h[bucket_layout.GROUP_EPS]
        weight_decay = h[bucket_layout.GROUP_WEIGHT_DECAY]
        decoupled = h[bucket_layout.GROUP_DECOUPLED] != 0.0
        s[bucket_layout.SCALAR_DECAY] = 1.0 - lr * weight_decay
        s[bucket_layout.SCALAR_WEIGHT_DECAY] = weight_decay
        # torch's lerp compares the weight, cast to the math dtype, with 0.5
        weight = s[bucket_layout.SCALAR_MOMENTUM]
        small = abs(weight) < 0.5
        s[bucket_layout.SCALAR_LERP_COEFF] = weight if small else weight - s[bucket_layout.SCALAR_ONE]
        mode = 0
        if h[bucket_layout.GROUP_AMSGRAD] != 0.0 and pointers[bucket_layout.ROW_MAX_EXP_AVG_SQ, t] != 0:
            mode |= bucket_layout.MODE_AMSGRAD
        if weight_decay != 0.0:
            mode |= bucket_layout.MODE_DECOUPLED_WD if decoupled else bucket_layout.MODE_COUPLED_WD
        flags[t, bucket_layout.FLAG_LERP_SMALL] = 1 if small else 0
        flags[t, bucket_layout.FLAG_MODE] = mode


@njit(**_jit)
def _sgd_scalars(values, scalars, flags, pointers, numels, tensor_group, group_hyper, lr_scheduled,
                 momentum_scheduled, scale, fresh):
    """Phase 1 of an SGD step: every tensor's scalars and flags; ``fresh`` flags are cleared."""
    _group_values(values, group_hyper, lr_scheduled, momentum_scheduled)
    for t in range(numels.shape[0]):
        g = tensor_group[t]
        h = group_hyper[g]
        s = scalars[t]
        s[bucket_layout.SCALAR_ONE] = 1.0
        s[bucket_layout.SCALAR_SIGN] = -1.0 if h[bucket_layout.GROUP_MAXIMIZE] != 0.0 else 1.0
        s[bucket_layout.SCALAR_GRAD_SCALE] = scale
        momentum = values[g, 1]
        weight_decay = h[bucket_layout.GROUP_WEIGHT_DECAY]
        s[bucket_layout.SCALAR_LR] = -values[g, 0]
        s[bucket_layout.SCALAR_MOMENTUM] = momentum
        s[bucket_layout.SCALAR_DAMPENING] = 1.0 - h[bucket_layout.GROUP_DAMPENING]
        s[bucket_layout.SCALAR_WEIGHT_DECAY] = weight_decay
        mode = 0
        if weight_decay != 0.0:
            mode |= bucket_layout.MODE_COUPLED_WD
        if momentum != 0.0 and pointers[bucket_layout.ROW_MOMENTUM_BUFFER, t] != 0:
            mode |= bucket_layout.MODE_MOMENTUM
            if h[bucket_layout.GROUP_NESTEROV] != 0.0:
                mode |= bucket_layout.MODE_NESTEROV
            if fresh[t] != 0:
                mode |= bucket_layout.MODE_FRESH
                fresh[t] = 0
        flags[t, bucket_layout.FLAG_MODE] = mode


# NOTE [serial twins] Each kernel is compiled twice from one source: parallel (``prange``
# spreads the chunks over the threading layer) and serial (Numba runs ``prange`` as
# ``range`` without ``parallel=True``). Numba's on-disk cache keys an entry by the
# function's qualified name and signature, not by ``parallel=``, so the serial twin is
# compiled from a copy of the function renamed ``<name>_serial`` (``_twins``): one
# function compiled both ways would load the wrong twin. The serial twin serves buckets
# too small to share and forked children of an OpenMP process (NOTE [threading layer]
# in ``lrfast/_backend/cpu_threads.py``).

def _twins(func, name: str):
    """(parallel, serial) dispatchers of ``func``, cached under ``name`` and ``name_serial``."""
    def renamed(new_name: str):
        code = func.__code__.replace(co_name=new_name)
        if hasattr(code, "co_qualname"):  # Python 3.11+
            code = code.replace(co_qualname=new_name)
        copy = types_module.FunctionType(code, func.__globals__, new_name, func.__defaults__, func.__closure__)
        copy.__qualname__ = new_name
        copy.__module__ = func.__module__
        copy.__doc__ = func.__doc__
        return copy

    return njit(parallel=True, **_jit)(renamed(name)), njit(**_jit)(renamed(f"{name}_serial"))


def _adam_step(proto, values, scalars, flags, pointers, numels, tensor_group, chunk_tensor, chunk_start,
               chunk_size, group_hyper, lr_scheduled, momentum_scheduled, grad_scale, found_inf, amsgrad):
    """One Adam/AdamW step of a bucket (see the module docstring for the phases)."""
    if found_inf is not None:
        if found_inf[0] != 0.0:
            return
    scale = 1.0 if grad_scale is None else np.float64(grad_scale[0])
    _adam_scalars(values, scalars, flags, pointers, numels, tensor_group, group_hyper, lr_scheduled,
                  momentum_scheduled, scale)
    for c in prange(chunk_tensor.shape[0]):
        t = chunk_tensor[c]
        start = chunk_start[c]
        n = min(chunk_size, numels[t] - start)
        _adam_dispatch(pointers, t, start, n, proto, scalars[t], flags[t], grad_scale, amsgrad)


def _sgd_step(proto, values, scalars, flags, pointers, numels, tensor_group, chunk_tensor, chunk_start,
              chunk_size, group_hyper, lr_scheduled, momentum_scheduled, grad_scale, found_inf, fresh, momentum):
    """One SGD step of a bucket; ``fresh[t]`` (momentum buffer not yet written) is cleared."""
    if found_inf is not None:
        if found_inf[0] != 0.0:
            return
    scale = 1.0 if grad_scale is None else np.float64(grad_scale[0])
    _sgd_scalars(values, scalars, flags, pointers, numels, tensor_group, group_hyper, lr_scheduled,
                 momentum_scheduled, scale, fresh)
    for c in prange(chunk_tensor.shape[0]):
        t = chunk_tensor[c]
        start = chunk_start[c]
        n = min(chunk_size, numels[t] - start)
        _sgd_dispatch(pointers, t, start, n, proto, scalars[t], flags[t], grad_scale, momentum)


adam_step, adam_step_serial = _twins(_adam_step, "adam_step")
sgd_step, sgd_step_serial = _twins(_sgd_step, "sgd_step")

KERNELS = {"adam": adam_step, "sgd": sgd_step}
SERIAL_KERNELS = {"adam": adam_step_serial, "sgd": sgd_step_serial}


# -- cache hygiene -------------------------------------------------------------------------------------------

# the bucket layout's constants are compiled in (lrfast/_numba_cache.py)
drop_stale_cache(compiled_functions(globals()), "kernels",
                 digest({k: v for k, v in vars(bucket_layout).items() if k.isupper()}))
