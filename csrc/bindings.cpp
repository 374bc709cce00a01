// lrfast._C: the private compiled module. Schedules are evaluated here on the host
// (for get_last_lr() and float-LR optimizers) with the same header the kernels use.
// Built a second time with LRFAST_EMU as lrfast._C_emu: the same functions, with the
// CUDA launchers running the same kernels on the CPU grid emulator (docs/emulator.md).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lrfast/fused_tables.h>
#include <lrfast/plateau.h>
#include <lrfast/schedule.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "build_info.h"
#include "scheduler_step.h"
#include "cuda/cuda_api.h"  // declarations only (no CUDA type): its codes are exported in every build
#ifdef LRFAST_EMU
#include "emu/checked.h"
#include "emu/emu.h"
#include "emu/selftest.h"
#endif

namespace py = pybind11;

#ifdef LRFAST_EMU
#define LRFAST_EMU_BUILT true
#else
#define LRFAST_EMU_BUILT false
#endif

namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Checks a (G, kDescriptorSize) or (kDescriptorSize,) array of descriptors against
// the table; raises ValueError naming the first bad descriptor.
std::int64_t checked_descriptor_count(const DoubleArray& descriptors, std::int64_t table_size) {
  const auto ndim = descriptors.ndim();
  if (ndim < 1 || ndim > 2 || descriptors.shape(ndim - 1) != lrfast::kDescriptorSize) {
    throw py::value_error("descriptors must have shape (G, " + std::to_string(lrfast::kDescriptorSize) +
                          ") or (" + std::to_string(lrfast::kDescriptorSize) + ",)");
  }
  const std::int64_t count = ndim == 2 ? descriptors.shape(0) : 1;
  const double* data = descriptors.data();
  for (std::int64_t g = 0; g < count; ++g) {
    if (const char* why = lrfast::validate_descriptor(data + g * lrfast::kDescriptorSize, table_size)) {
      throw py::value_error("descriptor " + std::to_string(g) + " is malformed: " + why);
    }
  }
  return count;
}

// values[g, s] = lr of descriptor g at steps[s].
py::array_t<double> evaluate_host(const DoubleArray& descriptors, const DoubleArray& table,
                                  const DoubleArray& steps) {
  if (table.ndim() != 1) throw py::value_error("table must be one-dimensional");
  if (steps.ndim() != 1) throw py::value_error("steps must be one-dimensional");
  const std::int64_t groups = checked_descriptor_count(descriptors, table.shape(0));
  const std::int64_t n_steps = steps.shape(0);
  py::array_t<double> out({groups, n_steps});
  const double* d = descriptors.data();
  const double* tab = table.data();
  const double* st = steps.data();
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    for (std::int64_t g = 0; g < groups; ++g) {
      const double* desc = d + g * lrfast::kDescriptorSize;
      for (std::int64_t s = 0; s < n_steps; ++s) o[g * n_steps + s] = lrfast::evaluate(desc, tab, st[s]);
    }
  }
  return out;
}

// lr of every descriptor at one step: the per-step host path, no allocation of steps.
py::array_t<double> evaluate_at(const DoubleArray& descriptors, const DoubleArray& table, double step) {
  if (table.ndim() != 1) throw py::value_error("table must be one-dimensional");
  const std::int64_t groups = checked_descriptor_count(descriptors, table.shape(0));
  py::array_t<double> out(groups);
  double* o = out.mutable_data();
  for (std::int64_t g = 0; g < groups; ++g) {
    o[g] = lrfast::evaluate(descriptors.data() + g * lrfast::kDescriptorSize, table.data(), step);
  }
  return out;
}

// The per-step host path of the schedulers: descriptors validated once when they were
// built (NOTE [trusted descriptors] in lrfast/lr_scheduler/_base.py), so only shapes are
// checked here; writes into a preallocated out array.
using StrictArray = py::array_t<double, py::array::c_style>;
void evaluate_at_trusted(const StrictArray& descriptors, const StrictArray& table, double step, StrictArray& out) {
  if (descriptors.ndim() != 2 || descriptors.shape(1) != lrfast::kDescriptorSize || out.ndim() != 1 ||
      out.shape(0) != descriptors.shape(0) || table.ndim() != 1) {
    throw py::value_error("evaluate_at_trusted: shape mismatch");
  }
  const std::int64_t groups = descriptors.shape(0);
  const double* d = descriptors.data();
  double* o = out.mutable_data();
  for (std::int64_t g = 0; g < groups; ++g) o[g] = lrfast::evaluate(d + g * lrfast::kDescriptorSize, table.data(), step);
}

