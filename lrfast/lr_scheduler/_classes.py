"""torch's single schedulers, as closed-form programs (see _base.py).

Each class takes exactly torch's arguments and defaults, raises torch's exceptions for
bad ones, keeps torch's attributes (so state dicts move both ways), and describes each
group's LR as a :mod:`lrfast.schedules` curve of ``last_epoch``.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import torch

from .. import schedules as S
from .._compile import compiled_scheduler_step
from .._scheduling_protocol import host_float
from ..schedules import Schedule
from ._base import (
    DeletableWatched,
    LRScheduler,
    Watched,
    compiled_step_taken,
    format_param,
    holds_tensor,
    restore_groups_on_error,
    use_torch_code,
)

__all__ = [
    "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
    "PolynomialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "SWALR",
]

_DEFAULT_HORIZON = 1024
_is_compiling = torch.compiler.is_compiling
_Tensor = torch.Tensor


_cos, _PI = math.cos, math.pi  # the per-step recursion's terms, without two attribute lookups each


def _real_tensor(value: Any) -> bool:
    """A 0-d real tensor, which torch takes for a number (and computes with in its dtype)."""
    return isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_complex()


def _whole_steps(period: Any) -> int:
    """A period (``total_iters``, ``T_max``) as the whole number of steps the closed forms
    count in. torch also accepts a fractional one (2.5), where its step-by-step formulas
    give values no closed form in whole steps does: TypeError, so that the program is not
    built and torch's recursion runs (NOTE [one step rule] in _base.py)."""
    if isinstance(period, numbers.Integral) and not isinstance(period, bool):
        return int(period)
    if not isinstance(period, float) or not period.is_integer():  # a fraction, inf, nan, or not a number
        raise TypeError(f"not a whole number of steps: {period!r}")
    return int(period)

class StepLR(LRScheduler, torch.optim.lr_scheduler.StepLR):
    r"""Decays each group's LR by ``gamma`` every ``step_size`` steps (torch's ``StepLR``):
    :math:`\eta_t = \eta_0\,\gamma^{\lfloor t/s\rfloor}`, evaluated in closed form.

    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> s = StepLR(opt, step_size=2, gamma=0.5)
    >>> for _ in range(4): opt.step(); s.step()
    >>> s.get_last_lr()
    [0.025]
    """

    step_size = Watched()
    gamma = Watched()

    def _lrfast_coefficients(self, t: float) -> tuple[float, float, float]:
        if t == 0 or t % self.step_size != 0:
            return (1.0, 0.0, 0.0)
        return (self.gamma, 0.0, 0.0)

    def __init__(self, optimizer: torch.optim.Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if not _real_tensor(step_size) and (isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral)
                                            or step_size <= 0):
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        return S.step_decay(base_lr, self.step_size, self.gamma)


class MultiStepLR(LRScheduler, torch.optim.lr_scheduler.MultiStepLR):
    r"""Decays each group's LR by ``gamma`` at each milestone (torch's ``MultiStepLR``):
    :math:`\eta_t = \eta_0\,\gamma^{\#\{m \le t\}}` (a repeated milestone decays twice).

    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> s = MultiStepLR(opt, milestones=[1, 3], gamma=0.5)
    >>> [s.get_last_lr()[0]] + [(opt.step(), s.step(), s.get_last_lr()[0])[2] for _ in range(3)]
    [1.0, 0.5, 0.5, 0.25]
    """

    milestones = Watched()
    gamma = Watched()
    _lrfast_mutable = ("base_lrs", "milestones")

    def _lrfast_coefficients(self, t: float) -> tuple[float, float, float]:
        if t not in self.milestones:
            return (1.0, 0.0, 0.0)
        return (self.gamma ** self.milestones[t], 0.0, 0.0)

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = Counter(milestones)
        self.gamma = gamma
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        # a negative milestone is never reached by torch's step-by-step form
        milestones = sorted(m for m in self.milestones.elements() if m >= 0)
        return S.multistep_decay(base_lr, milestones, self.gamma)


