"""NOTE [pure lambdas]: which ``lr_lambda`` code a compiled step may call once for many groups.

torch's LambdaLR and MultiplicativeLR call each group's lambda at each step; a single function
given for every group is called once per group. lrfast's compiled step calls the lambdas as
torch does, with one exception it can prove unobservable: consecutive groups whose functions
run the same *pure* code get the value of one call. Pure here is a property of the code
object, checked once per code object from its bytecode, never guessed from values:

- one positional parameter (the step), no ``*args`` / ``**kwargs``, no keyword-only ones,
  no closure cells, not a generator or coroutine, no ``try`` (an empty exception table);
- every instruction is a load or store of a local, a load of a constant, arithmetic,
  a comparison, ``in``, ``is``, indexing, a tuple built from those, a forward jump or a
  return: no global or attribute is read, nothing is called, no loop;
- every constant loaded is an ``int``, ``float``, ``complex``, ``bool``, ``None``, or a
  ``tuple`` / ``frozenset`` of those (no ``str``: ``%`` formatting of an int depends on
  ``sys.set_int_max_str_digits``);
- the stack never underflows or outgrows ``co_stacksize`` and every local index is in
  range, along every path (bytecode made by hand is held to what the compiler makes).

Such code computes its value from the step (an exact ``int``) and constants with the
built-in types' own operations, so it reads no state and has no effect but its value or
its exception: a second call at the same step gives the same. Its frame can still let
other Python run (a signal handler, another thread, the collector): the compiled step
checks the lambdas, their code, the tracers and ``last_epoch`` again after the call, and
shares no value across a user's ``*`` (which may change the interpreter's limits). (``~`` is
left out: on a ``bool`` it warns since Python 3.12.) The compiled step still calls each
lambda once per group while a trace or profile function is set (``sys.settrace``,
``sys.setprofile``, debuggers and coverage on their classic hooks), which see every call,
and (Python 3.12+) for code a ``sys.monitoring`` tool has instrumented.

>>> is_pure_code((lambda t: 0.95 ** t).__code__)
True
>>> is_pure_code((lambda t: 1.0 if t < 10 else 0.1).__code__)
True
>>> warmup = 10
>>> is_pure_code((lambda t: min(1.0, t / warmup)).__code__)  # reads globals, calls min
False
"""

from __future__ import annotations

import dis
import inspect
import types

__all__ = ["is_pure_code"]

# the opcodes pure code may hold, by name across CPython 3.10 - 3.14 (a name a version lacks
# never matches); jumps are allowed forward only (checked below)
_PURE_OPNAMES = frozenset({
    # no effect on values
    "NOP", "RESUME", "CACHE", "EXTENDED_ARG", "NOT_TAKEN", "POP_TOP", "COPY", "SWAP",
    "ROT_TWO", "ROT_THREE", "DUP_TOP", "DUP_TOP_TWO",
    # locals and constants
    "LOAD_CONST", "LOAD_SMALL_INT", "LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_LOAD_FAST",
    "LOAD_FAST_BORROW", "LOAD_FAST_BORROW_LOAD_FAST_BORROW", "STORE_FAST", "STORE_FAST_LOAD_FAST",
    "STORE_FAST_STORE_FAST",
    # arithmetic, comparisons, indexing, tuples (3.11+: BINARY_OP; 3.10: one opcode per operator)
    "BINARY_OP", "BINARY_SUBSCR", "BINARY_POWER", "BINARY_MULTIPLY", "BINARY_MODULO", "BINARY_ADD",
    "BINARY_SUBTRACT", "BINARY_FLOOR_DIVIDE", "BINARY_TRUE_DIVIDE", "BINARY_LSHIFT", "BINARY_RSHIFT",
    "BINARY_AND", "BINARY_XOR", "BINARY_OR", "INPLACE_POWER", "INPLACE_MULTIPLY", "INPLACE_MODULO",
    "INPLACE_ADD", "INPLACE_SUBTRACT", "INPLACE_FLOOR_DIVIDE", "INPLACE_TRUE_DIVIDE", "INPLACE_LSHIFT",
    "INPLACE_RSHIFT", "INPLACE_AND", "INPLACE_XOR", "INPLACE_OR", "UNARY_NEGATIVE", "UNARY_NOT",
    "UNARY_POSITIVE", "TO_BOOL", "COMPARE_OP", "IS_OP", "CONTAINS_OP", "BUILD_TUPLE",
    # branches (forward) and returns
    "POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE", "POP_JUMP_IF_NONE", "POP_JUMP_IF_NOT_NONE",
    "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_TRUE", "POP_JUMP_FORWARD_IF_NONE",
    "POP_JUMP_FORWARD_IF_NOT_NONE", "JUMP_IF_FALSE_OR_POP", "JUMP_IF_TRUE_OR_POP", "JUMP_FORWARD",
    "JUMP_ABSOLUTE", "RETURN_VALUE", "RETURN_CONST",
})
_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)
_IMPURE_FLAGS = (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS | inspect.CO_GENERATOR | inspect.CO_COROUTINE
                 | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR)