// The CPU optimizers' scheduled values (NOTE [group values] in lrfast/_backend/cpu.py):
// out[g] = descriptor g at steps[g], each group at its own step; descriptors validated
// once per packed schedule by the caller, so only shapes are checked here.
void evaluate_rows_trusted(const StrictArray& descriptors, const StrictArray& table, const StrictArray& steps,
                           StrictArray& out) {
  const std::int64_t groups = descriptors.ndim() == 2 ? descriptors.shape(0) : -1;
  if (groups < 0 || descriptors.shape(1) != lrfast::kDescriptorSize || table.ndim() != 1 || steps.ndim() != 1 ||
      steps.shape(0) != groups || out.ndim() != 1 || out.shape(0) != groups) {
    throw py::value_error("evaluate_rows_trusted: shape mismatch");
  }
  const double* d = descriptors.data();
  const double* st = steps.data();
  double* o = out.mutable_data();
  for (std::int64_t g = 0; g < groups; ++g) o[g] = lrfast::evaluate(d + g * lrfast::kDescriptorSize, table.data(), st[g]);
}

// ReduceLROnPlateau's rule from the scheduler's attributes (codes: plateau.h).
lrfast::plateau::Rule plateau_rule(double factor, double threshold, double eps, double patience, double cooldown,
                                   int mode, int threshold_mode, bool composed) {
  if (mode != lrfast::plateau::kMin && mode != lrfast::plateau::kMax) throw py::value_error("plateau: bad mode code");
  if (threshold_mode != lrfast::plateau::kRel && threshold_mode != lrfast::plateau::kAbs) {
    throw py::value_error("plateau: bad threshold_mode code");
  }
  return lrfast::plateau::Rule{factor, threshold, eps, patience, cooldown, mode, threshold_mode, composed ? 1 : 0};
}

// Checks what the plateau kernel trusts: valid descriptors, each with its own kPlateau slot.
void check_plateau_program(const StrictArray& descriptors, std::int64_t table_size, std::int64_t n_min_lrs) {
  if (descriptors.ndim() != 2 || descriptors.shape(1) != lrfast::kDescriptorSize) {
    throw py::value_error("plateau: descriptors must have shape (G, " + std::to_string(lrfast::kDescriptorSize) + ")");
  }
  const std::int64_t groups = checked_descriptor_count(descriptors, table_size);
  if (n_min_lrs != groups) throw py::value_error("plateau: one min_lr per descriptor expected");
  std::set<std::int64_t> slots;
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t slot = lrfast::plateau::slot_of(descriptors.data() + g * lrfast::kDescriptorSize);
    if (slot < 0) throw py::value_error("plateau: descriptor " + std::to_string(g) + " has no plateau slot");
    if (!slots.insert(slot).second) throw py::value_error("plateau: two descriptors share a plateau slot");
  }
}

