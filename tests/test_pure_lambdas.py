"""NOTE [pure lambdas] (lrfast/lr_scheduler/_pure.py): which lr_lambda code one call may serve
for many groups, and LambdaLR / MultiplicativeLR equal to torch whatever the lambdas are --
pure, impure, mixed, replaced mid-run, raising, traced -- at 1, 10 and 100 groups, with the
groups edited, replaced, repeated or given tensors between the steps."""

from __future__ import annotations

import gc
import opcode
import sys
import threading
import types

import pytest
import torch
from lr_scheduler_harness import TORCH, as_float

from lrfast import lr_scheduler as L
from lrfast.lr_scheduler import _base
from lrfast.lr_scheduler._pure import is_pure_code

SCALE = 5  # a global: a lambda reading it is not pure


def _code(source: str) -> types.CodeType:
    return eval(source).__code__  # noqa: S307 - the tests' own text


PURE = [
    "lambda t: 0.95 ** t",
    "lambda t: 0.5",
    "lambda t: 1.0 if t < 10 else 0.1",
    "lambda t: (1.0, 0.5, 0.1)[t // 10]",
    "lambda t: 0.1 if t in (3, 4) else 1.0",
    "lambda t: t > 3 and t < 9",
    "lambda t: -t / 7 + 2 % 3 - (t << 1) * 1e-3",
    "lambda t: t is None",
    "lambda t: 0.5 if not t else 1.0",
    "lambda t: (1 + 2j) * t",
]
IMPURE = [
    "lambda t: SCALE * t",  # a global
    "lambda t: min(1.0, t)",  # a builtin, called
    "lambda t: t.real",  # an attribute
    "lambda t: ~t",  # warns on a bool (3.12+)
    "lambda t, k: t",  # two parameters
    "lambda t, k=3: t * k",  # a default
    "lambda *a: 1.0",  # *args
    "lambda t, **k: 1.0",  # **kwargs
    "lambda t: (yield t)",  # a generator
    "lambda t: (lambda: t)",  # a nested function
    "lambda t: [1.0, 0.5][t % 2]",  # a list built
    "lambda t: {t: 1.0}[t]",  # a dict built
    "lambda t: f'{t}'",  # formatting calls __format__
    "lambda t: (u := t * 2) + u",  # a walrus: a local, pure
]


@pytest.mark.parametrize("source", PURE)
def test_pure_code_is_accepted(source):
    assert is_pure_code(_code(source)) is True


@pytest.mark.parametrize("source", IMPURE[:-1])
def test_code_that_reads_state_calls_or_takes_other_arguments_is_refused(source):
    assert is_pure_code(_code(source)) is False


def test_a_walrus_local_is_pure():
    assert is_pure_code(_code(IMPURE[-1])) is True


def test_loops_try_closures_and_non_code_are_refused():
    def loop(t):
        x = 0
        while x < t:
            x += 1
        return x

    def guarded(t):
        try:
            return 1 / t
        except ZeroDivisionError:
            return 0.0

    def outer():
        c = 3
        return lambda t: c * t

    for fn in (loop, guarded, outer()):
        assert is_pure_code(fn.__code__) is False
    assert is_pure_code(None) is False
    assert is_pure_code(lambda t: 1) is False  # a function, not its code


class _Factor:
    """A constant whose * runs Python: smuggled into a code object's constants."""

    calls = 0

    def __rmul__(self, other):
        _Factor.calls += 1
        return 0.5


def test_a_code_object_given_constants_of_other_types_is_refused():
    code = _code("lambda t: 0.5 * t")
    index = code.co_consts.index(0.5)
    consts = list(code.co_consts)
    consts[index] = _Factor()
    assert is_pure_code(code.replace(co_consts=tuple(consts))) is False
    consts[index] = (1.0, _Factor())
    assert is_pure_code(code.replace(co_consts=tuple(consts))) is False
    consts[index] = (1.0, (0.5, None, frozenset({1, 2}), 2j))
    assert is_pure_code(code.replace(co_consts=tuple(consts))) is True
    consts[index] = "%d"  # str: formatting an int depends on sys.set_int_max_str_digits
    assert is_pure_code(code.replace(co_consts=tuple(consts))) is False