class ConstantLR(LRScheduler, torch.optim.lr_scheduler.ConstantLR):
    r"""Multiplies each group's LR by ``factor`` until step ``total_iters`` (torch's
    ``ConstantLR``): :math:`\eta_t = \eta_0 f` for :math:`t < T`, :math:`\eta_0` after.
    With ``total_iters=0`` torch's step-by-step form never restores the LR; so neither
    does this one.
    """

    factor = Watched()
    total_iters = Watched()

    def _lrfast_coefficients(self, t: float) -> tuple[float, float, float]:
        if t == 0:
            return (self.factor, 0.0, 0.0)
        if t != self.total_iters:
            return (1.0, 0.0, 0.0)
        return (1.0 / self.factor, 0.0, 0.0)

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        if factor == 0 and isinstance(total_iters, numbers.Real) and total_iters > 0:
            # torch divides the LR by factor at total_iters (ZeroDivisionError): refuse it up front
            raise ValueError(f"ConstantLR: factor=0 with total_iters={total_iters!r} would divide by zero at step "
                             f"total_iters (torch raises ZeroDivisionError there); use factor > 0")
        self.factor = factor
        self.total_iters = total_iters
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_schedule(self, base: float, group: int) -> Schedule:
        low = S.constant(base * self.factor)
        if self.total_iters <= 0:
            return low
        return S.join([low, S.constant(base)], [_whole_steps(self.total_iters)])