// The host twin of the plateau kernel: the same functions of plateau.h, on NumPy arrays
// updated in place (state: kStateSize, table: the program's table with the slots). lrs[g]
// receives group g's LR. Returns whether this step reduced.
bool plateau_step_host(StrictArray& state, StrictArray& table, const StrictArray& descriptors,
                       const StrictArray& min_lrs, py::object metric, double step, double factor, double threshold,
                       double eps, double patience, double cooldown, int mode, int threshold_mode, bool composed,
                       StrictArray& lrs) {
  const auto rule = plateau_rule(factor, threshold, eps, patience, cooldown, mode, threshold_mode, composed);
  if (state.ndim() != 1 || state.shape(0) != lrfast::plateau::kStateSize || table.ndim() != 1 ||
      min_lrs.ndim() != 1 || lrs.ndim() != 1) {
    throw py::value_error("plateau_step_host: state must have shape (" + std::to_string(lrfast::plateau::kStateSize) +
                          ",); table, min_lrs and lrs must be one-dimensional");
  }
  if (!state.writeable() || !table.writeable() || !lrs.writeable()) {
    throw py::value_error("plateau_step_host: state, table and lrs must be writeable");
  }
  check_plateau_program(descriptors, table.shape(0), min_lrs.shape(0));
  if (lrs.shape(0) != descriptors.shape(0)) throw py::value_error("plateau_step_host: one lr per descriptor expected");
  const bool has_metric = !metric.is_none();
  const double value = has_metric ? metric.cast<double>() : 0.0;
  return lrfast::plateau::step_host(rule, state.mutable_data(), table.mutable_data(), descriptors.data(),
                                    min_lrs.data(), descriptors.shape(0), has_metric, value, step,
                                    lrs.mutable_data());
}