_SCALAR_CONSTANTS = (int, float, complex, bool, type(None))
# what each opcode takes off the stack (COPY, SWAP, BUILD_TUPLE: their argument)
_TAKES = {name: 0 for name in ("NOP", "RESUME", "CACHE", "EXTENDED_ARG", "NOT_TAKEN", "LOAD_CONST", "LOAD_SMALL_INT",
                               "LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW",
                               "LOAD_FAST_BORROW_LOAD_FAST_BORROW", "JUMP_FORWARD", "JUMP_ABSOLUTE", "RETURN_CONST")}
_TAKES["ROT_THREE"] = 3
_TAKES.update({name: 2 for name in ("BINARY_OP", "BINARY_SUBSCR", "COMPARE_OP", "IS_OP", "CONTAINS_OP", "ROT_TWO",
                                    "DUP_TOP_TWO", "STORE_FAST_STORE_FAST")})
_TAKES.update({name: 2 for name in _PURE_OPNAMES if name.startswith(("BINARY_", "INPLACE_")) and name not in _TAKES})
_ENDS = frozenset({"JUMP_FORWARD", "JUMP_ABSOLUTE", "RETURN_VALUE", "RETURN_CONST"})  # no fall-through
_LOCAL_PAIRS = frozenset({"LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW_LOAD_FAST_BORROW", "STORE_FAST_LOAD_FAST",
                          "STORE_FAST_STORE_FAST"})  # two 4-bit local indices in one argument


def _pure_constant(value: object) -> bool:
    """A constant of the built-in types whose operations run no user code."""
    if type(value) in _SCALAR_CONSTANTS:
        return True
    if type(value) in (tuple, frozenset):
        return all(_pure_constant(item) for item in value)  # type: ignore[attr-defined]
    return False


def is_pure_code(code: object) -> bool:
    """Whether calling a function of this code with one ``int`` computes a value from it
    and constants alone (NOTE [pure lambdas] above). False for anything but a code object."""
    if type(code) is not types.CodeType:
        return False
    if (code.co_argcount != 1 or code.co_kwonlyargcount or code.co_flags & _IMPURE_FLAGS
            or code.co_freevars or code.co_cellvars or getattr(code, "co_exceptiontable", None)):
        return False
    try:
        return _pure_instructions(code)
    except (ValueError, IndexError, TypeError):  # bytecode dis cannot read: not pure
        return False


def _pure_instructions(code: types.CodeType) -> bool:
    """The instructions' part of is_pure_code: each allowed, each constant of a pure type,
    jumps forward, and the stack depth (followed along every path) and local indices in range."""
    depth: int | None = 0  # None: not reached by falling through
    depth_at: dict[int, int] = {}  # the depth each jump brings to its target
    for instruction in dis.get_instructions(code):
        name, arg = instruction.opname, instruction.arg
        if name not in _PURE_OPNAMES:
            return False
        if name in ("LOAD_CONST", "RETURN_CONST") and not _pure_constant(instruction.argval):
            return False
        if "FAST" in name:
            if arg is None:
                return False
            indices = (arg >> 4, arg & 15) if name in _LOCAL_PAIRS else (arg,)
            if any(i >= code.co_nlocals for i in indices):
                return False
        joined = depth_at.pop(instruction.offset, None)
        if joined is not None:
            if depth is not None and depth != joined:
                return False
            depth = joined
        if depth is None:
            continue  # unreachable
        takes = (arg or 0) if name in ("COPY", "SWAP", "BUILD_TUPLE") else _TAKES.get(name, 1)
        if (name in ("COPY", "SWAP") and takes < 1) or takes > depth:
            return False
        oparg = arg if instruction.opcode >= dis.HAVE_ARGUMENT else None
        if instruction.opcode in _JUMPS:
            target = instruction.argval
            if not (isinstance(target, int) and target > instruction.offset):
                return False
            reached = depth + dis.stack_effect(instruction.opcode, oparg, jump=True)
            if depth_at.setdefault(target, reached) != reached:
                return False
        depth = None if name in _ENDS else depth + dis.stack_effect(instruction.opcode, oparg, jump=False)
        if depth is not None and not 0 <= depth <= code.co_stacksize:
            return False
    return not depth_at  # every jump lands on an instruction