class LinearLR(LRScheduler, torch.optim.lr_scheduler.LinearLR):
    r"""Linear change of the multiplicative factor from ``start_factor`` to ``end_factor``
    over ``total_iters`` steps (torch's ``LinearLR``):
    :math:`\eta_t = \eta_0 (f_s + (f_e - f_s)\min(t, T)/T)`.
    """

    start_factor = Watched()
    end_factor = Watched()
    total_iters = Watched()

    def _lrfast_coefficients(self, t: float) -> tuple[float, float, float]:
        if t == 0:
            return (self.start_factor, 0.0, 0.0)
        if self._is_initial or t > self.total_iters:
            return (1.0, 0.0, 0.0)
        s, e = self.start_factor, self.end_factor
        return (1.0 + (e - s) / (self.total_iters * s + (t - 1) * (e - s)), 0.0, 0.0)

    def __init__(self, optimizer: torch.optim.Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_schedule(self, base: float, group: int) -> Schedule:
        if self.total_iters <= 0:  # torch's recursion never leaves the start factor
            return S.constant(base * self.start_factor)
        return S.linear(base * self.start_factor, base * self.end_factor, _whole_steps(self.total_iters))


class ExponentialLR(LRScheduler, torch.optim.lr_scheduler.ExponentialLR):
    r"""Decays each group's LR by ``gamma`` every step (torch's ``ExponentialLR``):
    :math:`\eta_t = \eta_0\gamma^t`, in closed form (torch multiplies step by step, which
    drifts by up to ~2e-14 relative over 1e5 steps with float LRs).
    """

    gamma = Watched()

    def _lrfast_coefficients(self, t: float) -> tuple[float, float, float]:
        return (1.0, 0.0, 0.0) if self._is_initial else (self.gamma, 0.0, 0.0)

    def __init__(self, optimizer: torch.optim.Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        if self.gamma == 0:  # torch: 0 from the first step on
            return S.join([S.constant(base_lr), S.constant(0.0)], [1])
        return S.exponential_decay(base_lr, 1, self.gamma)


class PolynomialLR(LRScheduler, torch.optim.lr_scheduler.PolynomialLR):
    r"""Polynomial decay to 0 over ``total_iters`` (torch's ``PolynomialLR``):
    :math:`\eta_t = \eta_0 (1 - \min(t, T)/T)^p`.
    """

    total_iters = Watched()
    power = Watched()

    def _lrfast_coefficients(self, t: float) -> tuple[float, float, float]:
        if self._is_initial or t > self.total_iters:
            return (1.0, 0.0, 0.0)
        T = self.total_iters
        return (((1.0 - t / T) / (1.0 - (t - 1) / T)) ** self.power, 0.0, 0.0)

    def __init__(self, optimizer: torch.optim.Optimizer, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1) -> None:
        if isinstance(power, numbers.Real) and power < 0 and isinstance(total_iters, numbers.Real) \
                and total_iters > 0:
            raise ValueError(f"PolynomialLR: power={power!r} is negative, so the LR would be infinite at step "
                             f"total_iters={total_iters!r} (torch raises ZeroDivisionError there); use power >= 0")
        self.total_iters = total_iters
        self.power = power
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        if self.total_iters <= 0:  # torch's recursion never changes the LR
            return S.constant(base_lr)
        return S.polynomial(base_lr, 0.0, self.power, _whole_steps(self.total_iters))


class CosineAnnealingLR(LRScheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
    r"""Cosine annealing (torch's ``CosineAnnealingLR``) in closed form:
    :math:`\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})(1 + \cos(\pi t/T_{max}))`,
    periodic past ``T_max`` exactly as torch's. torch computes it as a recursion that
    drifts from this closed form by up to ~5e-11 relative over 1e5 steps (float LRs)
    and ~2e-6 (float32 tensor LRs); lrfast is the closed form.
    """

    T_max = Watched()
    eta_min = Watched()

    def _lrfast_coefficients(self, t: float) -> tuple[Any, Any, Any]:
        eta, T = self.eta_min, self.T_max
        if self._is_initial:
            return (1.0, 0.0, 0.0)
        if self._step_count == 1 and t > 0:  # torch's closed form on a first step after a resume
            return (0.0, 0.0, [eta + (b - eta) * (1 + math.cos(t * math.pi / T)) / 2 for b in self.base_lrs])
        if (t - 1 - T) % (2 * T) == 0:
            return (1.0, 0.0, [(b - eta) * (1 - math.cos(math.pi / T)) / 2 for b in self.base_lrs])
        return ((1 + _cos(_PI * t / T)) / (1 + _cos(_PI * (t - 1) / T)), eta, eta)  # torch's terms

    def __init__(self, optimizer: torch.optim.Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if not _real_tensor(T_max) and (isinstance(T_max, bool) or not isinstance(T_max, numbers.Real) or T_max <= 0):
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive number, got {T_max!r} (torch divides "
                             "by it at the first step)")
        self.T_max = T_max
        self.eta_min = eta_min
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        return S.cosine_annealing(base_lr, _whole_steps(self.T_max), host_float(self.eta_min, sync=True))


class CosineAnnealingWarmRestarts(LRScheduler, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts):
    r"""Cosine annealing with warm restarts (torch's ``CosineAnnealingWarmRestarts``).
    ``step(epoch)`` accepts fractional epochs (``epoch + i / iters``) as torch's does.

    ``T_cur`` and ``T_i`` are kept as torch keeps them (a hand-set ``T_cur`` is honoured:
    the LR then follows torch's formula in ``T_cur / T_i``). An explicit epoch finds its
    period with exact integer arithmetic, where torch takes a floating-point logarithm.
    """

    T_0 = Watched()
    T_mult = Watched()
    eta_min = Watched()

    _lrfast_absolute = True
    _lrfast_counting = "restarts"  # NOTE [fast step] in _base.py

    def __init__(self, optimizer: torch.optim.Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_schedule(self, base_lr: float, group: int) -> Schedule:
        return S.warm_restarts(base_lr, self.T_0, self.T_mult, float(self.eta_min))

    def step(self, epoch: float | None = None) -> None:
        # torch's own step(): no order or deprecation warning, fractional epochs, and
        # _step_count left as the initial step set it.
        # NOTE [compiled steps]: checked here, as LRScheduler.step does, to keep the wrapper's
        # frame off the per-step path
        if _is_compiling():
            return compiled_scheduler_step(self, epoch)
        if epoch is None and compiled_step_taken(self):  # NOTE [fast step] in _base.py: T_cur and T_i too
            return None
        # an int or None told apart before isinstance (a metaclass call with torch.Tensor)
        t_cur_held = self.T_cur
        if (epoch is not None and isinstance(epoch, _Tensor)) or (
                type(t_cur_held) is not int and isinstance(t_cur_held, _Tensor)):  # noqa: E721
            return self._lrfast_tensor_epoch_step(epoch)
        prev, t_i_held = self.last_epoch, self.T_i
        if epoch is None and prev < 0:
            epoch = 0
        t: float
        t_cur: float
        if epoch is None:
            t = prev + 1
            t_cur, t_i = t_cur_held + 1, t_i_held
            if t_cur >= t_i:
                t_cur, t_i = t_cur % t_i, t_i * self.T_mult
        else:
            t = self._lrfast_check_epoch(epoch)
            t_cur, t_i = self._period_at(t)
        # a fractional epoch makes T_cur a float in torch's step too; torch infers int from __init__
        self.T_cur, self.T_i, self.last_epoch = t_cur, t_i, t if type(t) is int else math.floor(t)  # type: ignore[assignment]  # noqa: E501,E721
        try:
            self._last_lr = self._lrfast_write_restart(t, t_cur, t_i)
        except BaseException:
            self.T_cur, self.T_i, self.last_epoch = t_cur_held, t_i_held, prev
            raise

    step._lrfast_compile_aware = True  # type: ignore[attr-defined]

    def _lrfast_tensor_epoch_step(self, epoch: torch.Tensor | None) -> None:
        """``step(epoch)`` with a 0-d tensor makes torch's ``T_cur`` a tensor, and its LRs
        cosines of a float32 argument from then on: torch's own step does exactly that."""
        if epoch is not None:
            self._lrfast_check_epoch(epoch)
        previous = (self.T_cur, self.T_i, self.last_epoch)
        try:
            torch.optim.lr_scheduler.CosineAnnealingWarmRestarts.step(self, epoch)
        except BaseException:
            self.T_cur, self.T_i, self.last_epoch = previous
            raise
        self._lrfast_torch_wrote(self._last_lr)

    def _lrfast_write_restart(self, t: float, held_t_cur: float, held_t_i: int) -> list[Any]:
        """The closed form at ``t`` where T_cur / T_i (``held_*``, as step() has just set
        them) are where the schedule puts them, else torch's formula in the T_cur / T_i it
        holds (a hand-set T_cur)."""
        rt = self._lrfast_runtime()
        # the program built last: _lrfast_write checks that it still describes the groups (and
        # rebuilds it) before it writes; a T_0 or T_mult assignment drops it (Watched), so the
        # period cached with it is the one the schedule puts at t either way
        program = rt.program
        if program is None:
            program = self._lrfast_program()
            if program is None:
                rt.period = None
                return self._lrfast_torch_write(False)
        # (program, t, T_cur, T_i) of the last integer step, where the program's closed form
        # puts them (its T_0 is the T_0 it was built from; step() itself never reads T_0)
        cached = rt.period
        integer = type(t) is int  # noqa: E721 - last_epoch + 1, or an epoch _lrfast_check_epoch made an int
        if integer and cached is not None and cached[0] is program and t == cached[1] + 1:
            t_cur, t_i = cached[2] + 1, cached[3]
            if t_cur >= t_i:
                t_cur, t_i = t_cur - t_i, t_i * self.T_mult
        else:
            t_cur, t_i = self._period_at(t)
        rt.period = (program, t, t_cur, t_i) if integer else None
        if held_t_cur != t_cur or held_t_i != t_i:
            rt.period = None
            return self._lrfast_torch_write(False)
        return self._lrfast_write(t - 1, t, True)

    def _lrfast_check_epoch(self, epoch: object) -> float:
        try:
            return super()._lrfast_check_epoch(epoch)
        except ValueError:
            if isinstance(epoch, numbers.Real) and epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}") from None
            raise

    def _period_at(self, t: float) -> tuple[float, int]:
        """(T_cur, T_i) at step t, as torch's attributes hold them."""
        t0, m = self.T_0, self.T_mult
        if t < t0:
            return t, t0
        if m == 1:
            return t % t0, t0
        n = int(math.log(t / t0 * (m - 1) + 1, m))
        while n > 0 and t < t0 * (m**n - 1) // (m - 1):
            n -= 1
        while t >= t0 * (m ** (n + 1) - 1) // (m - 1):
            n += 1
        return t - t0 * (m**n - 1) // (m - 1), t0 * m**n


class _BakedLambdas(LRScheduler):
    """LambdaLR and MultiplicativeLR: per-group callables of the step."""

    _lrfast_check_callable = True

    def __init__(self, optimizer: torch.optim.Optimizer,
                 lr_lambda: Callable[[int], float] | list[Callable[[int], float]], last_epoch: int = -1,
                 *, horizon: int | None = None) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda, check_callable=self._lrfast_check_callable)
        self._lrfast_horizon = _check_horizon(type(self).__name__, horizon)
        self._lrfast_horizon_given = horizon is not None  # CUDA graphs need one (LambdaLR.graph_capture_blocker)
        self._lrfast_baked(self._lrfast_horizon_given)
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_baked(self, baked: bool) -> None:
        """Hook: the instance's stepping flags, once ``horizon=`` is known."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        lambdas = state_dict.pop("lr_lambdas")
        try:
            LRScheduler.load_state_dict(self, state_dict)
        finally:
            state_dict["lr_lambdas"] = lambdas
        for fn, saved in zip(self.lr_lambdas, lambdas):
            if saved is not None:
                fn.__dict__.update(saved)
        self.refresh()


class LambdaLR(_BakedLambdas, torch.optim.lr_scheduler.LambdaLR):
    r"""Sets each group's LR to ``base_lr * lr_lambda(t)`` (torch's ``LambdaLR``).

    Each ``lr_lambda`` is called once per step, at that step, as torch calls it: it may
    look values up in a table, read state that changes, or refuse steps past the run. Its
    values are then written in one pass over the groups. Consecutive groups holding
    functions of pure code (``lambda t: 0.95 ** t``: arithmetic on the step and constants
    only, NOTE [pure lambdas] in ``_pure.py``) share one call, which no program can tell
    from torch's call per group.

    ``horizon=N`` (an lrfast keyword, opt-in) bakes the function into a table of ``N``
    steps from the current one instead, baked again when the count leaves it: the
    schedule then lives on the device, so a CUDA graph can replay it (the function is
    called ahead of the steps the run reaches: it must be a pure function of the step).
    """

    _lrfast_absolute = True
    _lrfast_check_callable = False
    _lrfast_calls_host = True
    _lrfast_callables = 1  # base_lr * lr_lambda(t) (NOTE [fast step] in _base.py)

    def _lrfast_baked(self, baked: bool) -> None:
        # instance flags, set once (a property would cost a call at every step): with horizon=,
        # the baked window moves on (_lrfast_check_step); without, no program: the lambdas are
        # called at each step, never ahead
        self._lrfast_checks_step = baked
        self._lrfast_host_recursive = not baked

    def _lrfast_host_values(self, t: float) -> list[Any] | None:
        if self._lrfast_horizon_given:
            return None
        return [base_lr * lmbda(t) for lmbda, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]

    def _lrfast_window(self) -> tuple[int, int]:
        """The baked steps [start, stop): ``horizon`` steps from the current one."""
        start = max(0, math.floor(self.last_epoch))
        window = (start, start + self._lrfast_horizon)
        self._lrfast_runtime().window = window
        return window

    def _lrfast_lr_schedules(self) -> list[Schedule]:
        start, stop = self._lrfast_window()
        out = []
        for base, fn in zip(self.base_lrs, self.lr_lambdas):
            table = S.from_values([float(fn(t)) for t in range(start, stop)])
            if start > 0:
                table = S.join([S.constant(table(0)), table], [start])
            out.append(host_float(base, sync=True) * table)
        return out

    def _lrfast_check_step(self, t: float) -> None:
        window = self._lrfast_runtime().window
        if self._lrfast_horizon_given and window is not None and not window[0] <= t < window[1]:
            self.refresh()  # bake the window around t (horizon= given: a pure lr_lambda)

    def graph_capture_blocker(self) -> str | None:
        """Graph replays cannot call the lambdas: refused unless the user gave ``horizon=``,
        their statement that the baked table covers the replays."""
        if self._lrfast_horizon_given:
            return None
        name = type(self).__name__
        return (f"{name} calls its lr_lambda on the host at each step, which graph replays cannot do. Build "
                f"the scheduler with horizon= covering the whole run, e.g. {name}(..., horizon=total_steps), to "
                f"bake the function into a table the device reads")

    state_dict = LRScheduler._lrfast_public_state(torch.optim.lr_scheduler.LambdaLR.state_dict)


class MultiplicativeLR(_BakedLambdas, torch.optim.lr_scheduler.MultiplicativeLR):
    r"""Multiplies each group's LR by ``lr_lambda(t)`` at every step ``t >= 1`` (torch's
    ``MultiplicativeLR``): :math:`\eta_t = \eta_{t-1}\,\lambda(t)`.

    A product of the LR the group holds: each lambda is called once per step, as torch
    calls it (consecutive groups of pure code share one call: NOTE [pure lambdas] in
    ``_pure.py``), and a bound lrfast optimizer applies the groups' LRs.
    """

    _lrfast_host_recursive = True
    _lrfast_calls_host = True
    _lrfast_callables = 2  # group["lr"] * lr_lambda(t) (NOTE [fast step] in _base.py)

    def _lrfast_host_values(self, t: float) -> list[Any] | None:
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [g["lr"] for g in groups]
        return [group["lr"] * lmbda(t) for lmbda, group in zip(self.lr_lambdas, groups, strict=True)]

    def _lrfast_lr_schedules(self) -> list[Schedule]:
        """The LR from this step on for ``horizon`` steps, as tables (for ``schedules``)."""
        start = max(0, math.floor(self.last_epoch))
        out = []
        for group, fn in zip(self.optimizer.param_groups, self.lr_lambdas):
            values = [host_float(group["lr"], sync=True)]
            for t in range(start + 1, start + self._lrfast_horizon):
                values.append(values[-1] * fn(t))
            table = S.from_values(values)
            out.append(S.join([S.constant(values[0]), table], [start]) if start > 0 else table)
        return out

    state_dict = LRScheduler._lrfast_public_state(torch.optim.lr_scheduler.MultiplicativeLR.state_dict)


def _start_momentum_cycle(optimizer, max_momentums: list, base_momentums: list, use_beta1: bool) -> None:
    """CyclicLR / OneCycleLR at construction: each group starts at its max momentum (or
    beta1) and records both bounds, as torch's classes do. A tensor momentum or beta1 is
    filled in place where torch puts a float in its stead: a compiled step that reads the
    tensor then does not recompile at each step (pytorch#133898)."""
    for m_mom, b_mom, group in zip(max_momentums, base_momentums, optimizer.param_groups):
        held = group["betas"][0] if use_beta1 else group["momentum"]
        if isinstance(held, torch.Tensor):
            held.fill_(host_float(m_mom, sync=True))
        elif use_beta1:
            group["betas"] = (m_mom, *group["betas"][1:])
        else:
            group["momentum"] = m_mom
        group["max_momentum"] = m_mom
        group["base_momentum"] = b_mom


def _lambdas(optimizer, lr_lambda, check_callable: bool) -> list:
    n = len(optimizer.param_groups)
    if not isinstance(lr_lambda, (list, tuple)):
        lambdas = [lr_lambda] * n
    else:
        if len(lr_lambda) != n:
            raise ValueError(f"Expected {n} lr_lambdas, but got {len(lr_lambda)}")
        lambdas = list(lr_lambda)
    if check_callable:
        for fn in lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
    return lambdas


def _check_horizon(cls: str, horizon) -> int:
    if horizon is None:
        return _DEFAULT_HORIZON
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0:
        raise ValueError(f"{cls}: horizon must be a positive int, got {horizon!r}")
    return horizon


class CyclicLR(LRScheduler, torch.optim.lr_scheduler.CyclicLR):
    r"""Cyclical learning rate (torch's ``CyclicLR``), momentum cycled inversely when
    ``cycle_momentum``. A custom ``scale_fn`` is called on the host at each step, as
    torch's is (no table; a bound lrfast optimizer reads the groups' LRs).
    """

    _lrfast_absolute = True
    total_size = Watched()
    step_ratio = Watched()
    scale_mode = Watched()
    # torch's _init_scale_fn binds mode and gamma into the scale function once (at
    # construction and load_state_dict): editing them later changes nothing in torch
    _lrfast_bound_scale = Watched()
    cycle_momentum = Watched()
    _lrfast_mutable = ("base_lrs", "max_lrs", "base_momentums", "max_momentums")

    @restore_groups_on_error  # NOTE [errors before state changes] in _base.py
    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float | list[float], max_lr: float | list[float],
                 step_size_up: int = 2000, step_size_down: int | None = None,
                 mode: Literal["triangular", "triangular2", "exp_range"] = "triangular", gamma: float = 1.0,
                 scale_fn: Callable[[float], float] | None = None,
                 scale_mode: Literal["cycle", "iterations"] = "cycle", cycle_momentum: bool = True,
                 base_momentum: float = 0.8, max_momentum: float = 0.9, last_epoch: int = -1,
                 *, horizon: int | None = None) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        base_lrs = format_param("CyclicLR", "base_lr", optimizer, base_lr)
        max_lrs = format_param("CyclicLR", "max_lr", optimizer, max_lr)
        if holds_tensor(base_lrs) or holds_tensor(max_lrs):
            use_torch_code(self)
        if mode not in ["triangular", "triangular2", "exp_range"] and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        use_beta1 = "betas" in optimizer.defaults
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and not use_beta1:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            base_momentums = format_param("CyclicLR", "base_momentum", optimizer, base_momentum)
            max_momentums = format_param("CyclicLR", "max_momentum", optimizer, max_momentum)
        _check_horizon("CyclicLR", horizon)  # accepted for compatibility: nothing is baked any more
        # Checks done: now change state, in torch's order.
        self.optimizer = optimizer
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(host_float(lr, sync=True))
                else:
                    group["lr"] = lr
        self.max_lrs = max_lrs
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        if up + down != 0 and not (up > 0 and down >= 0 and math.isfinite(up + down)):  # 0/0: torch's error
            raise ValueError(f"CyclicLR: step_size_up must be > 0 and step_size_down >= 0, got step_size_up="
                             f"{step_size_up!r}, step_size_down={step_size_down!r} (torch divides by them)")
        self.total_size = up + down  # a float, as in torch
        self.step_ratio = up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = use_beta1
            self.base_momentums = base_momentums
            self.max_momentums = max_momentums
            if last_epoch == -1:
                _start_momentum_cycle(optimizer, max_momentums, base_momentums, use_beta1)
        LRScheduler.__init__(self, optimizer, last_epoch)
        # torch's initial step used the groups' initial_lr (a tensor where the group's lr is);
        # every later step uses base_lr as given
        same = all(type(a) is type(b) and (a is b or not isinstance(a, torch.Tensor) and a == b)
                   for a, b in zip(self.base_lrs, base_lrs))
        self.base_lrs = base_lrs
        if not same:
            self.refresh()

    def _init_scale_fn(self) -> None:
        torch.optim.lr_scheduler.CyclicLR._init_scale_fn(self)
        self._lrfast_bound_scale = None if self._scale_fn_custom is not None else (self.mode, self.gamma)

    @property
    def _lrfast_host_recursive(self) -> bool:  # type: ignore[override]
        # a custom scale_fn is called by torch's get_lr on the host, once per step (no table);
        # so is a scale_mode edited away from the one the bound scale function goes with
        bound = self._lrfast_bound_scale
        return bound is None or self.scale_mode != ("iterations" if bound[0] == "exp_range" else "cycle")

    def _lrfast_cyclic(self, low: float, high: float) -> Schedule:
        up = self.total_size * self.step_ratio
        down = self.total_size - up
        mode, gamma = self._lrfast_bound_scale
        return S.cyclic(low, high, up, down, mode, gamma)

    def _lrfast_lr_schedules(self) -> list[Schedule]:
        return [self._lrfast_cyclic(host_float(b, sync=True), host_float(m, sync=True))
                for b, m in zip(self.base_lrs, self.max_lrs)]

    def _lrfast_momentum_schedules(self) -> list[Schedule] | None:
        if not self.cycle_momentum:
            return None
        # momentum = max - (max - base) * scale: a cycle from max_momentum towards base_momentum
        return [self._lrfast_cyclic(host_float(hi, sync=True), host_float(lo, sync=True))
                for lo, hi in zip(self.base_momentums, self.max_momentums)]

    state_dict = LRScheduler._lrfast_public_state(torch.optim.lr_scheduler.CyclicLR.state_dict)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        fn = state_dict.pop("_scale_fn_custom")
        try:
            LRScheduler.load_state_dict(self, state_dict)
        finally:
            state_dict["_scale_fn_custom"] = fn
        if fn is not None:
            self._scale_fn_custom.__dict__.update(fn)
        self._init_scale_fn()
        self.refresh()


class OneCycleLR(LRScheduler, torch.optim.lr_scheduler.OneCycleLR):
    r"""The 1cycle policy (torch's ``OneCycleLR``), momentum / beta1 cycled inversely when
    ``cycle_momentum``. Stepping past ``total_steps`` raises ``ValueError`` as torch does.
    """

    _lrfast_absolute = True
    _lrfast_checks_step = True  # past total_steps: torch's ValueError
    _lrfast_step_limit = "total_steps"  # all _lrfast_check_step checks (NOTE [fast step] in _base.py)
    total_steps = Watched()
    cycle_momentum = Watched()
    _anneal_func_type = DeletableWatched()
    _lrfast_mutable = ("base_lrs", "_schedule_phases")

    @property
    def _lrfast_group_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        """The group entries the phases read, as torch's get_lr reads them at each step."""
        momentum = ("max_momentum", "base_momentum") if self.cycle_momentum else ()
        return ("initial_lr", "max_lr", "min_lr", *momentum)

    @restore_groups_on_error  # NOTE [errors before state changes] in _base.py
    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float | list[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: Literal["cos", "linear"] = "cos", cycle_momentum: bool = True,
                 base_momentum: float | list[float] = 0.85, max_momentum: float | list[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            total = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            total = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        max_lrs = format_param("OneCycleLR", "max_lr", optimizer, max_lr)
        if holds_tensor(max_lrs):
            use_torch_code(self)
        use_beta1 = "betas" in optimizer.defaults
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and not use_beta1:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            max_momentums = format_param("OneCycleLR", "max_momentum", optimizer, max_momentum)
            base_momentums = format_param("OneCycleLR", "base_momentum", optimizer, base_momentum)
        # Checks done: now change state, in torch's order.
        self.optimizer = optimizer
        ends = S.one_cycle_phase_ends(total, pct_start, three_phase)
        if ends[0] == 0 or ends[-1] == ends[-2]:
            # torch divides by the phase's length: at step 0 (first phase) or total_steps (last)
            raise ValueError(
                f"OneCycleLR: pct_start={pct_start!r} with total_steps={total!r} gives a phase of length 0 "
                f"(phase ends {ends}), where torch divides by zero; choose pct_start so that every phase "
                f"has at least one step")
        self.total_steps = total
        if three_phase:
            names = [("initial_lr", "max_lr", "max_momentum", "base_momentum"),
                     ("max_lr", "initial_lr", "base_momentum", "max_momentum"),
                     ("initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            names = [("initial_lr", "max_lr", "max_momentum", "base_momentum"),
                     ("max_lr", "min_lr", "base_momentum", "max_momentum")]
        self._schedule_phases = [
            {"end_step": end, "start_lr": a, "end_lr": b, "start_momentum": c, "end_momentum": d}
            for end, (a, b, c, d) in zip(ends, names)]
        self._anneal_func_type = anneal_strategy
        if last_epoch == -1:
            for idx, group in enumerate(optimizer.param_groups):
                group["initial_lr"] = max_lrs[idx] / div_factor
                group["max_lr"] = max_lrs[idx]
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = use_beta1
            if last_epoch == -1:
                _start_momentum_cycle(optimizer, max_momentums, base_momentums, use_beta1)
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_phase_schedule(self, group: dict[str, Any], start_key: Literal["start_lr", "start_momentum"],
                               end_key: Literal["end_lr", "end_momentum"]) -> Schedule:
        ends = [p["end_step"] for p in self._schedule_phases]
        values = [host_float(group[self._schedule_phases[0][start_key]], sync=True)]
        values += [host_float(group[p[end_key]], sync=True) for p in self._schedule_phases]
        return S.one_cycle_phases(ends, values, self._lrfast_linear())

    def _lrfast_linear(self) -> bool:
        """Whether the phases anneal linearly (a legacy state dict names the function)."""
        if "_anneal_func_type" in self.__dict__:
            return self._anneal_func_type == "linear"
        return getattr(self, "anneal_func", None) is torch.optim.lr_scheduler.OneCycleLR._annealing_linear

    def _lrfast_lr_schedules(self) -> list[Schedule]:
        return [self._lrfast_phase_schedule(g, "start_lr", "end_lr") for g in self.optimizer.param_groups]

    def _lrfast_momentum_schedules(self) -> list[Schedule] | None:
        if not self.cycle_momentum:
            return None
        return [self._lrfast_phase_schedule(g, "start_momentum", "end_momentum") for g in self.optimizer.param_groups]

    def _lrfast_check_step(self, t: float) -> None:
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is {self.total_steps}")


class SWALR(LRScheduler, torch.optim.swa_utils.SWALR):
    r"""Anneals each group's LR from its value at construction to ``swa_lr`` over
    ``anneal_epochs`` steps, then holds it (torch's ``swa_utils.SWALR``); ``cos``:
    :math:`\eta = s + (\eta_0 - s)\tfrac12(1 + \cos(\pi k/K))`, ``linear``: a straight line.
    """

    _lrfast_counting = "steps"  # its own count, _step_count - 1: _lrfast_step_of (NOTE [fast step] in _base.py)
    anneal_epochs = Watched()
    _anneal_strategy = Watched()
    _lrfast_mutable = ("base_lrs", "_anneal_start_lrs")
    _lrfast_group_keys = ("swa_lr",)

    @restore_groups_on_error  # NOTE [errors before state changes] in _base.py
    def __init__(self, optimizer: torch.optim.Optimizer, swa_lr: float, anneal_epochs: int = 10,
                 anneal_strategy: Literal["cos", "linear"] = "cos", last_epoch: int = -1) -> None:
        swa_lrs = format_param("SWALR", "swa_lr", optimizer, swa_lr)
        if holds_tensor(swa_lrs):
            use_torch_code(self)
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        for value, group in zip(swa_lrs, optimizer.param_groups):
            group["swa_lr"] = value
        self._set_anneal_func(anneal_strategy)
        self.anneal_epochs = anneal_epochs
        # SWALR anneals from each group's LR at the moment it starts (kept in the state dict:
        # a resumed run anneals from the same LR; torch recovers it from the group's LR).
        self._anneal_start_lrs = [host_float(g["lr"], sync=True) for g in optimizer.param_groups]
        LRScheduler.__init__(self, optimizer, last_epoch)

    def _lrfast_lr_schedules(self) -> list[Schedule]:
        out = []
        for start, group in zip(self._anneal_start_lrs, self.optimizer.param_groups):
            swa = host_float(group["swa_lr"], sync=True)
            if self.anneal_epochs == 0:
                out.append(S.constant(swa))
            elif self._anneal_strategy == "linear":
                out.append(S.linear(start, swa, self.anneal_epochs))
            else:
                out.append(S.warmup_cosine_decay(start, start, 0, self.anneal_epochs, end_value=swa))
        return out

    def _lrfast_step_of(self, t: float) -> float:
        # SWALR counts its own steps (_step_count), whatever last_epoch says
        return max(0, self._step_count - 1)

    def _lrfast_prev_step(self, prev: float) -> float | None:
        k = self._step_count - 2  # the count of the previous step
        return None if k < 0 else k

    def _lrfast_start_values(self) -> np.ndarray:
        return np.array(self._anneal_start_lrs, dtype=np.float64)  # the LR the anneal starts from

    state_dict = LRScheduler._lrfast_public_state(torch.optim.swa_utils.SWALR.state_dict)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        LRScheduler.load_state_dict(self, state_dict)
        self._set_anneal_func(self._anneal_strategy)