def _with_instruction(template: types.CodeType, replaced: str, name: str, arg: int) -> types.CodeType:
    """template with its first ``replaced`` instruction (argument 0) made ``name arg``."""
    code = bytearray(template.co_code)
    at = code.index(bytes([opcode.opmap[replaced], 0]))
    code[at:at + 2] = bytes([opcode.opmap[name], arg])
    return template.replace(co_code=bytes(code))


def test_bytecode_made_by_hand_is_held_to_the_stack_and_the_locals_the_compiler_gives():
    template = (lambda t: t * 0.5).__code__
    assert is_pure_code(template) is True
    # a copy from below an empty stack (on 3.11 it reaches the frame's globals)
    below = _with_instruction(template, "LOAD_FAST", "COPY", 9) if "COPY" in opcode.opmap else \
        _with_instruction(template, "LOAD_FAST", "ROT_TWO", 0)
    assert is_pure_code(below) is False
    assert is_pure_code(_with_instruction(template, "LOAD_FAST", "LOAD_FAST", 5)) is False  # no local 5
    assert is_pure_code(template.replace(co_stacksize=1)) is False  # two values on a stack of one


def _in_a_collection(pure, action) -> callable:
    """A gc callback running ``action`` once, from inside a call of ``pure`` (3.10 / 3.11
    collect inside the allocation of the tuples pure builds)."""
    armed = [True]

    def callback(phase, info):
        if phase != "start" or not armed[0]:
            return
        frame = sys._getframe(1)
        while frame is not None and frame.f_code is not pure.__code__:
            frame = frame.f_back
        if frame is not None:
            armed[0] = False
            action()
    return callback


@pytest.mark.parametrize("moved", ["lambdas", "code", "trace", "last_epoch", "group_0", "base_0"])
@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_python_run_inside_the_one_shared_call_is_seen_as_torch_would_see_it(name, moved):
    if moved == "base_0" and name == "MultiplicativeLR":
        moved = "group_0"

    def run(module):
        opt = _optimizer(3)
        pure = eval("lambda t: ((t,) * 30 + (t,) * 30 + (t,) * 30)[0] * 0 + 0.5")  # noqa: S307 - allocates
        assert is_pure_code(pure.__code__)
        other = eval("lambda t: 0.25 if t < 8 else 0.125")  # noqa: S307
        sched = getattr(module, name)(opt, pure)
        calls = []

        def action():
            if moved == "lambdas":
                sched.lr_lambdas[1] = sched.lr_lambdas[2] = other
            elif moved == "code":
                pure.__code__ = other.__code__
            elif moved == "trace":
                code = pure.__code__
                sys.settrace(lambda frame, event, arg: calls.append(1) if frame.f_code is code else None)
            elif moved == "last_epoch":
                sched.last_epoch = 10
            elif moved == "group_0":
                opt.param_groups[0]["lr"] = 50.0
            else:
                sched.base_lrs[0] = 50.0
        for _ in range(3):
            sched.step()
        threshold = gc.get_threshold()
        callback = _in_a_collection(pure, action)
        gc.callbacks.append(callback)
        gc.set_threshold(1, 1, 1)
        try:
            sched.step()
        finally:
            gc.callbacks.remove(callback)
            gc.set_threshold(*threshold)
            sys.settrace(None)
        return [g["lr"] for g in opt.param_groups], sched.get_last_lr(), sched.last_epoch, len(calls)

    assert run(L) == run(TORCH)


def _optimizer(groups: int, lr=lambda g: 0.01 * (1 + g % 3)) -> torch.optim.SGD:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr(g)} for g, p in enumerate(params)], lr=0.01, momentum=0.9)