py::dict layout() {
  py::dict d;
  d["version"] = lrfast::kLayoutVersion;
  d["header_size"] = lrfast::kHeaderSize;
  d["max_segments"] = lrfast::kMaxSegments;
  d["segment_params"] = lrfast::kSegmentParams;
  d["segment_size"] = lrfast::kSegmentSize;
  d["descriptor_size"] = lrfast::kDescriptorSize;
  py::dict kinds;
  kinds["constant"] = static_cast<int>(lrfast::kConstant);
  kinds["step"] = static_cast<int>(lrfast::kStep);
  kinds["multistep"] = static_cast<int>(lrfast::kMultiStep);
  kinds["exponential"] = static_cast<int>(lrfast::kExponential);
  kinds["linear"] = static_cast<int>(lrfast::kLinear);
  kinds["polynomial"] = static_cast<int>(lrfast::kPolynomial);
  kinds["cosine"] = static_cast<int>(lrfast::kCosine);
  kinds["warm_restarts"] = static_cast<int>(lrfast::kWarmRestarts);
  kinds["cyclic"] = static_cast<int>(lrfast::kCyclic);
  kinds["one_cycle"] = static_cast<int>(lrfast::kOneCycle);
  kinds["inverse_sqrt"] = static_cast<int>(lrfast::kInverseSqrt);
  kinds["sqrt_decay"] = static_cast<int>(lrfast::kSqrtDecay);
  kinds["table"] = static_cast<int>(lrfast::kTable);
  kinds["piecewise"] = static_cast<int>(lrfast::kPiecewise);
  kinds["plateau"] = static_cast<int>(lrfast::kPlateau);
  d["kinds"] = kinds;
  d["cyclic_modes"] = py::dict(py::arg("triangular") = static_cast<int>(lrfast::kTriangular),
                               py::arg("triangular2") = static_cast<int>(lrfast::kTriangular2),
                               py::arg("exp_range") = static_cast<int>(lrfast::kExpRange),
                               py::arg("table") = static_cast<int>(lrfast::kCyclicTable));
  // NOTE [segment parameters]: each kind's parameters by name, and how many it uses.
  namespace pm = lrfast::param;
  py::dict params;
  params["constant"] = py::dict(py::arg("value") = pm::constant::kValue);
  params["step"] = py::dict(py::arg("init") = pm::step::kInit, py::arg("gamma") = pm::step::kGamma,
                            py::arg("step_size") = pm::step::kStepSize);
  params["multistep"] = py::dict(py::arg("init") = pm::multistep::kInit, py::arg("gamma") = pm::multistep::kGamma,
                                 py::arg("table_offset") = pm::multistep::kTableOffset,
                                 py::arg("count") = pm::multistep::kCount);
  params["exponential"] = py::dict(py::arg("init") = pm::exponential::kInit, py::arg("rate") = pm::exponential::kRate,
                                   py::arg("steps") = pm::exponential::kSteps);
  params["linear"] = py::dict(py::arg("start") = pm::linear::kStart, py::arg("end") = pm::linear::kEnd,
                              py::arg("steps") = pm::linear::kSteps);
  params["polynomial"] = py::dict(py::arg("init") = pm::polynomial::kInit, py::arg("end") = pm::polynomial::kEnd,
                                  py::arg("steps") = pm::polynomial::kSteps, py::arg("power") = pm::polynomial::kPower);
  params["cosine"] = py::dict(py::arg("init") = pm::cosine::kInit, py::arg("end") = pm::cosine::kEnd,
                              py::arg("steps") = pm::cosine::kSteps, py::arg("periodic") = pm::cosine::kPeriodic,
                              py::arg("exponent") = pm::cosine::kExponent);
  params["warm_restarts"] = py::dict(py::arg("init") = pm::warm_restarts::kInit,
                                     py::arg("end") = pm::warm_restarts::kEnd, py::arg("t0") = pm::warm_restarts::kT0,
                                     py::arg("t_mult") = pm::warm_restarts::kTMult);
  params["cyclic"] = py::dict(py::arg("base") = pm::cyclic::kBase, py::arg("peak") = pm::cyclic::kPeak,
                              py::arg("total_size") = pm::cyclic::kTotalSize,
                              py::arg("step_ratio") = pm::cyclic::kStepRatio, py::arg("mode") = pm::cyclic::kMode,
                              py::arg("gamma") = pm::cyclic::kGamma, py::arg("per_iteration") = pm::cyclic::kPerIteration,
                              py::arg("table_offset") = pm::cyclic::kTableOffset, py::arg("count") = pm::cyclic::kCount);
  params["one_cycle"] = py::dict(py::arg("num_phases") = pm::one_cycle::kNumPhases,
                                 py::arg("anneal_linear") = pm::one_cycle::kAnnealLinear,
                                 py::arg("phase_ends") = pm::one_cycle::kPhaseEnds,
                                 py::arg("phase_values") = pm::one_cycle::kPhaseValues);
  params["inverse_sqrt"] = py::dict(py::arg("init") = pm::inverse_sqrt::kInit,
                                    py::arg("timescale") = pm::inverse_sqrt::kTimescale);
  params["sqrt_decay"] = py::dict(py::arg("init") = pm::sqrt_decay::kInit, py::arg("end") = pm::sqrt_decay::kEnd,
                                  py::arg("steps") = pm::sqrt_decay::kSteps);
  params["table"] = py::dict(py::arg("table_offset") = pm::table::kTableOffset, py::arg("count") = pm::table::kCount);
  params["piecewise"] = py::dict(py::arg("table_offset") = pm::piecewise::kTableOffset,
                                 py::arg("count") = pm::piecewise::kCount);
  params["plateau"] = py::dict(py::arg("table_offset") = pm::plateau::kTableOffset);
  d["params"] = params;
  d["param_counts"] = py::dict(
      py::arg("constant") = pm::constant::kNumParams, py::arg("step") = pm::step::kNumParams,
      py::arg("multistep") = pm::multistep::kNumParams, py::arg("exponential") = pm::exponential::kNumParams,
      py::arg("linear") = pm::linear::kNumParams, py::arg("polynomial") = pm::polynomial::kNumParams,
      py::arg("cosine") = pm::cosine::kNumParams, py::arg("warm_restarts") = pm::warm_restarts::kNumParams,
      py::arg("cyclic") = pm::cyclic::kNumParams, py::arg("one_cycle") = pm::one_cycle::kNumParams,
      py::arg("inverse_sqrt") = pm::inverse_sqrt::kNumParams, py::arg("sqrt_decay") = pm::sqrt_decay::kNumParams,
      py::arg("table") = pm::table::kNumParams, py::arg("piecewise") = pm::piecewise::kNumParams,
      py::arg("plateau") = pm::plateau::kNumParams);
  namespace sl = lrfast::slot;
  d["header"] = py::dict(py::arg("version") = sl::kVersion, py::arg("num_segments") = sl::kNumSegments,
                         py::arg("scale") = sl::kScale, py::arg("floor") = sl::kFloor);
  d["segment"] = py::dict(py::arg("kind") = sl::kKind, py::arg("track") = sl::kTrack, py::arg("start") = sl::kStart,
                          py::arg("params") = sl::kParams);
  py::dict fused_layout;
  fused_layout["tensor_slots"] = lrfast::fused::kTensorSlots;
  fused_layout["group_slots"] = lrfast::fused::kGroupSlots;
  fused_layout["chunk_size"] = lrfast::fused::kChunkSize;
  fused_layout["block_size"] = lrfast::fused::kBlockSize;
  fused_layout["ilp"] = lrfast::fused::kILP;
  fused_layout["first_step_flag"] = lrfast::fused::kFirstStepFlag;
  fused_layout["lr_sources"] = py::dict(py::arg("value") = static_cast<int>(lrfast::fused::kLrValue),
                                        py::arg("schedule") = static_cast<int>(lrfast::fused::kLrSchedule),
                                        py::arg("tensor") = static_cast<int>(lrfast::fused::kLrTensor));
  fused_layout["algorithms"] = py::dict(py::arg("sgd") = static_cast<int>(lrfast::fused::kSgd),
                                        py::arg("adam") = static_cast<int>(lrfast::fused::kAdam));
  fused_layout["counter_modes"] = py::dict(py::arg("none") = static_cast<int>(lrfast::fused::kCounterNone),
                                           py::arg("eager") = static_cast<int>(lrfast::fused::kCounterEager),
                                           py::arg("graph") = static_cast<int>(lrfast::fused::kCounterGraph));
  namespace ts = lrfast::fused::tensor_slot;
  namespace gs = lrfast::fused::group_slot;
  fused_layout["tensor"] = py::dict(
      py::arg("param") = ts::kParam, py::arg("grad") = ts::kGrad, py::arg("state0") = ts::kState0,
      py::arg("state1") = ts::kState1, py::arg("state2") = ts::kState2, py::arg("step") = ts::kStep,
      py::arg("numel") = ts::kNumel, py::arg("group") = ts::kGroup, py::arg("flags") = ts::kFlags,
      py::arg("chunk_start") = ts::kChunkStart);
  fused_layout["group"] = py::dict(
      py::arg("lr") = gs::kLr, py::arg("beta1") = gs::kBeta1, py::arg("beta2") = gs::kBeta2, py::arg("eps") = gs::kEps,
      py::arg("weight_decay") = gs::kWeightDecay, py::arg("dampening") = gs::kDampening,
      py::arg("lr_source") = gs::kLrSource, py::arg("beta1_scheduled") = gs::kBeta1Scheduled,
      py::arg("nesterov") = gs::kNesterov, py::arg("maximize") = gs::kMaximize, py::arg("amsgrad") = gs::kAmsgrad,
      py::arg("lr_tensor_dtype") = gs::kLrTensorDtype, py::arg("schedule_step") = gs::kScheduleStep,
      py::arg("decoupled") = gs::kDecoupled);
  d["fused"] = fused_layout;
  // cuda/cuda_api.h: the dtype codes of the LR writer's targets and the fused step's parameters
  d["scalar_types"] = py::dict(py::arg("float32") = static_cast<int>(lrfast::cuda::kFloat32),
                               py::arg("float64") = static_cast<int>(lrfast::cuda::kFloat64),
                               py::arg("float16") = static_cast<int>(lrfast::cuda::kFloat16),
                               py::arg("bfloat16") = static_cast<int>(lrfast::cuda::kBFloat16));
  namespace ps = lrfast::plateau::state_slot;
  d["plateau"] = py::dict(py::arg("state_size") = lrfast::plateau::kStateSize, py::arg("best") = ps::kBest,
                          py::arg("num_bad_epochs") = ps::kNumBadEpochs,
                          py::arg("cooldown_counter") = ps::kCooldownCounter,
                          py::arg("min") = static_cast<int>(lrfast::plateau::kMin),
                          py::arg("max") = static_cast<int>(lrfast::plateau::kMax),
                          py::arg("rel") = static_cast<int>(lrfast::plateau::kRel),
                          py::arg("abs") = static_cast<int>(lrfast::plateau::kAbs));
  return d;
}

