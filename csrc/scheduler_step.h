// The schedulers' per-step entry points on the host (NOTE [one step rule] and NOTE [fast
// step] in lrfast/lr_scheduler/_base.py): _C.step_groups, one step of a scheduler's float
// groups, and _C.FastStep, a whole scheduler step (its bookkeeping included) in one call.
#pragma once

#include <pybind11/pybind11.h>

namespace lrfast::host {

// Adds step_groups, STEP_NEEDS_COEFFICIENTS, STEP_NOT_FLOAT, bind_runtime and make_fast_step to m.
void add_scheduler_step(pybind11::module_& m);

}  // namespace lrfast::host