def _twins(name: str, groups: int, lr_lambda, **kwargs):
    opt_t, opt_f = _optimizer(groups, **kwargs), _optimizer(groups, **kwargs)
    return getattr(TORCH, name)(opt_t, lr_lambda), getattr(L, name)(opt_f, lr_lambda)


def _same(s_t, s_f, where) -> None:
    for gt, gf in zip(s_t.optimizer.param_groups, s_f.optimizer.param_groups, strict=True):
        assert type(gf["lr"]) is type(gt["lr"]), where
        assert as_float(gf["lr"]) == as_float(gt["lr"]), where  # the same products: bit for bit
    assert [as_float(v) for v in s_f.get_last_lr()] == [as_float(v) for v in s_t.get_last_lr()], where
    assert (s_f.last_epoch, s_f._step_count) == (s_t.last_epoch, s_t._step_count), where


def _no_python_step(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the Python step ran")
    monkeypatch.setattr(_base.LRScheduler, "_lrfast_write", refuse)


@pytest.mark.parametrize("groups", [1, 10, 100])
@pytest.mark.parametrize(("name", "source"), [("LambdaLR", "lambda t: 0.95 ** t"),
                                              ("LambdaLR", "lambda t: (1.0, 0.5, 0.1)[min_t]"),
                                              ("MultiplicativeLR", "lambda t: 0.9 if t % 3 else 1.1")])
def test_one_pure_lambda_for_every_group_gives_torch_s_values_on_the_compiled_step(name, source, groups, monkeypatch):
    source = source.replace("min_t", "(t // 4 if t < 12 else 2)")
    s_t, s_f = _twins(name, groups, eval(source))  # noqa: S307
    for s in (s_t, s_f):
        s.step()
    assert s_f._lrfast_rt.fast is not None
    _no_python_step(monkeypatch)
    for k in range(20):
        s_t.step()
        s_f.step()
        _same(s_t, s_f, k)


def _counting_profile(code: types.CodeType, counts: list[int]):
    def profile(frame, event, arg):
        if event == "call" and frame.f_code is code:
            counts[0] += 1
    return profile


@pytest.mark.parametrize("hook", ["settrace", "setprofile"])
@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_a_trace_or_profile_function_sees_every_call_torch_makes(name, hook):
    pure = eval("lambda t: 0.9 ** t")  # noqa: S307
    s_t, s_f = _twins(name, 7, pure)
    for s in (s_t, s_f):
        s.step()
    seen = {"torch": [0], "lrfast": [0]}
    set_hook = getattr(sys, hook)
    old = (sys.gettrace(), sys.getprofile())
    try:
        for k in range(4):
            for impl, s in (("torch", s_t), ("lrfast", s_f)):
                set_hook(_counting_profile(pure.__code__, seen[impl]))
                s.step()
                set_hook(None)
            _same(s_t, s_f, k)
    finally:
        sys.settrace(old[0])
        sys.setprofile(old[1])
    assert seen["lrfast"] == seen["torch"] == [4 * 7]


_HITS: list[int] = []


def _impure(t):  # appends to a global list: each call counts
    _HITS.append(t)
    return 0.25


def test_replacing_a_pure_function_s_code_in_place_is_seen_at_the_next_step():
    hits, impure = _HITS, _impure
    pure = eval("lambda t: 0.5")  # noqa: S307
    opt_t, opt_f = _optimizer(4), _optimizer(4)
    s_t, s_f = TORCH.LambdaLR(opt_t, lambda t: 0.5), L.LambdaLR(opt_f, pure)
    for _ in range(3):
        s_t.step()
        s_f.step()
    pure.__code__ = impure.__code__  # the same function object, impure code now
    s_t.lr_lambdas = [impure] * 4
    hits.clear()
    s_f.step()
    assert len(hits) == 4 and hits == [s_f.last_epoch] * 4  # each group's call made
    hits.clear()
    s_t.step()
    assert len(hits) == 4
    _same(s_t, s_f, "after the code was replaced")


@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_pure_impure_and_distinct_lambdas_mixed_are_called_as_torch_calls_them(name):
    calls = {"torch": [], "lrfast": []}
    box = {"impl": "torch"}

    def impure(t):
        calls[box["impl"]].append(t)
        return 0.8

    pure_a = eval("lambda t: 0.9 ** (t % 5)")  # noqa: S307
    pure_b = eval("lambda t: 0.9 ** (t % 5)")  # noqa: S307 - another function, the same code
    other = eval("lambda t: 1.01")  # noqa: S307
    lambdas = [pure_a, pure_a, impure, pure_b, pure_a, other, other, impure]
    opt_t, opt_f = _optimizer(8), _optimizer(8)
    s_t = getattr(TORCH, name)(opt_t, list(lambdas))
    box["impl"] = "lrfast"
    s_f = getattr(L, name)(opt_f, list(lambdas))
    for k in range(8):
        for impl, s in (("torch", s_t), ("lrfast", s_f)):
            box["impl"] = impl
            s.step()
        _same(s_t, s_f, k)
    assert calls["lrfast"] == calls["torch"]


@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_a_pure_lambda_that_raises_leaves_everything_as_it_was(name):
    lam = eval("lambda t: 1.0 / (t - 4)")  # noqa: S307
    s_t, s_f = _twins(name, 6, lam)
    for k in range(3):
        s_t.step()
        s_f.step()
        _same(s_t, s_f, k)
    before = ([g["lr"] for g in s_f.optimizer.param_groups], s_f.last_epoch, s_f._step_count, s_f.get_last_lr())
    for s in (s_t, s_f):
        with pytest.raises(ZeroDivisionError):
            s.step()
    assert ([g["lr"] for g in s_f.optimizer.param_groups], s_f.last_epoch, s_f._step_count,
            s_f.get_last_lr()) == before  # lrfast raises before any state changes (torch moves its counts)


def _edit(opt, k: int) -> None:
    """Step k's hand edit of the groups (the same on both twins)."""
    groups = opt.param_groups
    if k == 2:
        groups[1]["lr"] = 0.3  # a float written over
    elif k == 4:
        groups[0] = dict(groups[0])  # the dict replaced by an equal one
    elif k == 6:
        groups[2]["lr"] = torch.tensor(0.2, dtype=torch.float64)  # a tensor, filled from now on
    elif k == 8:
        groups[2]["lr"] = 0.05
        groups[3]["momentum"] = 0.5  # another key: the LR record still holds
    elif k == 10:
        groups[1]["lr"] = 2  # an int
    elif k == 12:
        groups[4] = groups[0]  # one dict twice in the list
    elif k == 14:
        groups[0]["lr"] = 0.125  # that dict edited: both its places
    elif k == 16:
        groups[4] = dict(groups[0])


@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
@pytest.mark.parametrize("source", ["lambda t: 0.9", "lambda t: 0.5 if t % 2 else 1.5", "lambda t: 1"])
def test_groups_edited_replaced_or_repeated_between_steps_give_torch_s_values(name, source):
    lam = eval(source)  # noqa: S307
    s_t, s_f = _twins(name, 5, lam)
    for k in range(20):
        _edit(s_t.optimizer, k)
        _edit(s_f.optimizer, k)
        s_t.step()
        s_f.step()
        _same(s_t, s_f, k)


def test_base_lrs_edited_mid_run_are_read_by_the_pure_path():
    lam = eval("lambda t: 0.5 ** (t % 4)")  # noqa: S307
    s_t, s_f = _twins("LambdaLR", 10, lam)
    for k in range(12):
        if k == 5:
            for s in (s_t, s_f):
                s.base_lrs = [b * 3 for b in s.base_lrs]
        if k == 8:
            for s in (s_t, s_f):
                s.base_lrs[3] = 2  # an int base: its product takes Python's *
        s_t.step()
        s_f.step()
        _same(s_t, s_f, k)


def test_a_thread_editing_the_groups_while_pure_lambdas_run_never_leaves_a_stale_record():
    # the interpreter may switch threads inside a lambda's frame: whatever the other thread
    # wrote before a step, the next steps multiply what the group then holds (torch's rule)
    lam = eval("lambda t: 0.999")  # noqa: S307
    opt = _optimizer(50, lr=lambda g: 1.0)
    s = L.MultiplicativeLR(opt, lam)
    stop = threading.Event()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def edit():
        while not stop.is_set():
            opt.param_groups[7]["lr"] = 1.0

    thread = threading.Thread(target=edit)
    thread.start()
    try:
        for _ in range(300):
            s.step()
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    opt.param_groups[7]["lr"] = 1.0
    for k in range(5):
        held = [g["lr"] for g in opt.param_groups]
        s.step()
        assert [g["lr"] for g in opt.param_groups] == [v * 0.999 for v in held], k


@pytest.mark.parametrize("edit", ["float", "tensor", "replace"])
@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_a_lambda_editing_a_later_group_mid_step_is_read_as_torch_reads_it(name, edit):
    # an impure lambda at group 0 edits group 3 while the step runs, the other groups' lambda
    # is pure: group 3's LR is read (MultiplicativeLR) and written (both) as it then is
    box = {}

    def editing(t):
        groups = box["opt"].param_groups
        if t == 4:
            if edit == "float":
                groups[3]["lr"] = 0.7
            elif edit == "tensor":
                groups[3]["lr"] = torch.tensor(0.7, dtype=torch.float64)
            else:
                groups[3] = dict(groups[3], lr=0.7)
        return 0.9

    pure = eval("lambda t: 0.8")  # noqa: S307
    opt_t, opt_f = _optimizer(6), _optimizer(6)
    box["opt"] = opt_t
    s_t = getattr(TORCH, name)(opt_t, [editing] + [pure] * 5)
    box["opt"] = opt_f
    s_f = getattr(L, name)(opt_f, [editing] + [pure] * 5)
    for k in range(8):
        for opt, s in ((opt_t, s_t), (opt_f, s_f)):
            box["opt"] = opt
            s.step()
        _same(s_t, s_f, k)


def test_a_lambda_moving_last_epoch_changes_what_the_later_groups_get_as_in_torch():
    def run(module):
        opt = _optimizer(3)
        box = {}

        def first(t):
            if t == 3:
                box["s"].last_epoch = 10
            return 1.0

        later = eval("lambda t: 0.5 if t < 5 else 0.25")  # noqa: S307 - pure: shared only at one epoch
        box["s"] = sched = module.LambdaLR(opt, [first, later, later])
        out = []
        for _ in range(4):
            sched.step()
            out.append((sched.last_epoch, sched.get_last_lr()))
        return out

    assert run(L) == run(TORCH)


class _LimitingBase(float):
    """A base LR whose * lowers the int-to-str limit (a user's code run between two calls)."""

    def __mul__(self, other):
        sys.set_int_max_str_digits(4300)
        return float(self) * other

    __rmul__ = __mul__


def test_a_user_s_multiplication_between_two_calls_is_never_shared_across():
    formatting = eval("lambda t: 0.5 if '%d' % (10 ** 5000 + t) else 0.25")  # noqa: S307
    limit = sys.get_int_max_str_digits()

    def run(module):
        opt = _optimizer(2)
        sched = module.LambdaLR(opt, lambda t: 1.0)
        sched.lr_lambdas[:] = [formatting, formatting]
        sys.set_int_max_str_digits(0)
        try:
            sched.step()
            sched.base_lrs[0] = _LimitingBase(1.0)
            sys.set_int_max_str_digits(0)
            with pytest.raises(ValueError, match="integer string conversion"):
                sched.step()
        finally:
            sys.set_int_max_str_digits(limit)
        return [g["lr"] for g in opt.param_groups]

    assert run(L) == run(TORCH)
