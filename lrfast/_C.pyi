# Types of lrfast._C, the private compiled core (csrc/bindings.cpp): pybind11 modules carry
# no annotations mypy can read, so the public modules that call into it would be unchecked.
# tests/test_typing.py checks that every function here exists in the built module with these
# parameter names, and that the module has no function this stub leaves out.

from collections.abc import Callable
from typing import Any, SupportsFloat, SupportsIndex, TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

class _BuildInfo(TypedDict):
    version: str
    cuda_built: bool
    cuda_archs: str
    cuda_compiler: str
    cuda_reason: str
    cxx_compiler: str
    emulated: bool

class _Layout(TypedDict):
    version: int
    header_size: int
    max_segments: int
    segment_params: int
    segment_size: int
    descriptor_size: int
    kinds: dict[str, int]
    cyclic_modes: dict[str, int]
    # NOTE [segment parameters]: params[kind][name] is the parameter's index (the first of a run,
    # for one_cycle's phase_ends and phase_values); param_counts[kind]: how many the kind uses
    params: dict[str, dict[str, int]]
    param_counts: dict[str, int]
    header: dict[str, int]
    segment: dict[str, int]
    # slot counts and sizes, two nested slot maps ("tensor", "group") and the code maps
    # "lr_sources", "algorithms", "counter_modes" (fused_tables.h)
    fused: dict[str, Any]
    plateau: dict[str, int]
    scalar_types: dict[str, int]  # cuda/cuda_api.h's dtype codes

def has_cuda() -> bool: ...
def build_info() -> _BuildInfo: ...
def layout() -> _Layout: ...
def evaluate(descriptors: ArrayLike, table: ArrayLike, steps: ArrayLike) -> NDArray[np.float64]: ...
def evaluate_at(descriptors: ArrayLike, table: ArrayLike,
                step: SupportsFloat | SupportsIndex) -> NDArray[np.float64]: ...
def evaluate_at_trusted(descriptors: ArrayLike, table: ArrayLike, step: SupportsFloat | SupportsIndex,
                        out: NDArray[np.float64]) -> None: ...
def evaluate_rows_trusted(descriptors: ArrayLike, table: ArrayLike, steps: ArrayLike,
                          out: NDArray[np.float64]) -> None: ...

# NOTE [one step rule] (lrfast/lr_scheduler/_base.py): the floats written, or one of the codes.
STEP_NEEDS_COEFFICIENTS: int
STEP_NOT_FLOAT: int
def step_groups(descriptors: ArrayLike, table: ArrayLike, step: SupportsFloat | SupportsIndex,
                groups: list[dict[str, Any]], key: str, tuple_slot: int, cur: NDArray[np.float64],
                prev: NDArray[np.float64] | None, coeffs: tuple[Any, Any, Any] | None,
                on_out: NDArray[np.float64], row_of: NDArray[np.float64] | None) -> Any: ...
# NOTE [fast step] (lrfast/lr_scheduler/_base.py): a scheduler program's whole common step.
class FastStep:
    def step(self, scheduler: Any, runtime: Any) -> bool: ...
def bind_runtime(runtime: type) -> None: ...
def make_fast_step(program: Any, n: int, lr: tuple[Any, ...] | None, momentum: tuple[Any, ...] | None,
                   on: NDArray[np.float64] | None, watched: tuple[tuple[str, Any, bool], ...],
                   group_keys: tuple[str, ...], group_items: list[Any] | None, limit_name: str | None, absolute: bool,
                   counting: int, callables: int, tensors: list[tuple[int, Any, NDArray[Any]]],
                   bump: Any, pure_check: Callable[[Any], bool] | None = None) -> FastStep: ...
# NOTE [plateau host step] (lrfast/lr_scheduler/_plateau.py): a float-metric step.
class GroupRecord:
    def __init__(self) -> None: ...
    def recorded(self) -> int: ...

def plateau_host_step(scheduler: Any, metric: float, reduces: bool, record: GroupRecord | None) -> bool: ...
def validate(descriptors: ArrayLike, table_size: int) -> None: ...
def validate_plateau(descriptors: ArrayLike, table_size: int, n_min_lrs: int) -> None: ...
def plateau_slots(descriptors: ArrayLike, table_size: int) -> NDArray[np.int64]: ...
def plateau_step_host(state: NDArray[np.float64], table: NDArray[np.float64], descriptors: ArrayLike,
                      min_lrs: ArrayLike, metric: SupportsFloat | None, step: float, factor: float,
                      threshold: float, eps: float, patience: float, cooldown: float, mode: int,
                      threshold_mode: int, composed: bool, lrs: NDArray[np.float64]) -> bool: ...
def cuda_device_count() -> tuple[int, str]: ...

# The CUDA launchers (CUDA builds only; see csrc/cuda/cuda_api.h): device pointers as ints.
def cuda_evaluate_schedules(descriptors: int, n_descriptors: int, table: int, steps: int, n_steps: int, out: int,
                            stream: int, device: int) -> None: ...
def cuda_write_scheduled_values(descriptors: int, table: int, n_groups: int, targets: int, dtypes: int, out: int,
                                counter: int, increment: int, host_step: float, stream: int, device: int) -> None: ...
def cuda_plateau_step(metric: int, metric_dtype: int, state: int, descriptors: int, table: int, min_lrs: int,
                      n_groups: int, step: float, targets: int, dtypes: int, out: int, factor: float, threshold: float,
                      eps: float, patience: float, cooldown: float, mode: int, threshold_mode: int, composed: bool,
                      stream: int, device: int) -> None: ...
def cuda_fused_step(algorithm: int, dtype: int, tensors: int, n_tensors: int, n_chunks: int, groups: int,
                    lr_tensors: int, lr_descriptors: int, lr_table: int, beta1_descriptors: int, beta1_table: int,
                    step_counter: int, counter_mode: int, counter_next: int, hold_counter_on_skip: bool,
                    grad_scale: int, found_inf: int, ticket: int, stream: int, device: int) -> None: ...
