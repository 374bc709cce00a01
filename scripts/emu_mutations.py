"""The mutation check of the emulated kernel tests (docs/emulator.md, "Mutations"), and of
the schedulers' compiled step (csrc/scheduler_step.cpp, built into lrfast._C).

Each mutation is one realistic edit of a kernel source or shared header (a wrong index, a
boundary off by one, a dtype read as another, a dropped barrier, a counter never reset).
For each, this script applies the edit to a copy of the sources, rebuilds only
lrfast._C_emu there (one incremental CMake build directory: only what the edit touches is
recompiled), and runs the CPU tests against that module (LRFAST_TEST_EMU_MODULE) until the
first failure: first the tests named with the mutation (a pytest -k expression), then, only
if those pass, the whole file. A mutation *survives* when every test passes with it
compiled in; the script exits 1 if any survives, 2 if an edit no longer applies or a build
fails. A mutation of a host source (HOST_SOURCES) rebuilds lrfast._C instead and runs the
scheduler tests (SCHEDULER_TESTS) on a copy of the lrfast package holding that module.

    bash scripts/emu_mutations.sh                 # every mutation
    bash scripts/emu_mutations.sh NAME [NAME...]  # some of them
    bash scripts/emu_mutations.sh --list
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL_TESTS = ["tests/test_emu_kernels.py"]
# built into lrfast._C (the host module), tested through the schedulers
HOST_SOURCES = ("csrc/scheduler_step.cpp",)
SCHEDULER_TESTS = ["tests/test_fast_step.py", "tests/test_soundness.py", "tests/test_lr_scheduler_attributes.py",
                   "tests/test_lr_scheduler_parity.py", "tests/test_lr_scheduler_dropin.py",
                   "tests/test_lr_scheduler_errors.py", "tests/test_lr_scheduler_state.py",
                   "tests/test_lr_scheduler_odd_arguments.py", "tests/test_composition.py",
                   "tests/test_plateau_composed.py", "tests/test_skip_on_overflow.py",
                   "tests/test_lr_scheduler_plateau.py", "tests/test_pure_lambdas.py",
                   "tests/test_lr_scheduler_lambdas.py"]

# (name, the tests that should catch it -- a pytest -k expression, run first --, file, the text
# replaced -- it must occur exactly once --, its replacement)
MUTATIONS: list[tuple[str, str, str, str, str]] = [
    # scalars.cuh: the dtypes of the scalars the kernels load and store
    ("store-half-from-double", "half_precision", "csrc/cuda/scalars.cuh",
     "__float2half_rn(static_cast<float>(value))", "__double2half(value)"),
    ("store-bf16-from-double", "half_precision", "csrc/cuda/scalars.cuh",
     "__float2bfloat16_rn(static_cast<float>(value))", "__double2bfloat16(value)"),
    ("load-bf16-as-half", "in_its_dtype", "csrc/cuda/scalars.cuh",
     "return static_cast<double>(__bfloat162float(*device_array<const __nv_bfloat16>(address, 1, \"scalar\")));",
     "return static_cast<double>(__half2float(*device_array<const __half>(address, 1, \"scalar\")));"),
    ("load-double-through-float", "plateau", "csrc/cuda/scalars.cuh",
     "case kFloat64: return *device_array<const double>(address, 1, \"scalar\");",
     "case kFloat64: return static_cast<float>(*device_array<const double>(address, 1, \"scalar\"));"),
    # evaluate_schedules.cu: the grid and the index arithmetic
    ("evaluate-blocks-rounded-down", "evaluate_schedules", "csrc/cuda/evaluate_schedules.cu",
     "(total + kThreadsPerBlock - 1) / kThreadsPerBlock", "total / kThreadsPerBlock"),
    ("evaluate-group-index", "evaluate_schedules", "csrc/cuda/evaluate_schedules.cu",
     "const std::int64_t group = i / n_steps;", "const std::int64_t group = i / n_descriptors;"),
    # write_lrs.cu: the device counter and the group loop
    ("writer-counter-advanced-by-one", "writer", "csrc/cuda/write_lrs.cu",
     "*count += increment;", "*count += 1;"),
    ("writer-step-before-increment", "writer", "csrc/cuda/write_lrs.cu",
     "static_cast<double>(*count + increment)", "static_cast<double>(*count)"),
    ("writer-group-stride", "writer", "csrc/cuda/write_lrs.cu",
     "g += blockDim.x) {", "g += 2 * blockDim.x) {"),
    # plateau.cu: per-group indices, the barrier, the stored LR
    ("plateau-min-lr-by-slot", "plateau", "csrc/cuda/plateau.cu", "floors[g], t)", "floors[slot], t)"),
    ("plateau-no-barrier", "plateau", "csrc/cuda/plateau.cu", "  }\n  __syncthreads();\n", "  }\n"),
    ("plateau-lr-not-reread-as-stored", "plateau", "csrc/cuda/plateau.cu",
     "slots[slot] = lr = load_scalar(target, dtype);", "slots[slot] = lr;"),
    # fused_optim.cu: boundaries, barriers, counters, the per-step scalars
    ("fused-scalar-loop-off-by-one", "fused_step_matches", "csrc/cuda/fused_optim.cu",
     "for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {",
     "for (std::int64_t i = threadIdx.x; i <= n; i += blockDim.x) {"),
    ("fused-vector-path-any-length", "fused_step_matches", "csrc/cuda/fused_optim.cu",
     "const bool aligned = n % kILP == 0 && ", "const bool aligned = "),
    ("fused-no-setup-barrier", "fused_step_matches", "csrc/cuda/fused_optim.cu",
     "  }\n  __syncthreads();\n\n  if (!s_skip) {", "  }\n\n  if (!s_skip) {"),
    ("fused-ticket-never-reset", "fused_step_matches", "csrc/cuda/fused_optim.cu",
     "        *device_array(a.ticket, 1, \"ticket\") = 0u;\n", ""),
    ("fused-last-block-off-by-one", "fused_step_on", "csrc/cuda/fused_optim.cu",
     "s_last_block = done == gridDim.x - 1;", "s_last_block = done == gridDim.x - 2;"),
    ("fused-chunk-owner", "fused_step_on or 300_tensors", "csrc/cuda/fused_optim.cu",
     "ts::kChunkStart] <= chunk) lo = mid;", "ts::kChunkStart] < chunk) lo = mid;"),
    ("fused-bias-correction-step", "fused_step_matches", "csrc/cuda/fused_optim.cu",
     "lr / (1.0 - pow(beta1, step))", "lr / (1.0 - pow(beta1, step - 1.0))"),
    ("fused-decoupled-decay-without-lr", "fused_step_matches", "csrc/cuda/fused_optim.cu",
     "1.0 - lr * grp[gs::kWeightDecay]", "1.0 - grp[gs::kWeightDecay]"),
    ("fused-steps-advance-on-skip", "grad_scaler", "csrc/cuda/fused_optim.cu",
     "if (kAlgorithm != fused::kSgd && !s_skip) {", "if (kAlgorithm != fused::kSgd) {"),
    ("fused-graph-counter-ignores-hold", "counter_modes", "csrc/cuda/fused_optim.cu",
     "!(s_skip && a.hold_counter_on_skip)", "!s_skip"),
    # optim_math.h: the per-element updates
    ("adam-second-moment-beta1", "fused_step_matches", "csrc/include/lrfast/optim_math.h",
     "s.one_minus_beta2 * grad * grad", "s.one_minus_beta1 * grad * grad"),
    ("adam-amsgrad-min", "fused_step_matches", "csrc/include/lrfast/optim_math.h",
     "max_exp_avg_sq > exp_avg_sq ? max_exp_avg_sq : exp_avg_sq",
     "max_exp_avg_sq < exp_avg_sq ? max_exp_avg_sq : exp_avg_sq"),
    ("sgd-weight-decay-before-maximize", "fused_step_matches", "csrc/include/lrfast/optim_math.h",
     "  if (s.maximize) grad = -grad;\n  if (s.weight_decay != M(0)) grad = grad + s.weight_decay * param;\n"
     "  if (s.momentum",
     "  if (s.weight_decay != M(0)) grad = grad + s.weight_decay * param;\n  if (s.maximize) grad = -grad;\n"
     "  if (s.momentum"),
    ("sgd-nesterov-without-momentum", "fused_step_matches", "csrc/include/lrfast/optim_math.h",
     "grad + s.momentum * momentum_buffer", "grad + momentum_buffer"),
    # plateau.h: torch's decision rule
    ("plateau-max-rel-threshold", "plateau", "csrc/include/lrfast/plateau.h",
     "a > detail::mul_rn(best, r.threshold + 1.0)", "a > detail::mul_rn(best, 1.0 - r.threshold)"),
    ("plateau-cooldown-boundary", "plateau", "csrc/include/lrfast/plateau.h",
     "if (state[kCooldownCounter] > 0.0) {", "if (state[kCooldownCounter] >= 0.0) {"),
    ("plateau-floor-dropped", "plateau", "csrc/include/lrfast/plateau.h",
     "detail::py_max(detail::mul_rn(old_lr, r.factor), min_lr)", "detail::mul_rn(old_lr, r.factor)"),
    # schedule.h: a segment boundary
    ("schedule-segment-boundary", "evaluate_schedules", "csrc/include/lrfast/schedule.h",
     "t >= next[slot::kStart];", "t > next[slot::kStart];"),
    # fused_tables.h, cuda_api.h: constants shared with the host side
    ("tables-first-step-flag", "fused_step_matches", "csrc/include/lrfast/fused_tables.h",
     "constexpr std::int64_t kFirstStepFlag = 1;", "constexpr std::int64_t kFirstStepFlag = 2;"),
    ("api-half-codes-swapped", "half_precision or in_its_dtype", "csrc/cuda/cuda_api.h",
     "kFloat16 = 2, kBFloat16 = 3", "kFloat16 = 3, kBFloat16 = 2"),
    # runtime.cu, check.cuh, launch.cuh, memory.cuh: the runtime glue and the checker itself
    ("runtime-version-string", "driver", "csrc/cuda/runtime.cu",
     "std::to_string(version / 1000)", "std::to_string(version / 100)"),
    ("check-inverted", "module_reports", "csrc/cuda/check.cuh",
     "if (status == cudaSuccess) return;", "if (status != cudaSuccess) return;"),
    ("launch-grid-and-block-swapped", "module_reports or evaluate_schedules", "csrc/cuda/launch.cuh",
     "__VA_ARGS__, (grid), (block))", "__VA_ARGS__, (block), (grid))"),
    ("checker-pack-one-element", "elements_than", "csrc/cuda/memory.cuh",
     "a.at(i, static_cast<std::int64_t>(sizeof(P) / sizeof(T)))", "a.at(i, 1)"),
    # scheduler_step.cpp: the compiled scheduler step (NOTE [fast step] in lrfast/lr_scheduler/_base.py)
    ("step-watched-edit-ignored", "attribute or base_lrs", "csrc/scheduler_step.cpp",
     "    if (equal == 0) return false;\n  }\n  return true;", "  }\n  return true;"),
    ("step-group-keys-ignored", "OneCycle or SWALR or max_lr or swa_lr", "csrc/scheduler_step.cpp",
     "  if (keys == 0) return true;", "  if (keys >= 0) return true;"),
    ("step-first-off-step-as-closed-form", "edit or stack", "csrc/scheduler_step.cpp",
     "      return false;  // the first step off the program", "      f.values[g] = f.cur[g];  // the first step off"),
    ("step-recursion-shift-dropped", "edit or stack or resum", "csrc/scheduler_step.cpp",
     "plain_number(held[g], &h)) f.values[g] = a * (h - shift) + add;",
     "plain_number(held[g], &h)) f.values[g] = a * h + add;"),
    ("step-recursion-shift-dropped-tensor", "tensor", "csrc/scheduler_step.cpp",
     "f.on_now[g] = 0.0;\n        f.values[g] = a * (h - shift) + add;",
     "f.on_now[g] = 0.0;\n        f.values[g] = a * h + add;"),
    ("step-limit-off-by-one", "OneCycle", "csrc/scheduler_step.cpp",
     "!exact_long(held, &limit) || t > limit)", "!exact_long(held, &limit) || t > limit + 1)"),
    ("step-skip-on-overflow-ignored", "skip or overflow", "csrc/scheduler_step.cpp",
     " || !false_or_absent(dict, g_names.skip_on_overflow) ||", " ||"),
    ("step-first-step-warning-skipped", "warn", "csrc/scheduler_step.cpp",
     "step_count == 1)) ||", "step_count == 0)) ||"),
    ("step-off-groups-proven", "proven", "csrc/scheduler_step.cpp",
     "off ? f.on_array.ptr() : Py_None);", "Py_None);"),
    ("step-momentum-not-written", "Cyclic or OneCycle or momentum", "csrc/scheduler_step.cpp",
     "  py::object written_momentum = py::none();\n  if (has_momentum) {",
     "  py::object written_momentum = py::none();\n  if (false) {"),
    ("step-own-count-off-by-one", "SWALR", "csrc/scheduler_step.cpp",
     "const double s = own_count ? static_cast<double>(new_count - 1)",
     "const double s = own_count ? static_cast<double>(new_count)"),
    ("step-restart-period-unchecked", "WarmRestarts or T_cur", "csrc/scheduler_step.cpp",
     "  if (t - start != t_cur || length != t_i) return false;\n", ""),
    ("step-restart-t-i-not-stored", "WarmRestarts or T_i", "csrc/scheduler_step.cpp",
     " ||\n                                   PyDict_SetItem(dict, g_names.t_i, t_i_object.ptr()) != 0))) {",
     "))) {"),
    ("step-count-not-moved", "state or step_count", "csrc/scheduler_step.cpp",
     "if ((moves_count && PyDict_SetItem(dict, g_names.step_count",
     "if ((false && PyDict_SetItem(dict, g_names.step_count"),
    ("step-non-finite-written", "finite or overflow", "csrc/scheduler_step.cpp",
     "  if (first_non_finite(values, n) != n) return false;", ""),
    ("step-lambda-counts-kept-on-error", "raises", "csrc/scheduler_step.cpp",
     "  Rollback rollback(dict, count_held, epoch_held);\n",
     "  Rollback rollback(dict, count_held, epoch_held);\n  rollback.active = false;\n"),
    ("step-lambda-at-the-previous-step", "Lambda or Multiplicative", "csrc/scheduler_step.cpp",
     "PyObject_CallOneArg(first_fn, t_object.ptr())", "PyObject_CallOneArg(first_fn, epoch_held)"),
    ("plateau-mode-codes-swapped-host", "plateau", "csrc/scheduler_step.cpp",
     'rule.mode = code_of(mode, "min", "max");', 'rule.mode = code_of(mode, "max", "min");'),
    ("plateau-threshold-modes-swapped-host", "plateau", "csrc/scheduler_step.cpp",
     'code_of(threshold_mode, "rel", "abs")', 'code_of(threshold_mode, "abs", "rel")'),
    ("plateau-best-not-stored-host", "plateau", "csrc/scheduler_step.cpp",
     "      (better && PyDict_SetItem(dict, g_plateau.best, metric) != 0) ||\n", ""),
    ("plateau-int-floor-as-float-host", "int_min_lr", "csrc/scheduler_step.cpp",
     "written[g] = floor_wins ? py::reinterpret_borrow<py::object>(min_lr) : py::float_(new_lr);",
     "written[g] = py::float_(new_lr);"),
    ("step-tensor-identity-unchecked", "tensor", "csrc/scheduler_step.cpp",
     "      if (value != tensor.tensor.ptr()) return false;\n", ""),
    ("step-tensor-version-not-moved", "tensor", "csrc/scheduler_step.cpp",
     "PyObject_CallOneArg(f.bump.ptr(), f.tensor_list.ptr())", "Py_NewRef(Py_None)"),
    ("step-tensor-expected-not-rounded", "tensor", "csrc/scheduler_step.cpp",
     "      expected = tensor.rounded(expected);\n", ""),
    ("step-row-float-shared-blindly", "edit or stack or resum", "csrc/scheduler_step.cpp",
     "*same_row != nullptr && PyFloat_AS_DOUBLE(*same_row) == value && shareable", "*same_row != nullptr"),
    ("step-write-rows-keeps-a-changed-value", "parity or torch", "csrc/scheduler_step.cpp",
     "PyFloat_CheckExact(now) && std::memcmp(&now_value, &value, sizeof value) == 0",
     "PyFloat_CheckExact(now)"),
    ("step-write-rows-one-float-for-all-rows", "row or parity", "csrc/scheduler_step.cpp",
     "PyObject*& shared = row_float[row_index[g]];", "PyObject*& shared = row_float[0];"),
    # NOTE [dict versions]
    ("step-dict-version-ignored", "dict or edit or after_another", "csrc/scheduler_step.cpp",
     "== group && dict_version(group) == f.seen_version[g];", "== group;"),
    ("step-record-keeps-an-old-lr-list", "dict or edit or after_another", "csrc/scheduler_step.cpp",
     "  f.seen_lr = lr;\n", "  if (f.seen_lr.is_none()) f.seen_lr = lr;\n"),
    ("step-record-momentum-read-from-the-lr", "dict or momentum", "csrc/scheduler_step.cpp",
     "? PyList_GET_ITEM(f.seen_momentum.ptr(), g)", "? PyList_GET_ITEM(f.seen_lr.ptr(), g)"),
    ("plateau-tensor-fill-skipped-host", "plateau", "csrc/scheduler_step.cpp",
     "      if (!tensor_lr[g] || reduced[g].is_none()) continue;", "      continue;"),
    ("plateau-tensor-last-lr-not-cloned-host", "plateau", "csrc/scheduler_step.cpp",
     "if (reduction && !reduced[g].is_none() && !tensor_lr[g]) {", "if (reduction && !reduced[g].is_none()) {"),
    ("step-collector-not-held-off", "finalizer", "csrc/scheduler_step.cpp",
     "  bool was_enabled = PyGC_Disable() != 0;", "  bool was_enabled = false;"),
    # NOTE [plateau record]
    ("plateau-record-version-ignored-host", "plateau", "csrc/scheduler_step.cpp",
     "dicts[g] == group && dict_version(group) == versions[g];", "dicts[g] == group;"),
    ("plateau-record-keeps-the-old-lr-host", "plateau", "csrc/scheduler_step.cpp",
     "      replace(lrs[g], values[g], released);",
     "      if (lrs[g] == nullptr) replace(lrs[g], values[g], released);"),
    ("plateau-shared-tensor-reduced-once-host", "shared_by_groups", "csrc/scheduler_step.cpp",
     "  return !reduces_shared_memory(written, tensor);", "  return true;"),
    ("step-last-lr-is-the-proof", "get_last_lr", "csrc/scheduler_step.cpp",
     "g_names.last_lr, has_tensors ? written.ptr() : given.ptr()", "g_names.last_lr, written.ptr()"),
    # the callables step (LambdaLR / MultiplicativeLR): NOTE [pure lambdas] and its record
    ("pure-call-shared-under-a-tracer-host", "trace_or_profile", "csrc/scheduler_step.cpp",
     "PyFunction_GET_CODE(first_fn) == first_code && !traced() &&",
     "PyFunction_GET_CODE(first_fn) == first_code &&"),
    ("pure-mixed-call-shared-under-a-tracer-host", "trace_or_profile or mixed", "csrc/scheduler_step.cpp",
     "code == shared_code && at_t && !traced() && !monitored(code)) {",
     "code == shared_code && at_t && !monitored(code)) {"),
    ("pure-product-shared-across-lefts-host", "pure_lambda", "csrc/scheduler_step.cpp",
     "slot.left == left_bits && slot.factor == factor_bits", "slot.factor == factor_bits"),
    ("callables-record-ignores-versions-host", "edited_replaced_or_repeated", "csrc/scheduler_step.cpp",
     "read.version == f.seen_version[g]) {", "true) {"),
    ("callables-reads-trusted-after-lambdas-host", "mid_step", "csrc/scheduler_step.cpp",
     "dict_version(read.group) == read.version;", "true;"),
    ("pure-shared-call-not-rechecked-host", "inside_the_one_shared_call", "csrc/scheduler_step.cpp",
     "bool unmoved = PyList_GET_SIZE(lambdas) == n &&", "bool unmoved = true || PyList_GET_SIZE(lambdas) == n &&"),
    ("pure-first-left-read-after-call-host", "inside_the_one_shared_call", "csrc/scheduler_step.cpp",
     "      if (called) {\n        left = first_left;", "      if (called && false) {\n        left = first_left;"),
    ("callables-one-epoch-for-every-call-host", "last_epoch", "csrc/scheduler_step.cpp",
     "PyObject_CallOneArg(fn.ptr(), epoch.ptr())", "PyObject_CallOneArg(fn.ptr(), t_object.ptr())"),
    ("callables-last-lr-not-read-back-host", "edited_replaced_or_repeated", "csrc/scheduler_step.cpp",
     "if (kDictVersions && dict_version(group) == f.seen_version[g]) continue;",
     "continue;"),
]


def run(cmd: list[str], log: Path, **kwargs) -> bool:
    return status(cmd, log, **kwargs) == 0


def status(cmd: list[str], log: Path, **kwargs) -> int:
    with log.open("a") as out:
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kwargs).returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        for name, focus, path, _, _ in MUTATIONS:
            print(f"{name:36s} {path:36s} -k {focus!r}")
        return 0
    chosen = [m for m in MUTATIONS if not argv or m[0] in argv]
    unknown = set(argv) - {m[0] for m in MUTATIONS}
    if unknown:
        print(f"emu_mutations: unknown mutation(s) {sorted(unknown)}; --list names them", file=sys.stderr)
        return 2
    for name, _, path, old, _ in chosen:  # every edit must still apply to the sources as they are
        count = (ROOT / path).read_text().count(old)
        if count != 1:
            print(f"emu_mutations: {name}: the text to replace occurs {count} times in {path} (must be once)",
                  file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # killed: clean up, and stop the tests too
    work = Path(tempfile.mkdtemp(prefix="lrfast-mutations-"))
    try:
        src, build, log = work / "src", work / "build", work / "build.log"
        src.mkdir()
        shutil.copy2(ROOT / "CMakeLists.txt", src)
        shutil.copytree(ROOT / "csrc", src / "csrc")
        import pybind11

        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        if not run(["cmake", "-S", str(src), "-B", str(build), *generator, f"-DPython_EXECUTABLE={sys.executable}",
                    f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", "-DLRFAST_CUDA=0",
                    f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={build / 'out'}"], log):
            print(log.read_text())
            return 2
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")

        def build_cmd(target: str) -> list[str]:
            return ["cmake", "--build", str(build), "--target", target, "--parallel", jobs]

        targets = sorted({"_C" if path in HOST_SOURCES else "_C_emu" for _, _, path, _, _ in chosen})
        print(f"== building lrfast.{' and lrfast.'.join(targets)} unmutated in {build}")
        if not all(run(build_cmd(target), log) for target in targets):
            print(log.read_text())
            return 2
        package = work / "package"  # a copy of lrfast where a host mutation's _C replaces the built one
        if "_C" in targets:
            shutil.copytree(ROOT / "lrfast", package / "lrfast", ignore=shutil.ignore_patterns("__pycache__"))
        survivors = []
        for k, (name, focus, path, old, new) in enumerate(chosen, start=1):
            started = time.monotonic()
            host = path in HOST_SOURCES
            target = src / path
            original = target.read_text()
            target.write_text(original.replace(old, new))
            try:
                built = run(build_cmd("_C" if host else "_C_emu"), log)
            finally:
                target.write_text(original)
            if not built:
                print(log.read_text()[-4000:])
                print(f"emu_mutations: {name}: the mutated sources did not build")
                return 2
            test_log = work / f"{name}.log"
            if host:
                module = next((build / "out").glob("_C.*.so"))
                for old_module in (package / "lrfast").glob("_C.*.so"):
                    old_module.unlink()
                shutil.copy2(module, package / "lrfast" / module.name)
                # PYTHONSAFEPATH: the checkout (the working directory) stays off sys.path, so the copy is imported
                env = dict(os.environ, PYTHONPATH=str(package), PYTHONSAFEPATH="1")
                tests = SCHEDULER_TESTS
            else:
                module = next((build / "out").glob("_C_emu*.so"))
                env = dict(os.environ, LRFAST_TEST_EMU_MODULE=str(module))
                tests = KERNEL_TESTS
            pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider", *tests]
            imported = f"import lrfast; assert lrfast.__file__.startswith({str(package)!r})"
            if host and not run([sys.executable, "-c", imported], test_log, cwd=ROOT, env=env):
                print(f"emu_mutations: {name}: the copy of lrfast is not the one imported (see {test_log})")
                return 2
            focused = status([*pytest, "-k", focus], test_log, cwd=ROOT, env=env, timeout=1800)
            if focused == 5:  # pytest: no test collected
                print(f"emu_mutations: {name}: -k {focus!r} selects no test of {' '.join(tests)}")
                return 2
            passed = focused == 0 and run(pytest, test_log, cwd=ROOT, env=env, timeout=1800)
            seconds = time.monotonic() - started
            if passed:
                survivors.append(name)
                print(f"[{k}/{len(chosen)}] {name} ({path}): SURVIVED ({seconds:.0f} s)")
            else:
                lines = test_log.read_text().splitlines()
                first = next((line for line in lines if line.startswith(("FAILED", "ERROR", "Fatal"))),
                             lines[-1] if lines else "the test process died")
                print(f"[{k}/{len(chosen)}] {name} ({path}): caught ({seconds:.0f} s): {first[:160]}")
            sys.stdout.flush()
        caught = len(chosen) - len(survivors)
        print(f"emu_mutations: {caught} of {len(chosen)} mutations caught")
        if survivors:
            print(f"emu_mutations: survived: {' '.join(survivors)}")
            return 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