#ifdef LRFAST_EMU
constexpr bool kCudaBuilt = true;  // the kernels are built, for the emulated device
#else
constexpr bool kCudaBuilt = LRFAST_CUDA_BUILT != 0;
#endif

py::dict build_info() {
  py::dict d;
  d["version"] = LRFAST_VERSION_STRING;
  d["cuda_built"] = kCudaBuilt;
#ifdef LRFAST_EMU
  d["cuda_archs"] = "emulated";
  d["cuda_compiler"] = std::string("host C++ for the CPU grid emulator (") + LRFAST_CXX_COMPILER_STRING + ")";
  d["cuda_reason"] = "built for the CPU grid emulator (csrc/emu)";
#else
  d["cuda_archs"] = LRFAST_CUDA_ARCHS_STRING;
  d["cuda_compiler"] = LRFAST_CUDA_COMPILER_STRING;
  d["cuda_reason"] = LRFAST_CUDA_REASON_STRING;
#endif
  d["cxx_compiler"] = LRFAST_CXX_COMPILER_STRING;
  d["emulated"] = LRFAST_EMU_BUILT;
  return d;
}

void define_module(py::module_& m) {
  m.def("has_cuda", [] { return kCudaBuilt; }, "Whether the CUDA kernels were compiled in.");
  m.def("build_info", &build_info, "What this module was built with.");
  m.def("layout", &layout, "The packed descriptor layout (NOTE [descriptor layout] in schedule.h).");
  m.def("evaluate", &evaluate_host, py::arg("descriptors"), py::arg("table"), py::arg("steps"),
        "values[g, s]: LR of descriptor g at steps[s], float64, on the host.");
  m.def("evaluate_at", &evaluate_at, py::arg("descriptors"), py::arg("table"), py::arg("step"),
        "LR of every descriptor at one step.");
  m.def("evaluate_at_trusted", &evaluate_at_trusted, py::arg("descriptors"), py::arg("table"), py::arg("step"),
        py::arg("out"), "evaluate_at into out, for descriptors already validated (no content checks).");
  m.def("evaluate_rows_trusted", &evaluate_rows_trusted, py::arg("descriptors"), py::arg("table"), py::arg("steps"),
        py::arg("out"), "out[g] = descriptor g at steps[g], for descriptors already validated (no content checks).");
  lrfast::host::add_scheduler_step(m);  // step_groups, FastStep (scheduler_step.cpp)
  m.def(
      "validate",
      [](const DoubleArray& descriptors, std::int64_t table_size) {
        checked_descriptor_count(descriptors, table_size);
      },
      py::arg("descriptors"), py::arg("table_size"), "Raise ValueError if a descriptor is malformed.");
  m.def(
      "validate_plateau",
      [](const StrictArray& descriptors, std::int64_t table_size, std::int64_t n_min_lrs) {
        check_plateau_program(descriptors, table_size, n_min_lrs);
      },
      py::arg("descriptors"), py::arg("table_size"), py::arg("n_min_lrs"),
      "Raise ValueError unless every descriptor is valid and has its own plateau slot.");
  m.def(
      "plateau_slots",
      [](const DoubleArray& descriptors, std::int64_t table_size) {
        const std::int64_t n = checked_descriptor_count(descriptors, table_size);
        py::array_t<std::int64_t> slots(n);
        auto out = slots.mutable_unchecked<1>();
        for (std::int64_t g = 0; g < n; ++g) {
          out(g) = lrfast::plateau::slot_of(descriptors.data() + g * lrfast::kDescriptorSize);
        }
        return slots;
      },
      py::arg("descriptors"), py::arg("table_size"),
      "slots[g]: the table offset of descriptor g's plateau segment (plateau::slot_of), -1 where it has none.");
  m.def("plateau_step_host", &plateau_step_host, py::arg("state"), py::arg("table"), py::arg("descriptors"),
        py::arg("min_lrs"), py::arg("metric"), py::arg("step"), py::arg("factor"), py::arg("threshold"),
        py::arg("eps"), py::arg("patience"), py::arg("cooldown"), py::arg("mode"), py::arg("threshold_mode"),
        py::arg("composed"), py::arg("lrs"),
        "One ReduceLROnPlateau step with plateau.h on host arrays (the kernel's twin); metric None: no decision.");
#ifdef LRFAST_WITH_CUDA
  // The launchers take only integers and doubles, and a launch may block (a full launch
  // queue; the emulator runs the kernel to completion): other Python threads run meanwhile.
  const auto kReleaseGil = py::call_guard<py::gil_scoped_release>();
  m.def("cuda_device_count", [] {
    std::string why;
    const int count = lrfast::cuda::device_count(&why);
    return py::make_tuple(count, why);
  }, "(number of usable CUDA devices, why none) as the CUDA runtime sees them.");
  m.def("cuda_evaluate_schedules", &lrfast::cuda::evaluate_schedules, py::arg("descriptors"),
        py::arg("n_descriptors"), py::arg("table"), py::arg("steps"), py::arg("n_steps"), py::arg("out"),
        py::arg("stream"), py::arg("device"),
        "Launch the schedule evaluation kernel on raw device pointers (see cuda_api.h).", kReleaseGil);
  m.def("cuda_write_scheduled_values", &lrfast::cuda::write_scheduled_values, py::arg("descriptors"),
        py::arg("table"), py::arg("n_groups"), py::arg("targets"), py::arg("dtypes"), py::arg("out"),
        py::arg("counter"), py::arg("increment"), py::arg("host_step"), py::arg("stream"), py::arg("device"),
        "Write each group's scheduled value into its scalar tensor and an out buffer, one launch (see cuda_api.h).",
        kReleaseGil);
  m.def(
      "cuda_plateau_step",
      [](std::uintptr_t metric, int metric_dtype, std::uintptr_t state, std::uintptr_t descriptors,
         std::uintptr_t table, std::uintptr_t min_lrs, std::int64_t n_groups, double step, std::uintptr_t targets,
         std::uintptr_t dtypes, std::uintptr_t out, double factor, double threshold, double eps, double patience,
         double cooldown, int mode, int threshold_mode, bool composed, std::uintptr_t stream, int device) {
        const auto rule = plateau_rule(factor, threshold, eps, patience, cooldown, mode, threshold_mode, composed);
        lrfast::cuda::plateau_step(rule, metric, metric_dtype, state, descriptors, table, min_lrs, n_groups, step,
                                   targets, dtypes, out, stream, device);
      },
      py::arg("metric"), py::arg("metric_dtype"), py::arg("state"), py::arg("descriptors"), py::arg("table"),
      py::arg("min_lrs"), py::arg("n_groups"), py::arg("step"), py::arg("targets"), py::arg("dtypes"), py::arg("out"),
      py::arg("factor"), py::arg("threshold"), py::arg("eps"), py::arg("patience"), py::arg("cooldown"),
      py::arg("mode"), py::arg("threshold_mode"), py::arg("composed"), py::arg("stream"), py::arg("device"),
      "Launch one ReduceLROnPlateau step on device pointers (trusted: see validate_plateau and cuda_api.h).",
      kReleaseGil);
  m.def("cuda_fused_step", &lrfast::cuda::fused_step, py::arg("algorithm"), py::arg("dtype"), py::arg("tensors"),
        py::arg("n_tensors"), py::arg("n_chunks"), py::arg("groups"), py::arg("lr_tensors"),
        py::arg("lr_descriptors"), py::arg("lr_table"), py::arg("beta1_descriptors"), py::arg("beta1_table"),
        py::arg("step_counter"), py::arg("counter_mode"), py::arg("counter_next"), py::arg("hold_counter_on_skip"),
        py::arg("grad_scale"), py::arg("found_inf"),
        py::arg("ticket"), py::arg("stream"), py::arg("device"),
        "One fused SGD/Adam/AdamW step for a bucket, one launch (see cuda_api.h, fused_tables.h).", kReleaseGil);
#else
  m.def("cuda_device_count", [] {
    return py::make_tuple(0, std::string("lrfast was built without CUDA: ") + LRFAST_CUDA_REASON_STRING);
  });
#endif
#ifdef LRFAST_EMU
  m.def(
      "emu_set_thread_order",
      [](const std::string& order, std::uint64_t seed) {
        lrfast::emu::set_thread_order(lrfast::emu::parse_order(order), seed);
      },
      py::arg("order"), py::arg("seed") = 0,
      "Order in which the emulator resumes the threads of a block and runs the blocks: 'forward', 'reversed' or "
      "'shuffled' (a fresh permutation per phase from a generator seeded with seed).");
  m.def("emu_thread_order", [] { return std::string(lrfast::emu::order_name(lrfast::emu::thread_order())); },
        "The emulator's current thread order ('forward', 'reversed' or 'shuffled').");
  m.def("emu_thread_order_seed", &lrfast::emu::thread_order_seed, "The seed given with the current thread order.");
  m.def("emu_launch_count", &lrfast::emu::launches, "Number of grids the emulator has run since it was loaded.");
  m.def("emu_launch_in_progress", &lrfast::emu::launch_in_progress, "Whether a grid is running now.");
  m.def("emu_register_allocation", &lrfast::emu::register_allocation, py::arg("address"), py::arg("nbytes"),
        "Bound every kernel array that starts inside [address, address + nbytes) by this allocation's end: an "
        "access past it makes the launch raise RuntimeError (csrc/emu/checked.h).");
  m.def("emu_clear_allocations", &lrfast::emu::clear_allocations, "Forget every registered allocation.");
  m.def("emu_allocation_count", &lrfast::emu::allocation_count, "Number of registered allocations.");
  m.def("emu_set_driver_version", &lrfast::emu::set_driver_version, py::arg("version"),
        "The CUDA version the emulated driver supports (e.g. 12040; 0 = no driver; -1 = the runtime's own).");
  m.def(
      "emu_selftest_divergent_barrier",
      [](unsigned int threads, unsigned int skip_every) { lrfast::emu::selftest_divergent_barrier(threads, skip_every); },
      py::arg("threads"), py::arg("skip_every"), "A kernel whose threads i % skip_every == 1 skip the barrier.",
      kReleaseGil);
  m.def(
      "emu_selftest_block_sums",
      [](const py::array_t<std::int32_t, py::array::c_style>& in, py::array_t<std::int32_t, py::array::c_style>& out,
         unsigned int blocks, unsigned int threads, bool with_barrier) {
        if (in.size() < static_cast<py::ssize_t>(blocks) * threads || out.size() < blocks) {
          throw py::value_error("emu_selftest_block_sums: arrays too small");
        }
        lrfast::emu::selftest_block_sums(in.data(), out.mutable_data(), blocks, threads, with_barrier);
      },
      py::arg("values"), py::arg("out"), py::arg("blocks"), py::arg("threads"), py::arg("with_barrier"),
      "Block sums by thread 0 from shared memory, with or without the barrier.");
  m.def(
      "emu_selftest_float_to_narrow",
      [](const py::array_t<float, py::array::c_style>& in, py::array_t<std::uint16_t, py::array::c_style>& out,
         int format) {
        if (out.size() != in.size()) throw py::value_error("emu_selftest_float_to_narrow: sizes differ");
        lrfast::emu::selftest_float_to_narrow(in.data(), out.mutable_data(), in.size(), format);
      },
      py::arg("values"), py::arg("out"), py::arg("format"), "float32 -> half (format 0) / bfloat16 (1) bits.");
  m.def(
      "emu_selftest_narrow_to_float",
      [](const py::array_t<std::uint16_t, py::array::c_style>& in, py::array_t<float, py::array::c_style>& out,
         int format) {
        if (out.size() != in.size()) throw py::value_error("emu_selftest_narrow_to_float: sizes differ");
        lrfast::emu::selftest_narrow_to_float(in.data(), out.mutable_data(), in.size(), format);
      },
      py::arg("bits"), py::arg("out"), py::arg("format"), "half (format 0) / bfloat16 (1) bits -> float32.");
#endif
}

}  // namespace

#ifdef LRFAST_EMU
PYBIND11_MODULE(_C_emu, m) {
  m.doc() = "lrfast._C on the CPU grid emulator: the same functions, the CUDA kernels run on host memory";
  define_module(m);
}
#else
PYBIND11_MODULE(_C, m) {
  m.doc() = "lrfast private compiled core: schedule evaluation and CUDA launchers";
  define_module(m);
}
#endif
