"""The learning-rate range test (Smith 2015): :func:`find_lr`.

Train for up to ``num_steps`` steps while the LR grows from ``min_lr`` to ``max_lr``,
record the loss, stop when it diverges, and suggest the LR where the smoothed loss falls
fastest. The model and the optimizer are put back as they were afterwards.

NOTE [range test on the device] On a CUDA device (and the emulated one, NOTE [emulated
device]) the loss, its running average, the best smoothed loss and the step where the
loss diverged are device tensors, updated with torch ops after each step; nothing is
read on the host at each step. The host reads the divergence step once every
``check_every`` steps (to stop early) and everything recorded once at the end. The steps
run after the divergence and before the next read are wasted work but change no result:
the record is cut at the divergence either way. On the CPU a read costs nothing: the
loss is read at every step and tracked in Python floats, Lightning's arithmetic exactly.
The LR itself comes from the host's schedule (a stock optimizer: written into the
groups, a float assigned or a tensor filled in place, neither a read) or, for
:mod:`lrfast.optim` optimizers, from the kernel, which evaluates the range test's
:class:`~lrfast.schedules.Schedule` at each group's ``lr_step`` (NOTE [schedule as lr]
in ``lrfast/optim/_base.py``).

NOTE [Lightning's sequence] The LRs, the smoothing and the stop rule are Lightning's
``Tuner.lr_find`` (2.x), so the two give the same curve and suggestion:

- LR at step ``k``: ``min_lr`` at step 0, then ``min_lr * (max_lr / min_lr) ** ((k + 1) / num_steps)``
  (exponential) or ``min_lr + (k + 1) / num_steps * (max_lr - min_lr)`` (linear): the
  last step reaches ``max_lr``; the exponent ``1 / num_steps`` is skipped, as Lightning's
  scheduler skips it.
- smoothed loss: ``avg_k = beta * avg_{k-1} + (1 - beta) * loss_k`` (``avg_{-1} = 0``),
  divided by ``1 - beta ** (k + 2)``. Lightning corrects with the global step after the
  optimizer step, one more than the ``k + 1`` that makes the weights sum to 1, so its
  first smoothed losses read low (step 0: ``loss_0 / (1 + beta)``, about half) and the
  curve rises over the first few dozen steps for no reason of the model's;
  ``bias_correction="exact"`` divides by ``1 - beta ** (k + 1)`` instead.
- divergence at step ``k >= 1``: smoothed loss above ``diverge_factor`` times the lowest
  smoothed loss of steps ``0 .. k - 1``. The step that diverged is recorded and is the
  last one. Unlike Lightning, a NaN or infinite smoothed loss also counts as diverged
  (Lightning's comparisons are false for NaN, so it would train on to ``num_steps``).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .schedules import Schedule, constant, exponential_decay, join, linear
from .schedules._core import _real  # the factories' check: a finite real number, else TypeError/ValueError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["find_lr", "LRFinderResult", "range_test_schedule", "SUGGESTION_RULES", "BIAS_CORRECTIONS",
           "DEVICE_CHECK_EVERY"]

FN = "find_lr"
MODES = ("exponential", "linear")
SUGGESTION_RULES = ("lightning", "steep", "minimum", "valley")
# The smoothed loss at step k is the running average divided by 1 - beta ** (k + lag):
# Lightning's lag (2) or the exact one (1), which makes the weights of the average sum to 1.
BIAS_CORRECTIONS = {"lightning": 2, "exact": 1}
# Default ``check_every`` for losses on a CUDA device (or the emulated one): one host
# read per 10 steps, so at most 9 steps run past a divergence. (On the CPU the loss is
# read at every step: NOTE [range test on the device].)
DEVICE_CHECK_EVERY = 10
_LIGHTNING_SKIP_BEGIN, _LIGHTNING_SKIP_END = 10, 1  # Lightning's suggestion() defaults


# -- the result ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LRFinderResult:
    """What :func:`find_lr` measured. Arrays are float64, read-only, one entry per step
    recorded (``len(lrs)`` steps: up to and including the step that diverged)."""

    lrs: np.ndarray
    """The LR each recorded step used."""
    losses: np.ndarray
    """The loss each step returned, as read (raw)."""
    smoothed: np.ndarray
    """The bias-corrected running average of the losses (NOTE [Lightning's sequence])."""
    suggestion: float | None
    """The LR where the smoothed loss falls fastest against the LR, as Lightning's
    ``suggestion()`` picks it; None when there are too few finite points (fewer than 2
    after leaving out the first 10 and the last step)."""
    suggestion_index: int | None
    """The step of :attr:`suggestion` (an index into :attr:`lrs`)."""
    stop_reason: str
    """``"completed"`` (all ``num_steps`` steps), ``"diverged"`` (the smoothed loss passed
    ``diverge_factor`` times its best), ``"non-finite loss"`` (the smoothed loss became
    NaN or infinite, e.g. a NaN loss from the first step) or ``"out of batches"``."""
    stopped_at: int | None
    """The step where the loss diverged or became non-finite (the last one recorded); None otherwise."""
    steps_run: int
    """Optimizer steps taken: more than ``len(lrs)`` when the divergence was read a few steps late (``check_every``)."""
    num_steps: int
    """The ``num_steps`` asked for."""
    mode: str
    """``"exponential"`` or ``"linear"``."""

    def suggest(self, rule: str = "lightning") -> float | None:
        """A suggested LR by ``rule`` (None where the rule has too few finite points):

        - ``"lightning"``: :attr:`suggestion` (Lightning's: steepest fall of the smoothed
          loss against the LR itself, after the first 10 and before the last step).
        - ``"steep"``, ``"minimum"``, ``"valley"``: fastai's ``lr_find`` rules, on the
          smoothed losses of steps ``num_steps // 10`` to 5 before the end, cut at the first
          NaN, as fastai trims them. ``steep``: the LR where the smoothed loss falls
          fastest against log(LR) (finite differences); ``minimum``: a tenth of the LR with
          the lowest smoothed loss; ``valley``: in the longest run of steps whose smoothed
          losses could be picked in decreasing order, the point 1/3 + 1/6 of the way along.
        """
        index = self.suggestion_step(rule)
        if index is None:
            return None
        return float(self.lrs[index]) / (10.0 if rule == "minimum" else 1.0)

    def suggestion_step(self, rule: str = "lightning") -> int | None:
        """The step whose point ``rule`` picks (for ``"minimum"``, the lowest smoothed
        loss, whose LR it divides by 10); None where the rule has too few points."""
        if rule == "lightning":
            return self.suggestion_index
        if rule not in SUGGESTION_RULES:
            raise ValueError(f"LRFinderResult: rule must be one of {SUGGESTION_RULES}, got {rule!r}")
        return _fastai_index(rule, self.lrs, self.smoothed, self.num_steps)

    def plot(self, path: str | Path | None = None, *, rules: Sequence[str] = ("lightning",), raw: bool = True,
             title: str | None = None) -> Figure:
        """Draw the smoothed loss against the LR (log scale for an exponential test), the
        raw losses faintly when ``raw``, and the point each of ``rules`` picks (Lightning's
        suggestion alone by default, a red dot), labelled with the LR it suggests; save to
        ``path`` when given. Needs matplotlib (``pip install "lrfast[plot]"``).
        Returns the figure: ``fig.axes[0].lines[0]`` is the smoothed curve."""
        from .plotting import plot_range_test

        marks = []
        for rule in rules:
            step, lr = self.suggestion_step(rule), self.suggest(rule)
            if step is not None and lr is not None:
                marks.append((step, f"{rule}: {lr:.3g}"))
        return plot_range_test(self.lrs, self.smoothed, self.losses if raw else None, marks,
                               log_x=self.mode == "exponential", path=path,
                               title=title or f"LR range test ({self.stop_reason}, {len(self.lrs)} steps)")


def _lightning_index(lrs: np.ndarray, smoothed: np.ndarray) -> int | None:
    """The step with the most negative d(smoothed)/d(lr) (second-order differences on the
    uneven LR grid), over the finite points of steps 10 .. n - 2; None below two points."""
    kept = np.arange(len(smoothed))[_LIGHTNING_SKIP_BEGIN:-_LIGHTNING_SKIP_END]
    kept = kept[np.isfinite(smoothed[kept])]
    if len(kept) < 2:
        return None
    gradient = np.gradient(smoothed[kept], lrs[kept])
    return int(kept[int(np.argmin(gradient))])


def _fastai_index(rule: str, lrs: np.ndarray, smoothed: np.ndarray, num_steps: int) -> int | None:
    first = num_steps // 10
    stop = max(first, len(smoothed) - 5)
    nan = np.flatnonzero(np.isnan(smoothed[first:stop]))
    if len(nan):
        stop = first + int(nan[0])
    window = smoothed[first:stop]
    if rule == "minimum":
        return first + int(np.argmin(window)) if len(window) else None
    if len(window) < 2:
        return None
    if rule == "steep":
        slopes = np.diff(window) / np.diff(np.log(lrs[first:stop]))
        return first + int(np.argmin(slopes))
    # valley: run[i] = the longest decreasing pick of losses ending at i
    run = np.ones(len(window), dtype=np.int64)
    end = 0
    for i in range(1, len(window)):
        below = window[:i] > window[i]
        if below.any():
            run[i] = run[:i][below].max() + 1
        if run[i] > run[end]:
            end = i
    start = end - int(run[end])
    length = (end - start) / 3
    return first + max(0, start + int(length) + int(length / 2))


# -- the schedule ----------------------------------------------------------------------

def range_test_schedule(min_lr: float, max_lr: float, num_steps: int, mode: str = "exponential") -> Schedule:
    """The LR of each step of :func:`find_lr` as a Schedule (NOTE [Lightning's sequence]).

    >>> s = range_test_schedule(1e-4, 1.0, 4)
    >>> [round(s(k), 12) for k in range(4)]
    [0.0001, 0.01, 0.1, 1.0]
    """
    a, b, n = _check_range("range_test_schedule", min_lr, max_lr, num_steps, mode)
    if mode == "exponential":
        ratio = b / a
        rest = exponential_decay(a * ratio ** (2 / n), n, ratio)
    else:
        second = a + 2 / n * (b - a)
        rest = constant(b) if n == 2 else linear(second, b, n - 2)
    return join([constant(a), rest], [1])


def _check_range(fn: str, min_lr: Any, max_lr: Any, num_steps: Any, mode: Any) -> tuple[float, float, int]:
    if mode not in MODES:
        raise ValueError(f"{fn}: mode must be one of {MODES}, got {mode!r}")
    a, b = _real(fn, "min_lr", min_lr), _real(fn, "max_lr", max_lr)
    if mode == "exponential" and a <= 0:
        raise ValueError(f"{fn}: min_lr must be > 0 for mode='exponential', got {min_lr!r}")
    if a < 0:
        raise ValueError(f"{fn}: min_lr must be >= 0, got {min_lr!r}")
    if a >= b:
        raise ValueError(f"{fn}: min_lr must be below max_lr, got min_lr={min_lr!r}, max_lr={max_lr!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral):
        raise TypeError(f"{fn}: num_steps must be an int, got {num_steps!r}")
    if num_steps < 2:
        raise ValueError(f"{fn}: num_steps must be >= 2, got {num_steps!r}")
    return a, b, int(num_steps)


# -- saving and restoring the state ------------------------------------------------------

def _saved(value: Any) -> tuple[Any, Any]:
    """(the object, a copy of its contents): tensors are restored in place."""
    if isinstance(value, torch.Tensor):
        return value, value.detach().clone()
    return value, copy.deepcopy(value)


def _put_back(original: Any, contents: Any) -> Any:
    if isinstance(original, torch.Tensor):
        with torch.no_grad():
            original.copy_(contents)
        return original
    return contents


class _Snapshot:
    """The model (parameters, gradients, buffers, train/eval flags) and the optimizer (its
    parameters, state, param groups; an lrfast optimizer's bound scheduler) as they were.
    Restoring writes the saved values back into the same tensor objects, so nothing that
    holds them (a CUDA graph, another optimizer) sees new storage."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, fused: bool) -> None:
        self.model, self.optimizer, self.fused = model, optimizer, fused
        # the optimizer's parameters too: one outside the model changes as much as one inside
        params = list({id(p): p for p in (*model.parameters(),
                                          *(p for g in optimizer.param_groups for p in g["params"]))}.values())
        self.tensors = [_saved(t) for t in (*params, *model.buffers())]
        self.grads = [(p, None if p.grad is None else _saved(p.grad)) for p in params]
        self.modes = [(m, m.training) for m in model.modules()]
        self.state = {id(p): (p, {k: _saved(v) for k, v in s.items()}) for p, s in optimizer.state.items()}
        self.groups = [(g, {k: _saved(v) for k, v in g.items() if k != "params"}) for g in optimizer.param_groups]
        self.scheduler_ref = optimizer._lrfast_scheduler_ref if fused else None  # type: ignore[attr-defined]

    def restore(self) -> None:
        with torch.no_grad():
            for original, contents in self.tensors:
                original.copy_(contents)
        for p, grad in self.grads:
            p.grad = None if grad is None else _put_back(*grad)
        for module, training in self.modes:
            module.training = training
        state = self.optimizer.state
        for added in [t for t in state if id(t) not in self.state]:
            del state[added]
        for param, entries in self.state.values():
            live = state[param]
            for key in [k for k in live if k not in entries]:
                del live[key]
            for key, (original, contents) in entries.items():
                live[key] = _put_back(original, contents)
        for group, entries in self.groups:
            for key in [k for k in group if k != "params" and k not in entries]:
                del group[key]
            for key, (original, contents) in entries.items():
                group[key] = _put_back(original, contents) if isinstance(original, torch.Tensor) else original
        if self.fused:
            optimizer: Any = self.optimizer
            for group in optimizer.param_groups:
                if "lr_schedule" in group:  # NOTE [schedule as lr]: the lr the optimizer wrote, again
                    optimizer._lrfast_write_lr(group, group["lr"])
            optimizer._lrfast_scheduler_ref = self.scheduler_ref
            optimizer.refresh()


# -- tracking the loss ----------------------------------------------------------------------

class _HostTracker:
    """The loss on the CPU: read at every step (no sync to avoid), the rest in Python
    floats, the arithmetic of Lightning's callback operation for operation."""

    def __init__(self, num_steps: int, beta: float, lag: int, factor: float, early_stop: bool) -> None:
        self.raw: list[float] = []
        self.smoothed: list[float] = []
        self.avg = self.best = 0.0
        self.stop = num_steps  # num_steps: not diverged
        self.num_steps, self.beta, self.factor, self.early_stop = num_steps, beta, factor, early_stop
        self.lag = lag

    def record(self, k: int, loss: torch.Tensor) -> None:
        value = loss.item()
        self.avg = self.beta * self.avg + (1.0 - self.beta) * value
        smoothed = self.avg / (1.0 - self.beta ** (k + self.lag))
        self.raw.append(value)
        self.smoothed.append(smoothed)
        if k == 0:
            self.best = smoothed
            return
        if self.early_stop and self.stop == self.num_steps and not (
                math.isfinite(smoothed) and smoothed <= self.factor * self.best):
            self.stop = k
        if smoothed < self.best:
            self.best = smoothed

    def diverged(self) -> bool:
        return self.stop < self.num_steps

    def read(self, taken: int) -> tuple[list[float], list[float], int]:
        return self.raw[:taken], self.smoothed[:taken], self.stop


class _DeviceTracker:
    """NOTE [range test on the device]: raw and smoothed losses, the running average, the
    best smoothed loss and the first diverged step, as tensors on the loss's device,
    updated by torch ops (no host read); :meth:`diverged` and :meth:`read` read."""

    def __init__(self, device: torch.device, num_steps: int, beta: float, lag: int, factor: float,
                 early_stop: bool) -> None:
        f64 = torch.float64
        self.raw = torch.full((num_steps,), math.nan, dtype=f64, device=device)
        self.smoothed = torch.full((num_steps,), math.nan, dtype=f64, device=device)
        self.avg = torch.zeros((), dtype=f64, device=device)
        self.best = torch.zeros((), dtype=f64, device=device)
        self.stop = torch.full((), num_steps, dtype=torch.int64, device=device)  # num_steps: not diverged
        self.num_steps, self.beta, self.factor, self.early_stop = num_steps, beta, factor, early_stop
        self.lag = lag

    def record(self, k: int, loss: torch.Tensor) -> None:
        raw, smoothed = self.raw[k], self.smoothed[k]
        raw.copy_(loss.detach().reshape(()))
        self.avg.mul_(self.beta).add_(raw, alpha=1.0 - self.beta)
        torch.div(self.avg, 1.0 - self.beta ** (k + self.lag), out=smoothed)
        if k == 0:
            self.best.copy_(smoothed)
            return
        if self.early_stop:
            fine = torch.isfinite(smoothed) & (smoothed <= self.best * self.factor)
            self.stop = torch.where(fine, self.stop, self.stop.clamp(max=k))  # the first step that diverged
        torch.fmin(self.best, smoothed, out=self.best)  # a NaN is no new best (and stops the test above)

    def diverged(self) -> bool:
        return int(self.stop) < self.num_steps  # a host read

    def read(self, taken: int) -> tuple[list[float], list[float], int]:
        values = torch.cat([self.raw[:taken], self.smoothed[:taken],
                            self.stop.to(torch.float64).reshape(1)]).tolist()  # one host read for everything
        return values[:taken], values[taken:2 * taken], int(values[-1])


# -- the test ----------------------------------------------------------------------------

def find_lr(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Any],
            loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor], *, min_lr: float = 1e-8, max_lr: float = 1.0,
            num_steps: int = 100, mode: str = "exponential", smoothing: float = 0.98, diverge_factor: float = 4.0,
            early_stop: bool = True, check_every: int | None = None,
            bias_correction: str = "lightning") -> LRFinderResult:
    """The learning-rate range test: train ``model`` with ``optimizer`` for up to
    ``num_steps`` steps while every param group's LR grows from ``min_lr`` to ``max_lr``,
    then put the model and the optimizer back as they were (parameters, gradients,
    buffers, train/eval modes, optimizer state, every param group key, ``lr`` included;
    tensors are restored in place) and return the losses and a suggested LR.

    Each step is ``loss = loss_fn(model, batch)``, ``optimizer.zero_grad()``,
    ``loss.backward()``, ``optimizer.step()``, in train mode. ``batches``: an iterable of
    whatever ``loss_fn`` takes (a DataLoader, a list); when it runs out before
    ``num_steps`` and can be iterated again (``iter(batches) is not batches``), a new pass
    starts, as Lightning's epochs do; a one-shot iterator that runs out ends the test
    (``stop_reason="out of batches"``). ``loss_fn`` moves the batch to the model's device.

    The LR sequence, the smoothing (``smoothing``: Lightning's ``beta``; ``bias_correction``:
    ``"lightning"``, or ``"exact"`` without Lightning's low start) and the stop rule
    (``diverge_factor``: Lightning's ``early_stop_threshold``; ``early_stop=False`` runs
    all steps) are Lightning's ``Tuner.lr_find`` (NOTE [Lightning's sequence]), except that
    a NaN or infinite smoothed loss stops the test too. With a stock torch optimizer the
    LR is written into each group before each step (a float assigned, a tensor filled in
    place); with an :mod:`lrfast.optim` optimizer the groups take the range test's
    Schedule as their lr (NOTE [schedule as lr]) and the kernel evaluates it; a bound
    lrfast scheduler is set aside meanwhile.

    On a CUDA device the losses are tracked on the device (NOTE [range test on the
    device]): no host read per step, one every ``check_every`` steps to stop early
    (default ``DEVICE_CHECK_EVERY`` = 10) and one at the end. A divergence is then
    noticed up to ``check_every - 1`` steps late; the result is the same. On the CPU,
    where a read costs nothing, the loss is read at every step and ``check_every`` is not
    used.

    Errors in the arguments and an empty ``batches`` raise before anything changes;
    an error inside a step restores the model and the optimizer, then propagates.

    >>> import torch, lrfast
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Linear(4, 1)
    >>> data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(8)]
    >>> before = model.weight.detach().clone()
    >>> result = lrfast.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), data,
    ...                         lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), num_steps=20)
    >>> len(result.lrs), float(result.lrs[0]), round(float(result.lrs[-1]), 12), torch.equal(model.weight, before)
    (20, 1e-08, 1.0, True)
    """
    # -- every check before anything changes
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{FN}: model must be a torch.nn.Module, got {model!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"{FN}: optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
    if not callable(loss_fn):
        raise TypeError(f"{FN}: loss_fn must be callable as loss_fn(model, batch), got {loss_fn!r}")
    _check_range(FN, min_lr, max_lr, num_steps, mode)
    schedule = range_test_schedule(min_lr, max_lr, num_steps, mode)
    num_steps = int(num_steps)
    beta = _real(FN, "smoothing", smoothing)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"{FN}: smoothing must be in [0, 1), got {smoothing!r}")
    if not isinstance(bias_correction, str) or bias_correction not in BIAS_CORRECTIONS:
        raise ValueError(f"{FN}: bias_correction must be one of {tuple(BIAS_CORRECTIONS)}, got {bias_correction!r}")
    lag = BIAS_CORRECTIONS[bias_correction]
    factor = _real(FN, "diverge_factor", diverge_factor)
    if factor <= 0:
        raise ValueError(f"{FN}: diverge_factor must be > 0, got {diverge_factor!r}")
    if not isinstance(early_stop, bool):
        raise TypeError(f"{FN}: early_stop must be a bool, got {early_stop!r}")
    if check_every is not None and (isinstance(check_every, bool) or not isinstance(check_every, numbers.Integral)
                                    or check_every < 1):
        raise ValueError(f"{FN}: check_every must be a positive int or None, got {check_every!r}")
    try:
        iterator = iter(batches)
    except TypeError:
        raise TypeError(f"{FN}: batches must be iterable, got {batches!r}") from None
    reiterable = iterator is not batches
    first = next(iterator, _END)
    if first is _END:
        raise ValueError(f"{FN}: batches is empty (got {batches!r}): the range test needs at least one batch")
    from .optim._base import FusedOptimizer

    fused = isinstance(optimizer, FusedOptimizer)
    lrs = schedule.values(num_steps)
    lrs.setflags(write=False)
    snapshot = _Snapshot(model, optimizer, fused)
    try:
        return _run(model, optimizer, fused, schedule, lrs, first, iterator, batches if reiterable else None,
                    loss_fn, num_steps, mode, beta, lag, factor, early_stop, check_every)
    finally:
        snapshot.restore()


_END = object()


def _install(optimizer: Any, fused: bool, schedule: Schedule, lr: float) -> None:
    """Step 0's LR in every group: an lrfast optimizer takes ``schedule`` as its groups'
    lr (NOTE [schedule as lr]), with no scheduler bound; a stock one gets ``lr``."""
    if fused:
        optimizer._lrfast_scheduler_ref = None
        for group in optimizer.param_groups:
            group["lr_schedule"] = schedule
            group["lr_step"] = 0
            optimizer._lrfast_write_lr(group, schedule(0))
        optimizer.refresh()
        return
    _write_lr(optimizer, lr)


def _write_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        current = group["lr"]
        if isinstance(current, torch.Tensor):
            current.fill_(lr)  # in place, no host read
        else:
            group["lr"] = lr


def _run(model: torch.nn.Module, optimizer: torch.optim.Optimizer, fused: bool, schedule: Schedule, lrs: np.ndarray,
         first: Any, iterator: Iterator[Any], source: Iterable[Any] | None, loss_fn: Callable, num_steps: int,
         mode: str, beta: float, lag: int, factor: float, early_stop: bool,
         check_every: int | None) -> LRFinderResult:
    from ._backend import device_api

    model.train()
    _install(optimizer, fused, schedule, float(lrs[0]))
    tracker: _HostTracker | _DeviceTracker | None = None
    every = 1
    batch, taken, fresh_pass = first, 0, False
    for k in range(num_steps):
        if k > 0:
            batch = next(iterator, _END)
            if batch is _END and source is not None and not fresh_pass:  # a new pass, as an epoch
                iterator, fresh_pass = iter(source), True
                batch = next(iterator, _END)
            if batch is _END:
                break
            fresh_pass = False
            if not fused:
                _write_lr(optimizer, float(lrs[k]))
        loss = loss_fn(model, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.is_floating_point():
            raise TypeError(f"{FN}: loss_fn must return a one-element floating-point tensor, got "
                            f"{type(loss).__name__} {getattr(loss, 'shape', '')} {getattr(loss, 'dtype', '')}".rstrip())
        if tracker is None:
            if loss.device.type != "cpu" or device_api.is_device(loss.device):
                every = check_every or DEVICE_CHECK_EVERY
                tracker = _DeviceTracker(loss.device, num_steps, beta, lag, factor, early_stop)
            else:
                tracker = _HostTracker(num_steps, beta, lag, factor, early_stop)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tracker.record(k, loss)
        taken = k + 1
        if early_stop and taken % every == 0 and taken < num_steps and tracker.diverged():
            break  # NOTE [range test on the device]: on a device, the one host read of these `every` steps
    assert tracker is not None  # the first batch always runs
    raw_values, smoothed_values, stop = tracker.read(taken)
    recorded = min(taken, stop + 1)
    raw = np.array(raw_values[:recorded], dtype=np.float64)
    smoothed = np.array(smoothed_values[:recorded], dtype=np.float64)
    if stop < num_steps:
        reason = "diverged" if math.isfinite(smoothed[-1]) else "non-finite loss"
    else:
        reason = "completed" if taken == num_steps else "out of batches"
    kept_lrs = np.array(lrs[:recorded])
    for array in (kept_lrs, raw, smoothed):
        array.setflags(write=False)
    index = _lightning_index(kept_lrs, smoothed)
    return LRFinderResult(
        lrs=kept_lrs, losses=raw, smoothed=smoothed,
        suggestion=None if index is None else float(kept_lrs[index]), suggestion_index=index,
        stop_reason=reason, stopped_at=stop if stop < num_steps else None, steps_run=taken,
        num_steps=num_steps, mode=mode)
