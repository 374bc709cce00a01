// The schedulers' per-step entry points on the host: see scheduler_step.h.
#include "scheduler_step.h"

#include <pybind11/numpy.h>
#include <structmember.h>  // PyMemberDef, T_OBJECT_EX, READONLY: the runtime's slots

#include <lrfast/plateau.h>
#include <lrfast/schedule.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace lrfast::host {
namespace {

constexpr int kNeedsCoefficients = 1;
constexpr int kNotFloat = 2;

// The rows of one packed program a step evaluates: group g takes row row_of[g] (row g when
// row_of is null). Groups with equal descriptors share a row, evaluated once per step.
struct Rows {
  const double* descriptors = nullptr;
  std::int64_t count = 0;
  const double* row_of = nullptr;  // float64 row numbers, checked in range by whoever set them
  const double* table = nullptr;

  std::int64_t row(std::int64_t g) const { return row_of != nullptr ? static_cast<std::int64_t>(row_of[g]) : g; }

  // cur[g] = group g's schedule at step; distinct: scratch of `count` values
  void evaluate(double step, std::int64_t n, double* cur, std::vector<double>& distinct) const {
    if (row_of == nullptr) {
      for (std::int64_t g = 0; g < n; ++g) cur[g] = lrfast::evaluate(descriptors + g * kDescriptorSize, table, step);
      return;
    }
    distinct.resize(static_cast<std::size_t>(count));
    for (std::int64_t r = 0; r < count; ++r) distinct[r] = lrfast::evaluate(descriptors + r * kDescriptorSize, table, step);
    for (std::int64_t g = 0; g < n; ++g) cur[g] = distinct[row(g)];
  }
};

// groups[g][key], element tuple_slot of it when tuple_slot >= 0 (borrowed), or null with no
// error set where the group is not a dict holding the key (a tuple long enough).
PyObject* lookup_held(PyObject* group, PyObject* key, int tuple_slot) {
  if (!PyDict_Check(group)) return nullptr;
  PyObject* value = PyDict_GetItemWithError(group, key);
  if (value == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  if (tuple_slot >= 0) {
    if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) <= tuple_slot) return nullptr;
    value = PyTuple_GET_ITEM(value, tuple_slot);
  }
  return value;
}

// step_groups' reading of a held value: lookup_held, raising where it gives null.
PyObject* held_value(PyObject* group, PyObject* key, int tuple_slot) {
  if (PyObject* value = lookup_held(group, key, tuple_slot)) return value;
  if (!PyDict_Check(group)) throw py::type_error("step_groups: param groups must be dicts");
  if (tuple_slot < 0 || PyDict_Contains(group, key) != 1) throw py::key_error(py::str(key));
  throw py::type_error("step_groups: groups[g][key] must be a tuple long enough for tuple_slot");
}

// A plain number as a double (an exact float or int): false for anything else.
bool plain_number(PyObject* value, double* out) {
  if (PyFloat_CheckExact(value)) {
    *out = PyFloat_AS_DOUBLE(value);
    return true;
  }
  if (PyLong_CheckExact(value)) {
    *out = PyLong_AsDouble(value);
    if (*out == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    return true;
  }
  return false;
}

// The index of the first non-finite value, n when all are finite.
std::int64_t first_non_finite(const double* values, std::int64_t n) {
  std::int64_t g = 0;
  while (g < n && std::isfinite(values[g])) ++g;
  return g;
}

// NOTE [dict versions]: CPython 3.10 to 3.13 give each dict a version tag that every mutation
// replaces with a fresh value from one interpreter-wide counter (PEP 509; deprecated in 3.12,
// gone in 3.14). A group dict still at the version it had when the compiled step finished holds
// exactly what that step left in it, so its LR (and momentum) are known without a lookup. The
// step keeps strong references to those dicts, so none can be freed and another take its
// address. On 3.14, free-threaded builds, and for dict subclasses, every group is read. Assumed:
// a group's lookup runs no Python (keys are strings, or objects whose == with a string edits no
// param group), as the float paths run none between the reads and the record (NoCollection).
#if PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
constexpr bool kDictVersions = true;
std::uint64_t dict_version(PyObject* dict) {
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
  return reinterpret_cast<PyDictObject*>(dict)->ma_version_tag;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}
#else
constexpr bool kDictVersions = false;
std::uint64_t dict_version(PyObject*) { return 0; }
#endif

// NOTE [dict versions]: between reading the groups and recording them, no Python may run (it
// could edit a group the record then vouches for). The float paths call none, but the cycle
// collector of 3.10 and 3.11 runs inside an allocation (a list, say) and with it any finalizer;
// 3.12 and 3.13 only schedule it. Held off for that window, and put back as it was.
struct NoCollection {
  bool was_enabled = PyGC_Disable() != 0;
  NoCollection() = default;
  NoCollection(const NoCollection&) = delete;
  NoCollection& operator=(const NoCollection&) = delete;
  ~NoCollection() {
    if (was_enabled) PyGC_Enable();
  }
};

// The body of a raw (vectorcall) entry point: its result, or nullptr with the Python error
// set from whatever it threw.
template <class Body>
PyObject* raw_call(Body&& body) {
  try {
    return body().release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (py::builtin_exception& e) {
    e.set_error();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

// Writes values[g] into groups[g][key] (element tuple_slot of the tuple there when >= 0) and
// returns the list of the float objects written (the step's proof; _last_lr is a copy). held[g] (borrowed;
// null: read here) is what group g holds: a float equal to its value stays, no store (StepLR and
// the like change their LR on few steps). Groups of one row written with equal values share one
// float object (floats are immutable), as do neighbours of equal value. A group with skip[g] >= 0
// is left to the caller (None in the list).
py::list write_floats(PyObject* groups, PyObject* key, int tuple_slot, const double* values, std::int64_t n,
                      PyObject* const* held, const Rows& rows, const int* skip = nullptr) {
  py::list written(n);
  std::vector<PyObject*> row_float;  // borrowed from `written`
  if (rows.row_of != nullptr) row_float.assign(static_cast<std::size_t>(rows.count), nullptr);
  PyObject* previous = nullptr;  // the float object written to the group before (borrowed from `written`)
  for (std::int64_t g = 0; g < n; ++g) {
    if (skip != nullptr && skip[g] >= 0) {  // written by the caller (a tensor group): None until then
      Py_INCREF(Py_None);
      PyList_SET_ITEM(written.ptr(), g, Py_None);
      continue;
    }
    PyObject* group = PyList_GET_ITEM(groups, g);
    const double value = values[g];
    const bool shareable = !std::signbit(value);  // -0.0 is written as its own object
    if (tuple_slot < 0) {
      PyObject* now = held != nullptr ? held[g] : held_value(group, key, -1);
      if (PyFloat_CheckExact(now) && PyFloat_AS_DOUBLE(now) == value && shareable) {
        Py_INCREF(now);
        PyList_SET_ITEM(written.ptr(), g, now);
        previous = now;
        continue;
      }
    }
    PyObject** same_row = !row_float.empty() ? &row_float[rows.row(g)] : nullptr;
    PyObject* v = nullptr;
    if (same_row != nullptr && *same_row != nullptr && PyFloat_AS_DOUBLE(*same_row) == value && shareable) {
      v = *same_row;
    } else if (previous != nullptr && PyFloat_AS_DOUBLE(previous) == value && shareable) {
      v = previous;
    }
    if (v != nullptr) {
      Py_INCREF(v);
    } else {
      v = PyFloat_FromDouble(value);
      if (v == nullptr) throw py::error_already_set();
    }
    PyList_SET_ITEM(written.ptr(), g, v);  // the list owns v
    previous = v;
    if (same_row != nullptr) *same_row = v;
    if (tuple_slot >= 0) {
      PyObject* old = held_value(group, key, -1);
      if (!PyTuple_Check(old) || PyTuple_GET_SIZE(old) <= tuple_slot) {
        throw py::type_error("step_groups: groups[g][key] must be a tuple long enough for tuple_slot");
      }
      py::tuple replaced(PyTuple_GET_SIZE(old));
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(old); ++i) {
        PyObject* item = i == tuple_slot ? v : PyTuple_GET_ITEM(old, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(replaced.ptr(), i, item);
      }
      if (PyDict_SetItem(group, key, replaced.ptr()) != 0) throw py::error_already_set();
    } else if (PyDict_SetItem(group, key, v) != 0) {
      throw py::error_already_set();
    }
  }
  return written;
}

// The fast step's common write: every group holds a float on the program, so group g's value
// is its row's, bit for bit. One float object per row, made when a group first needs it; a
// group already holding an exact float of the same bits keeps it, no store. Returns the list
// of the objects the groups hold after (the step's proof; _last_lr is a copy). row_float: scratch.
py::list write_rows(PyObject* groups, PyObject* key, const double* values, std::int64_t n, PyObject* const* held,
                    const std::int32_t* row_index, std::int64_t row_count, std::vector<PyObject*>& row_float) {
  py::list written(n);
  row_float.assign(static_cast<std::size_t>(row_count), nullptr);  // borrowed from `written`
  for (std::int64_t g = 0; g < n; ++g) {
    PyObject* now = held[g];
    const double value = values[g];
    // (the held value copied first: from Python 3.12 PyFloat_AS_DOUBLE is a function, not an lvalue)
    const double now_value = PyFloat_CheckExact(now) ? PyFloat_AS_DOUBLE(now) : 0.0;
    if (PyFloat_CheckExact(now) && std::memcmp(&now_value, &value, sizeof value) == 0) {
      Py_INCREF(now);
      PyList_SET_ITEM(written.ptr(), g, now);
      continue;
    }
    PyObject*& shared = row_float[row_index[g]];
    if (shared != nullptr) {
      Py_INCREF(shared);
    } else {
      shared = PyFloat_FromDouble(value);
      if (shared == nullptr) throw py::error_already_set();
    }
    PyList_SET_ITEM(written.ptr(), g, shared);  // the list owns it
    if (PyDict_SetItem(PyList_GET_ITEM(groups, g), key, shared) != 0) throw py::error_already_set();
  }
  return written;
}

// ---------------------------------------------------------------------------------------
// _C.step_groups: NOTE [one step rule] in lrfast/lr_scheduler/_base.py. cur[g] = descriptor g
// at `step` (the closed form); a group that holds prev[g] (the closed form at the previous
// step, compared by value) gets cur[g]; any other group gets torch's recursion from what it
// holds, a * (held - shift) + add, each coefficient a float or one per group. prev = None:
// every group gets cur (torch's twin ignores the held value). on_out[g] = 1 where cur[g] was
// written, else 0. Returns the list of the float objects written (the step's proof),
// kNeedsCoefficients when a group is off program and coeffs is None, or kNotFloat when a
// group's value is not a plain number; nothing is written in either case, nor when a value
// would be non-finite (ValueError). With tuple_slot >= 0, groups[g][key] is a tuple (Adam's
// betas) whose element tuple_slot is replaced.

struct Coefficient {
  double scalar = 0.0;
  const double* per_group = nullptr;
  double at(std::int64_t g) const { return per_group != nullptr ? per_group[g] : scalar; }
};

using StrictArray = py::array_t<double, py::array::c_style>;

Coefficient coefficient(const py::handle& value, std::int64_t n, std::vector<StrictArray>& keep) {
  Coefficient c;
  if (PyFloat_Check(value.ptr()) || PyLong_Check(value.ptr())) {
    c.scalar = PyFloat_AsDouble(value.ptr());
    if (c.scalar == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    return c;
  }
  keep.push_back(py::cast<StrictArray>(value));
  const StrictArray& array = keep.back();
  if (array.ndim() != 1 || array.shape(0) != n) throw py::value_error("step_groups: a coefficient array needs one value per group");
  c.per_group = array.data();
  return c;
}

// A float64, C-contiguous array argument of the raw entry point below, checked; no copy.
const double* doubles(PyObject* object, std::int64_t rows, std::int64_t cols, const char* name) {
  const auto handle = py::handle(object);
  if (!py::array_t<double, py::array::c_style>::check_(handle)) {
    throw py::type_error(std::string("step_groups: ") + name + " must be a C-contiguous float64 array");
  }
  const auto array = py::reinterpret_borrow<py::array>(handle);
  const bool shape_ok = cols < 0 ? (array.ndim() == 1 && (rows < 0 || array.shape(0) == rows))
                                 : (array.ndim() == 2 && array.shape(0) == rows && array.shape(1) == cols);
  if (!shape_ok) throw py::value_error(std::string("step_groups: ") + name + " has the wrong shape");
  return static_cast<const double*>(array.data());
}

void check_finite(const double* values, std::int64_t n, double step) {
  // a non-finite LR is never written (nothing is, then): the caller names the scheduler
  const std::int64_t g = first_non_finite(values, n);
  if (g == n) return;
  const bool whole = step == std::floor(step) && std::fabs(step) < 1e15;
  throw py::value_error("the learning rate of param group " + std::to_string(g) + " at step " +
                        (whole ? std::to_string(static_cast<long long>(step))
                               : py::str(py::float_(step)).cast<std::string>()) + " would be " +
                        py::str(py::float_(values[g])).cast<std::string>());
}

py::object step_groups(PyObject* const* args) {
  // (descriptors, table, step, groups, key, tuple_slot, cur, prev, coeffs, on_out, row_of)
  if (!PyList_Check(args[3])) throw py::type_error("step_groups: groups must be a list");
  const auto n = static_cast<std::int64_t>(PyList_GET_SIZE(args[3]));
  Rows rows;
  rows.count = n;
  if (args[10] != Py_None) {  // row_of: for each group, the row of `descriptors` it shares with others
    if (!py::array_t<double, py::array::c_style>::check_(args[0])) {
      throw py::type_error("step_groups: descriptors must be a C-contiguous float64 array");
    }
    rows.count = py::reinterpret_borrow<py::array>(args[0]).shape(0);
    rows.row_of = doubles(args[10], n, -1, "row_of");
    for (std::int64_t g = 0; g < n; ++g) {
      if (rows.row(g) < 0 || rows.row(g) >= rows.count) throw py::value_error("step_groups: row_of names a row out of range");
    }
  }
  rows.descriptors = doubles(args[0], rows.count, kDescriptorSize, "descriptors");
  rows.table = doubles(args[1], -1, -1, "table");
  const double step = PyFloat_AsDouble(args[2]);
  if (step == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  if (!PyUnicode_Check(args[4])) throw py::type_error("step_groups: key must be a str");
  PyObject* key = args[4];
  const long tuple_slot = PyLong_AsLong(args[5]);
  if (tuple_slot == -1 && PyErr_Occurred()) throw py::error_already_set();
  auto* c = const_cast<double*>(doubles(args[6], n, -1, "cur"));
  auto* on = const_cast<double*>(doubles(args[9], n, -1, "on_out"));
  std::vector<double> distinct;
  rows.evaluate(step, n, c, distinct);
  std::vector<double> values(c, c + n);
  // what each group held (borrowed; the dicts are not changed before the write loop), when read
  std::vector<PyObject*> held_objects;
  if (args[7] != Py_None) {
    held_objects.resize(static_cast<std::size_t>(n));
    const double* p = doubles(args[7], n, -1, "prev");
    std::vector<StrictArray> keep;
    Coefficient a, shift, add;
    const bool have_coeffs = args[8] != Py_None;
    if (have_coeffs) {
      if (!PyTuple_Check(args[8]) || PyTuple_GET_SIZE(args[8]) != 3) {
        throw py::value_error("step_groups: coeffs must be (a, shift, add)");
      }
      a = coefficient(PyTuple_GET_ITEM(args[8], 0), n, keep);
      shift = coefficient(PyTuple_GET_ITEM(args[8], 1), n, keep);
      add = coefficient(PyTuple_GET_ITEM(args[8], 2), n, keep);
    }
    for (std::int64_t g = 0; g < n; ++g) {
      PyObject* value = held_value(PyList_GET_ITEM(args[3], g), key, static_cast<int>(tuple_slot));
      held_objects[g] = value;
      double held;
      if (!plain_number(value, &held)) return py::int_(kNotFloat);
      if (held == p[g]) {
        on[g] = 1.0;
        continue;
      }
      if (!have_coeffs) return py::int_(kNeedsCoefficients);
      on[g] = 0.0;
      values[g] = a.at(g) * (held - shift.at(g)) + add.at(g);
    }
  } else {
    for (std::int64_t g = 0; g < n; ++g) on[g] = 1.0;
  }
  check_finite(values.data(), n, step);
  return write_floats(args[3], key, static_cast<int>(tuple_slot), values.data(), n,
                      held_objects.empty() || tuple_slot >= 0 ? nullptr : held_objects.data(), rows);
}

// Called with Python's vectorcall convention: the pybind11 argument conversions of a def'd
// function cost more than a one-group step.
PyObject* step_groups_raw(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 11) {
    PyErr_SetString(PyExc_TypeError, "step_groups takes 11 arguments");
    return nullptr;
  }
  return raw_call([args] { return step_groups(args); });
}

PyMethodDef step_groups_def = {
    "step_groups", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(step_groups_raw)), METH_FASTCALL,
    "step_groups(descriptors, table, step, groups, key, tuple_slot, cur, prev, coeffs, on_out, row_of) -> object\n"
    "One scheduler step of float groups (NOTE [one step rule] in lrfast/lr_scheduler/_base.py): the closed form "
    "where a group holds prev, a * (held - shift) + add elsewhere; returns the floats written, or "
    "STEP_NEEDS_COEFFICIENTS / STEP_NOT_FLOAT (nothing written)."};

// ---------------------------------------------------------------------------------------
// _C.FastStep: NOTE [fast step] in lrfast/lr_scheduler/_base.py. One object per scheduler
// program; fast.step(scheduler, runtime) takes the whole common step -- the checks of
// LRScheduler.step and _lrfast_write, the groups' values by the one step rule, the writes and
// the bookkeeping -- and returns True, or returns False having changed nothing where anything
// is not the common case (the Python step then runs).

// Offsets of the runtime's slots (lrfast.lr_scheduler._base._Runtime.__slots__), read once by
// bind_runtime: the fast step reads and sets them as the slots' own descriptors do.
struct RuntimeSlots {
  PyTypeObject* type = nullptr;  // _Runtime (a strong reference, kept for the life of the process)
  Py_ssize_t program = 0, owner = 0, off = 0, t = 0, prev_t = 0, proof = 0, given = 0, proof_on = 0,
             proof_program = 0, momentum_proof = 0, lr_buffer = 0;
} g_slots;

PyObject*& slot(PyObject* object, Py_ssize_t offset) {
  return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(object) + offset);
}

void set_slot(PyObject* object, Py_ssize_t offset, PyObject* value) {
  Py_INCREF(value);
  Py_XSETREF(slot(object, offset), value);
}

void bind_runtime(const py::type& runtime) {
  auto offset = [&](const char* name) {
    const py::object descriptor = runtime.attr("__dict__")[name];
    if (!Py_IS_TYPE(descriptor.ptr(), &PyMemberDescr_Type)) {
      throw py::type_error(std::string("bind_runtime: ") + name + " is not a slot");
    }
    const PyMemberDef* member = reinterpret_cast<PyMemberDescrObject*>(descriptor.ptr())->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY) != 0) {
      throw py::type_error(std::string("bind_runtime: ") + name + " is not a writable object slot");
    }
    return member->offset;
  };
  g_slots.program = offset("program");
  g_slots.owner = offset("owner");
  g_slots.off = offset("off");
  g_slots.t = offset("t");
  g_slots.prev_t = offset("prev_t");
  g_slots.proof = offset("proof");
  g_slots.given = offset("given");
  g_slots.proof_on = offset("proof_on");
  g_slots.proof_program = offset("proof_program");
  g_slots.momentum_proof = offset("momentum_proof");
  g_slots.lr_buffer = offset("lr_buffer");
  Py_INCREF(runtime.ptr());
  g_slots.type = reinterpret_cast<PyTypeObject*>(runtime.ptr());
}

// Interned attribute names, made once.
struct Names {
  PyObject *step_count, *last_epoch, *last_lr, *host_path, *skip_on_overflow, *is_initial, *optimizer,
      *param_groups, *coefficients, *t_cur, *t_i, *t_mult, *t_0, *lr, *lr_lambdas, *base_lrs, *write_values, *version;
} g_names;

void intern_names() {
  auto intern = [](const char* s) {
    PyObject* name = PyUnicode_InternFromString(s);
    if (name == nullptr) throw py::error_already_set();
    return name;  // kept for the life of the process
  };
  g_names = {intern("_step_count"), intern("last_epoch"), intern("_last_lr"), intern("_lrfast_host_path"),
             intern("_lrfast_skip_on_overflow"), intern("_is_initial"), intern("optimizer"),
             intern("param_groups"), intern("_lrfast_coefficients"), intern("T_cur"), intern("T_i"),
             intern("T_mult"), intern("T_0"), intern("lr"), intern("lr_lambdas"), intern("base_lrs"),
             intern("_lrfast_write_values"), intern("_version")};
}

// One packed program (LR or momentum) as the fast step evaluates and writes it.
struct Program {
  py::object descriptors, table;  // kept alive: rows points into them (read-only, validated when packed)
  std::vector<double> row_of;
  std::vector<std::int32_t> row_index;  // group g's row (g itself without row_of): write_rows' sharing
  Rows rows;
  py::object key;
  int tuple_slot = -1;
  std::vector<double> distinct;

  Program(const Program&) = delete;
  Program(Program&&) = default;  // rows.row_of points into row_of's buffer, which a move keeps
  Program(const py::tuple& spec, std::int64_t n) {
    // (descriptors (R, kDescriptorSize) float64, table float64, row_of float64 (n,) or None, key, tuple_slot)
    if (spec.size() != 5) throw py::value_error("make_fast_step: a program is (descriptors, table, row_of, key, slot)");
    descriptors = spec[0];
    table = spec[1];
    const auto d = py::cast<StrictArray>(descriptors);
    const auto t = py::cast<StrictArray>(table);
    if (d.ndim() != 2 || d.shape(1) != kDescriptorSize || t.ndim() != 1 || d.writeable() || t.writeable()) {
      throw py::value_error("make_fast_step: descriptors must be (R, descriptor size) and both arrays read-only");
    }
    rows.count = d.shape(0);
    rows.descriptors = d.data();
    rows.table = t.data();
    if (!spec[2].is_none()) {
      const auto r = py::cast<StrictArray>(spec[2]);
      if (r.ndim() != 1 || r.shape(0) != n) throw py::value_error("make_fast_step: row_of needs one row per group");
      row_of.assign(r.data(), r.data() + n);  // a copy: nothing can change it later
      for (double row : row_of) {
        if (!(row >= 0 && row < static_cast<double>(rows.count)) || row != std::floor(row)) {
          throw py::value_error("make_fast_step: row_of names a row out of range");
        }
      }
      rows.row_of = row_of.data();
    } else if (rows.count != n) {
      throw py::value_error("make_fast_step: one descriptor per group expected");
    }
    row_index.resize(static_cast<std::size_t>(n));
    for (std::int64_t g = 0; g < n; ++g) row_index[g] = static_cast<std::int32_t>(rows.row(g));
    key = spec[3];
    if (!PyUnicode_Check(key.ptr())) throw py::type_error("make_fast_step: key must be a str");
    tuple_slot = py::cast<int>(spec[4]);
  }
};

// What a scheduler's step() moves, and the program's step: last_epoch + 1 (_step_count moved
// too), _step_count - 1 (SWALR's own count), or CosineAnnealingWarmRestarts' last_epoch + 1
// with its T_cur / T_i (torch's step leaves _step_count alone there).
constexpr int kLastEpoch = 0;
constexpr int kOwnSteps = 1;
constexpr int kRestarts = 2;

// The user's callables, called once per group at each step as torch calls them (no program):
// LambdaLR's base_lr * lr_lambda(t), MultiplicativeLR's group["lr"] * lr_lambda(t).
constexpr int kNoCallables = 0;
constexpr int kLambda = 1;
constexpr int kMultiplicative = 2;

// What a callables step read of group g (an exact dict) before calling the lambdas: the dict,
// its version then (0 without dict versions), and what it held under "lr" (the value of an
// exact float, held null; anything else borrowed in held).
struct CallableRead {
  PyObject* group = nullptr;
  std::uint64_t version = 0;
  PyObject* held = nullptr;
  double value = 0.0;
};

// The first user of a scratch buffer (first: nobody was), released when the user goes: a
// step re-entered from a lambda takes a local buffer instead.
struct ScratchUse {
  bool& in_use;
  bool first;
  explicit ScratchUse(bool& flag) : in_use(flag), first(!flag) { in_use = true; }
  ScratchUse(const ScratchUse&) = delete;
  ScratchUse& operator=(const ScratchUse&) = delete;
  ~ScratchUse() {
    if (first) in_use = false;
  }
};

struct FastImpl {
  py::object program;  // the scheduler's _Program this was made for: runtime.program must be it
  std::int64_t n = 0;
  std::vector<Program> programs;  // [0]: the LR; [1], when present: momentum / beta1, written absolutely
  py::object on_array;  // program.on: 1.0 where the closed form was written (runtime.proof_on)
  double* on = nullptr;
  py::object watched;  // tuple of (attribute name, the copy the program was built from, is a dict)
  py::object group_keys;  // tuple of the group keys the closed form reads
  py::object group_items;  // list: per group, the value of the one key, or the tuple of several
  py::object limit_name;  // None, or the attribute the step may not pass (OneCycleLR's total_steps)
  bool absolute = false;  // torch's twin ignores the held LR
  int counting = kLastEpoch;  // what the program's step is, and what step() moves
  int callables = kNoCallables;  // a LambdaLR / MultiplicativeLR step: no program, the lambdas' values
  // groups whose lr is a CPU tensor (float32 or float64), read and written through its memory
  // (the program's NumPy view); tensor_slot[g]: its index in tensors, -1 for a float group
  struct TensorGroup {
    py::object tensor, view;
    void* data = nullptr;
    bool f32 = false;
    double load() const { return f32 ? static_cast<double>(*static_cast<float*>(data)) : *static_cast<double*>(data); }
    double rounded(double v) const { return f32 ? static_cast<double>(static_cast<float>(v)) : v; }
    void store(double v) const {
      if (f32) {
        *static_cast<float*>(data) = static_cast<float>(v);
      } else {
        *static_cast<double*>(data) = v;
      }
    }
  };
  std::vector<TensorGroup> tensors;
  std::vector<int> tensor_slot;
  py::object tensor_list;  // the tensors, for bump
  py::object bump;  // torch.autograd.graph.increment_version: the version moves as torch's in-place ops move it
  // the closed form at prev_step (valid with have_prev), this step's, the values to write, the
  // on-program flags of this step (copied to `on` once it is taken), the momentum values
  std::vector<double> prev, cur, values, on_now, momentum;
  std::vector<PyObject*> held_objects, held_momentum;  // borrowed, during a step: what the groups hold
  std::vector<PyObject*> row_float;  // write_rows' scratch
  // NOTE [dict versions]: the groups as the last compiled step left them (float programs only):
  // the dicts (strong), their versions then, and the lists of what each holds under the LR and
  // momentum keys (the step's proof and momentum proof: the runtime's own lists, never the
  // _last_lr the user can edit). seen_groups None: nothing known.
  py::object seen_groups = py::none(), seen_lr = py::none(), seen_momentum = py::none();
  std::vector<std::uint64_t> seen_version;
  std::vector<double> seen_value;  // a callables step's record: the float each group was left holding
  std::vector<CallableRead> reads;  // a callables step's scratch (reads_in_use: a step is using it)
  bool reads_in_use = false;
  // NOTE [pure lambdas] (lrfast/lr_scheduler/_pure.py): a callables step's is_pure_code, and the
  // verdicts it gave, by code object (held, so an address is never another code's)
  py::object pure_check = py::none();
  std::vector<std::pair<py::object, bool>> pure_verdicts;
  double prev_step = 0.0;
  bool have_prev = false;
};

struct FastStep {
  PyObject_HEAD
  FastImpl* impl;
};

// The instance dict's entries the step sets before it may call Python (the coefficients read
// _step_count and last_epoch, as torch's get_lr does), put back if it then declines.
struct Rollback {
  PyObject* dict;
  PyObject* step_count;  // strong references to the old values
  PyObject* last_epoch;
  bool active = true;
  Rollback(PyObject* d, PyObject* count, PyObject* epoch) : dict(d), step_count(count), last_epoch(epoch) {
    Py_INCREF(step_count);
    Py_INCREF(last_epoch);
  }
  ~Rollback() {
    if (active) {
      PyObject *type, *value, *traceback;
      PyErr_Fetch(&type, &value, &traceback);
      if (PyDict_SetItem(dict, g_names.step_count, step_count) != 0 ||
          PyDict_SetItem(dict, g_names.last_epoch, last_epoch) != 0) {
        PyErr_Clear();  // out of memory putting back an existing key: nothing better to do here
      }
      PyErr_Restore(type, value, traceback);
    }
    Py_DECREF(step_count);
    Py_DECREF(last_epoch);
  }
};

bool exact_long(PyObject* value, std::int64_t* out) {
  if (value == nullptr || !PyLong_CheckExact(value)) return false;
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
  if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return false;
  }
  *out = static_cast<std::int64_t>(v);
  constexpr std::int64_t kExact = std::int64_t{1} << 52;  // exact as a double, with room for +1
  return v < kExact && v > -kExact;
}

// The entry is absent or False (an attribute the class sets False; the instance may set True).
bool false_or_absent(PyObject* dict, PyObject* name) {
  PyObject* value = PyDict_GetItemWithError(dict, name);
  if (value == nullptr && PyErr_Occurred()) PyErr_Clear();
  return value == nullptr || value == Py_False;
}

// NOTE [watched attributes]: the containers torch re-reads each step equal the program's copies.
bool watched_unchanged(const FastImpl& f, PyObject* dict) {
  PyObject* watched = f.watched.ptr();  // a tuple (make_fast_step): read by index, no iterator allocated
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(watched); ++i) {
    PyObject* item = PyTuple_GET_ITEM(watched, i);
    PyObject* name = PyTuple_GET_ITEM(item, 0);
    PyObject* copy = PyTuple_GET_ITEM(item, 1);
    const bool is_dict = PyTuple_GET_ITEM(item, 2) == Py_True;
    PyObject* current = PyDict_GetItemWithError(dict, name);
    if (current == nullptr) {
      if (PyErr_Occurred()) PyErr_Clear();
      current = Py_None;  // as attributes.get(name)
    }
    if (current == copy) continue;
    int equal;
    if (is_dict && Py_TYPE(current) == Py_TYPE(copy) && PyDict_Check(current)) {
      // a Counter's == runs in Python (MultiStepLR's milestones): dict's own, in C
      PyObject* result = PyDict_Type.tp_richcompare(current, copy, Py_EQ);
      if (result == nullptr) {
        PyErr_Clear();
        return false;
      }
      equal = result == Py_True;
      Py_DECREF(result);
    } else {
      equal = PyObject_RichCompareBool(current, copy, Py_EQ);
      if (equal < 0) {
        PyErr_Clear();
        return false;
      }
    }
    if (equal == 0) return false;
  }
  return true;
}

// The group keys the closed form reads (OneCycleLR's max_lr, SWALR's swa_lr) hold what the program was built from.
bool group_items_unchanged(const FastImpl& f, PyObject* groups) {
  const Py_ssize_t keys = PyTuple_GET_SIZE(f.group_keys.ptr());
  if (keys == 0) return true;
  for (std::int64_t g = 0; g < f.n; ++g) {
    PyObject* group = PyList_GET_ITEM(groups, g);
    PyObject* expected = PyList_GET_ITEM(f.group_items.ptr(), g);
    for (Py_ssize_t k = 0; k < keys; ++k) {
      PyObject* value = lookup_held(group, PyTuple_GET_ITEM(f.group_keys.ptr(), k), -1);
      if (value == nullptr) return false;
      PyObject* want = keys == 1 ? expected : PyTuple_GET_ITEM(expected, k);
      const int equal = PyObject_RichCompareBool(value, want, Py_EQ);
      if (equal < 0) PyErr_Clear();
      if (equal != 1) return false;
    }
  }
  return true;
}

bool all_finite(const std::vector<double>& values) {
  const auto n = static_cast<std::int64_t>(values.size());
  return first_non_finite(values.data(), n) == n;
}

// CosineAnnealingWarmRestarts' step from t - 1 to t: torch's T_cur + 1, a restart where it
// reaches T_i (T_i times T_mult then). True where that is where the closed form puts step t
// (T_0, T_mult: what the program was built from -- assigning them drops it), with the new
// T_cur and T_i; false otherwise (a hand-set T_cur: the Python step writes torch's formula).
bool restart_period(PyObject* dict, std::int64_t t, py::object* t_cur_out, py::object* t_i_out) {
  std::int64_t t_cur = 0, t_i = 0, mult = 0, t_0 = 0;
  if (!exact_long(PyDict_GetItemWithError(dict, g_names.t_cur), &t_cur) ||
      !exact_long(PyDict_GetItemWithError(dict, g_names.t_i), &t_i) ||
      !exact_long(PyDict_GetItemWithError(dict, g_names.t_mult), &mult) ||
      !exact_long(PyDict_GetItemWithError(dict, g_names.t_0), &t_0) || t_i < 1 || mult < 1 || t_0 < 1) {
    if (PyErr_Occurred()) PyErr_Clear();
    return false;
  }
  constexpr std::int64_t kExact = std::int64_t{1} << 52;
  t_cur += 1;
  if (t_cur >= t_i) {
    t_cur -= t_i;
    if (t_i > kExact / mult) return false;
    t_i *= mult;
  }
  // the period the closed form puts t in: [start, start + length)
  std::int64_t start = 0, length = t_0;
  if (mult == 1) {
    start = t - t % t_0;
  } else {
    while (t >= start + length) {
      start += length;
      if (length > kExact / mult) return false;
      length *= mult;
    }
  }
  if (t - start != t_cur || length != t_i) return false;
  *t_cur_out = py::int_(t_cur);
  *t_i_out = py::int_(t_i);
  return true;
}

// NOTE [pure lambdas]: fn's code where one call at a step gives the value of every call of it
// at that step (lrfast/lr_scheduler/_pure.py), else null. A code object is checked once: its
// verdict is kept (at most kPureVerdicts of them; codes past those are called every time).
// checked: set where the check ran now (it runs Python).
constexpr std::size_t kPureVerdicts = 8;
PyObject* pure_code(FastImpl& f, PyObject* fn, bool* checked) {
  if (f.pure_check.is_none() || Py_TYPE(fn) != &PyFunction_Type) return nullptr;
  PyObject* code = PyFunction_GET_CODE(fn);
  const auto known = std::find_if(f.pure_verdicts.begin(), f.pure_verdicts.end(),
                                  [code](const auto& verdict) { return verdict.first.ptr() == code; });
  bool pure = false;
  if (known != f.pure_verdicts.end()) {
    pure = known->second;
  } else if (f.pure_verdicts.size() < kPureVerdicts) {
    auto held = py::reinterpret_borrow<py::object>(code);
    *checked = true;
    const auto verdict = py::reinterpret_steal<py::object>(PyObject_CallOneArg(f.pure_check.ptr(), code));
    if (!verdict) {  // a code object the check cannot read is not pure (an interrupt propagates)
      if (!PyErr_ExceptionMatches(PyExc_Exception)) throw py::error_already_set();
      PyErr_Clear();
    }
    pure = verdict.ptr() == Py_True;
    f.pure_verdicts.emplace_back(std::move(held), pure);
  }
  // the check runs Python: fn is read again, and nothing runs between this read and the call
  return pure && PyFunction_GET_CODE(fn) == code ? code : nullptr;
}

// A trace or profile function (sys.settrace / sys.setprofile) sees every call: none is shared.
bool traced() {
  const PyThreadState* state = PyThreadState_Get();
  return state->c_tracefunc != nullptr || state->c_profilefunc != nullptr;
}

// Python 3.12+: code a sys.monitoring tool has instrumented (its events may run Python at each
// call). The interpreter instruments a code object when it next runs after a tool sets events,
// so this is asked after a call; a code once instrumented stays so here (its calls are made).
bool monitored(PyObject* code) {
#if PY_VERSION_HEX >= 0x030C0000
  return reinterpret_cast<PyCodeObject*>(code)->_co_monitoring != nullptr;
#else
  static_cast<void>(code);
  return false;
#endif
}

// A number of the built-in types, whose products run no Python.
bool builtin_number(PyObject* value) {
  return PyFloat_CheckExact(value) || PyLong_CheckExact(value) || PyBool_Check(value) || PyComplex_CheckExact(value);
}

// The list of the dicts groups[:n] for a record: old (the last record's list) where it holds
// the same dicts, else a new one (NOTE [dict versions]: the record holds them strongly).
py::object record_dicts(PyObject* groups, std::int64_t n, const py::object& old) {
  bool same = !old.is_none() && PyList_GET_SIZE(old.ptr()) == n;
  for (std::int64_t g = 0; same && g < n; ++g) same = PyList_GET_ITEM(old.ptr(), g) == PyList_GET_ITEM(groups, g);
  if (same) return old;
  auto dicts = py::reinterpret_steal<py::object>(PyList_GetSlice(groups, 0, n));
  if (!dicts) throw py::error_already_set();
  return dicts;
}

// LambdaLR's or MultiplicativeLR's step (f.callables): each group's lambda called once, at t,
// as torch's get_lr calls it (products as Python's own * makes them), but consecutive groups
// running the same pure code share one call (NOTE [pure lambdas]); float products are written
// here, anything else by the Python write (_lrfast_write_values). Once a lambda has been
// called the step cannot be declined: an exception from a lambda puts the counts back and
// propagates, as the Python step does. What each group holds is read once before the calls
// (from the record, NOTE [dict versions], where its dict is as the last step left it) and
// again only where its dict changed while the lambdas ran. The common case -- one pure
// function for every group, float operands -- is one call and a few tight passes.
bool callables_step(FastImpl& f, PyObject* scheduler, PyObject* runtime, PyObject* dict, PyObject* groups,
                    PyObject* count_held, PyObject* epoch_held, std::int64_t new_count, std::int64_t t) {
  PyObject* lambdas = PyDict_GetItemWithError(dict, g_names.lr_lambdas);
  PyObject* bases = f.callables == kLambda ? PyDict_GetItemWithError(dict, g_names.base_lrs) : nullptr;
  if (PyErr_Occurred()) PyErr_Clear();
  const std::int64_t n = f.n;
  if (slot(runtime, g_slots.lr_buffer) != Py_None || lambdas == nullptr || !PyList_CheckExact(lambdas) ||
      PyList_GET_SIZE(lambdas) != n || (f.callables == kLambda && (bases == nullptr || !PyList_CheckExact(bases) ||
                                                                   PyList_GET_SIZE(bases) != n))) {
    return false;
  }
  // the lists the lambdas are read from stay alive whatever a lambda does (the caller holds groups)
  const auto lambdas_held = py::reinterpret_borrow<py::list>(lambdas);
  const auto bases_held = py::reinterpret_borrow<py::object>(bases != nullptr ? bases : Py_None);
  // Group 0's function, where its code is pure (the check may run Python: before the reads);
  // whether every group holds it is asked after its call.
  PyObject* first_fn = n > 0 ? PyList_GET_ITEM(lambdas, 0) : nullptr;
  const auto first_held = py::reinterpret_borrow<py::object>(first_fn != nullptr ? first_fn : Py_None);
  bool checked = false;
  PyObject* first_code = first_fn != nullptr ? pure_code(f, first_fn, &checked) : nullptr;
  if (checked && (PyDict_GetItem(dict, g_names.step_count) != count_held ||
                  PyDict_GetItem(dict, g_names.last_epoch) != epoch_held || slot(runtime, g_slots.lr_buffer) != Py_None)) {
    return false;  // the check ran Python, which moved what the step read before it
  }
  if (PyList_GET_SIZE(groups) != n || (bases != nullptr && PyList_GET_SIZE(bases) != n)) return false;
  // every group a dict holding an lr, before any lambda runs (reads: scratch, local when a
  // lambda steps this scheduler again)
  std::vector<CallableRead> own_reads;
  ScratchUse scratch(f.reads_in_use);
  auto& reads = scratch.first ? f.reads : own_reads;
  reads.resize(static_cast<std::size_t>(n));
  const bool recorded = !f.seen_groups.is_none();
  bool float_lefts = first_code != nullptr;  // every left factor an exact float (the tight path's case)
  for (std::int64_t g = 0; g < n; ++g) {
    PyObject* group = PyList_GET_ITEM(groups, g);
    if (!PyDict_CheckExact(group)) return false;  // a dict subclass may override [] (torch's reads and writes)
    CallableRead& read = reads[g];
    read.group = group;
    read.version = dict_version(group);
    if (recorded && PyList_GET_ITEM(f.seen_groups.ptr(), g) == group &&
        read.version == f.seen_version[g]) {
      read.held = nullptr;  // the exact float the last step wrote
      read.value = f.seen_value[g];
    } else {
      read.held = lookup_held(group, g_names.lr, -1);
      if (read.held == nullptr) return false;
      if (PyFloat_CheckExact(read.held)) {
        read.value = PyFloat_AS_DOUBLE(read.held);
        read.held = nullptr;
      }
    }
    float_lefts = float_lefts && (f.callables == kLambda ? PyFloat_CheckExact(PyList_GET_ITEM(bases, g))
                                                         : read.held == nullptr);
  }
  // Group g as read above: its dict is the one read, at the version read (a dict's version is
  // fresh from one interpreter-wide counter, so a new dict at a freed one's address fails this).
  const auto as_read = [&reads, groups](std::int64_t g) {
    const CallableRead& read = reads[g];
    return kDictVersions && PyList_GET_SIZE(groups) > g && PyList_GET_ITEM(groups, g) == read.group &&
           dict_version(read.group) == read.version;
  };
  const auto t_object = py::int_(t);
  const auto count_object = py::int_(new_count);
  Rollback rollback(dict, count_held, epoch_held);
  if (PyDict_SetItem(dict, g_names.step_count, count_object.ptr()) != 0 ||
      PyDict_SetItem(dict, g_names.last_epoch, t_object.ptr()) != 0) {
    throw py::error_already_set();
  }
  py::list products(n);
  PyObject* shared_code = nullptr;  // the pure code (NOTE [pure lambdas]) the last call ran, and its value
  py::object shared_factor;
  // Group 0's pure function: its left factor read (torch reads it before the call), then its
  // call. Its value serves every group where all hold that function and nothing moved: the
  // frame may run other Python (a signal handler, another thread, the collector), so the
  // lambdas, the code, the tracers and last_epoch are checked after it. Otherwise the groups
  // past 0 take the general loop (group 0's call made).
  py::object first_factor, first_left;
  double first_left_value = 0.0;
  if (first_code != nullptr && PyList_GET_SIZE(lambdas) == n && PyList_GET_ITEM(lambdas, 0) == first_fn &&
      PyFunction_GET_CODE(first_fn) == first_code) {
    if (bases != nullptr) {
      first_left = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(bases, 0));
    } else if (reads[0].held != nullptr) {
      first_left = py::reinterpret_borrow<py::object>(reads[0].held);
    } else {
      first_left_value = reads[0].value;  // (first_left stays null: the float value)
    }
    first_factor = py::reinterpret_steal<py::object>(PyObject_CallOneArg(first_fn, t_object.ptr()));
    if (!first_factor) throw py::error_already_set();
    bool unmoved = PyList_GET_SIZE(lambdas) == n && PyFunction_GET_CODE(first_fn) == first_code && !traced() &&
                   !monitored(first_code) && PyDict_GetItem(dict, g_names.last_epoch) == t_object.ptr();
    for (std::int64_t g = 0; unmoved && g < n; ++g) unmoved = PyList_GET_ITEM(lambdas, g) == first_fn;
    if (unmoved) {
      shared_code = first_code;
      shared_factor = first_factor;
    }
  }
  // From the reads below to the record no Python may run (NOTE [dict versions]); none does on
  // the float paths (the collector is held off; a lambda's Python ran before it).
  std::optional<NoCollection> no_collection;
  if (kDictVersions) no_collection.emplace();
  bool plain = PyList_GET_SIZE(groups) == n;
  bool tight = shared_code != nullptr && float_lefts && PyFloat_CheckExact(shared_factor.ptr()) && plain &&
               (bases == nullptr || PyList_GET_SIZE(bases) == n);
  for (std::int64_t g = 0; tight && g < n; ++g) {  // (the call may have let another thread run)
    tight = as_read(g) && reads[g].held == nullptr && (bases == nullptr || PyFloat_CheckExact(PyList_GET_ITEM(bases, g)));
  }
  // product of two exact floats, as float.__mul__ gives it; equal operands, bit for bit, share
  // one float (floats are immutable): a small table of the products made, by their operands'
  // bits (the groups of one base_lr, as a program's rows share theirs)
  struct Made {
    std::uint64_t left = 0, factor = 0;
    PyObject* product = nullptr;  // borrowed: products holds it
  };
  std::array<Made, 16> made{};
  const auto float_product = [&made](double left, double factor) {
    std::uint64_t left_bits = 0, factor_bits = 0;
    std::memcpy(&left_bits, &left, sizeof(double));
    std::memcpy(&factor_bits, &factor, sizeof(double));
    Made& slot = made[(left_bits ^ (left_bits >> 29) ^ (left_bits >> 47) ^ factor_bits) & 15];
    if (slot.product != nullptr && slot.left == left_bits && slot.factor == factor_bits) {
      Py_INCREF(slot.product);
      return slot.product;
    }
    PyObject* product = PyFloat_FromDouble(left * factor);
    if (product == nullptr) throw py::error_already_set();
    slot = {left_bits, factor_bits, product};
    return product;
  };
  if (tight) {  // nothing ran since the reads but the one pure call: every operand a float read above
    const double factor = PyFloat_AS_DOUBLE(shared_factor.ptr());
    for (std::int64_t g = 0; g < n; ++g) {
      // (group 0's base as read before the call; the others' verified float above)
      PyObject* base = bases == nullptr ? nullptr : g == 0 ? first_left.ptr() : PyList_GET_ITEM(bases, g);
      const double left = base != nullptr ? PyFloat_AS_DOUBLE(base) : reads[g].value;
      PyObject* product = float_product(left, factor);
      PyList_SET_ITEM(products.ptr(), g, product);  // the list owns it
      plain = plain && std::isfinite(PyFloat_AS_DOUBLE(product));
    }
  } else {
    no_collection.reset();  // lambdas and products run Python: each group is read again after them
    for (std::int64_t g = 0; g < n && g < PyList_GET_SIZE(groups); ++g) {
      // a lambda may change anything, these lists' lengths included: read them only in bounds
      if (PyList_GET_SIZE(lambdas) != n || (bases != nullptr && PyList_GET_SIZE(bases) != n)) {
        throw py::value_error(std::string(Py_TYPE(scheduler)->tp_name) +
                              ": lr_lambdas or base_lrs changed length while the lambdas were called");
      }
      // the left factor: base_lr, or torch's group["lr"] read before the lambda is called
      const bool called = g == 0 && first_factor;  // group 0's call made above, its left read before it
      py::object left;
      bool left_float = false;
      double left_value = 0.0;
      if (called) {
        left = first_left;
        left_float = !first_left;
        left_value = first_left_value;
      } else if (f.callables == kLambda) {
        left = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(bases, g));
      } else if (as_read(g)) {
        left_float = reads[g].held == nullptr;
        left_value = reads[g].value;
        if (!left_float) left = py::reinterpret_borrow<py::object>(reads[g].held);
      } else {
        PyObject* held = lookup_held(PyList_GET_ITEM(groups, g), g_names.lr, -1);
        if (held == nullptr) throw py::key_error("lr");
        left = py::reinterpret_borrow<py::object>(held);
      }
      if (left && PyFloat_CheckExact(left.ptr())) {
        left_float = true;
        left_value = PyFloat_AS_DOUBLE(left.ptr());
      }
      py::object factor = first_factor;
      if (!called) {
        const auto fn = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(lambdas, g));
        bool checked_now = false;
        PyObject* code = pure_code(f, fn.ptr(), &checked_now);
        if (checked_now) shared_code = nullptr;  // the check ran Python
        // torch calls lmbda(self.last_epoch): read at each call (a lambda may have set it)
        py::object epoch = py::reinterpret_borrow<py::object>(PyDict_GetItemWithError(dict, g_names.last_epoch));
        if (!epoch) {
          if (PyErr_Occurred()) throw py::error_already_set();
          epoch = py::reinterpret_steal<py::object>(PyObject_GetAttr(scheduler, g_names.last_epoch));
          if (!epoch) throw py::error_already_set();
        }
        const bool at_t = epoch.ptr() == t_object.ptr();
        if (code != nullptr && code == shared_code && at_t && !traced() && !monitored(code)) {
          factor = shared_factor;  // the same pure code at the same step: the value of its call
        } else {
          factor = py::reinterpret_steal<py::object>(PyObject_CallOneArg(fn.ptr(), epoch.ptr()));
          if (!factor) throw py::error_already_set();
          shared_code = at_t ? code : nullptr;
          shared_factor = factor;
        }
      }
      PyObject* product = nullptr;
      if (left_float && PyFloat_CheckExact(factor.ptr())) {
        product = float_product(left_value, PyFloat_AS_DOUBLE(factor.ptr()));
      } else {
        if (!left) left = py::reinterpret_steal<py::object>(PyFloat_FromDouble(left_value));
        if (!left) throw py::error_already_set();
        product = PyNumber_Multiply(left.ptr(), factor.ptr());
        if (product == nullptr) throw py::error_already_set();
        // a user's * may have changed what a pure call depends on (the interpreter's limits)
        if (!builtin_number(left.ptr()) || !builtin_number(factor.ptr())) shared_code = nullptr;
      }
      PyList_SET_ITEM(products.ptr(), g, product);  // the list owns it
      plain = plain && PyFloat_CheckExact(product) && std::isfinite(PyFloat_AS_DOUBLE(product));
    }
    if (PyList_GET_SIZE(groups) != n) plain = false;
    if (kDictVersions && plain) no_collection.emplace();
    for (std::int64_t g = 0; plain && g < n; ++g) {  // a lambda may have changed the groups: read again
      if (as_read(g)) {
        plain = reads[g].held == nullptr;
      } else {
        PyObject* group = PyList_GET_ITEM(groups, g);
        PyObject* held = PyDict_CheckExact(group) ? lookup_held(group, g_names.lr, -1) : nullptr;
        plain = held != nullptr && PyFloat_CheckExact(held);
      }
    }
  }
  py::object last_lr = products;
  py::object old_record = std::move(f.seen_groups);  // released at return: nothing is known until it is set
  f.seen_groups = py::none();
  if (plain) {
    // every group an exact dict here (read so, or checked again after the lambdas); each
    // version read right after its write: a dict written again at a later index (one dict
    // twice in the list) fails the earlier index's record, and holds the later one's value
    f.seen_version.resize(static_cast<std::size_t>(n));
    f.seen_value.resize(static_cast<std::size_t>(n));
    for (std::int64_t g = 0; g < n; ++g) {
      PyObject* group = PyList_GET_ITEM(groups, g);
      PyObject* product = PyList_GET_ITEM(products.ptr(), g);
      if (PyDict_SetItem(group, g_names.lr, product) != 0) throw py::error_already_set();
      f.seen_version[g] = dict_version(group);
      f.seen_value[g] = PyFloat_AS_DOUBLE(product);
    }
    // torch's _last_lr reads the groups back: where a dict was written again at a later index,
    // it holds (and shows) that one's value
    for (std::int64_t g = 0; g < n; ++g) {
      PyObject* group = PyList_GET_ITEM(groups, g);
      if (kDictVersions && dict_version(group) == f.seen_version[g]) continue;
      PyObject* held = lookup_held(group, g_names.lr, -1);
      if (held != nullptr && held != PyList_GET_ITEM(products.ptr(), g)) {
        Py_INCREF(held);
        PyList_SetItem(products.ptr(), g, held);  // steals held, releases a float
      }
    }
    if (kDictVersions) f.seen_groups = record_dicts(groups, n, old_record);
    no_collection.reset();
  } else {  // tensors, NumPy numbers, a non-finite value: the Python write (it raises for the last)
    no_collection.reset();
    last_lr = py::reinterpret_steal<py::object>(
        PyObject_CallMethodObjArgs(scheduler, g_names.write_values, products.ptr(), Py_None, t_object.ptr(), nullptr));
    if (!last_lr) throw py::error_already_set();
  }
  rollback.active = false;
  if (PyDict_SetItem(dict, g_names.last_lr, last_lr.ptr()) != 0) throw py::error_already_set();
  // the runtime as _lrfast_write leaves it after _lrfast_write_values
  set_slot(runtime, g_slots.t, t_object.ptr());
  set_slot(runtime, g_slots.prev_t, Py_None);
  set_slot(runtime, g_slots.proof, Py_None);
  set_slot(runtime, g_slots.given, Py_None);
  set_slot(runtime, g_slots.proof_on, Py_None);
  return true;
}

// NOTE [dict versions]: group g is the dict the last compiled step left at index g, at the
// version it had then.
bool unchanged_since_seen(const FastImpl& f, PyObject* group, std::int64_t g) {
  return PyList_GET_ITEM(f.seen_groups.ptr(), g) == group && dict_version(group) == f.seen_version[g];
}

// NOTE [dict versions]: the FastImpl whose record the last compiled step set (borrowed; cleared
// when that FastStep goes). A scheduler stepped after another on the same optimizer (a chain,
// schedulers stacked) reads the groups as that one left them.
const FastImpl* g_last_seen = nullptr;

// Whose record a step of f on these groups reads the LR from: the last one set, when it is of
// the same groups and LR key, else f's own; null where neither is set.
const FastImpl* seen_source(const FastImpl& f, PyObject* groups) {
  const FastImpl* last = g_last_seen;
  if (last != nullptr && last != &f && f.n > 0 && last->n == f.n && !last->seen_groups.is_none() &&
      PyList_GET_ITEM(last->seen_groups.ptr(), 0) == PyList_GET_ITEM(groups, 0) &&
      last->programs[0].key.ptr() == f.programs[0].key.ptr()) {
    return last;
  }
  return f.seen_groups.is_none() ? nullptr : &f;
}

// After a compiled step of float groups: the groups as it leaves them (NOTE [dict versions]).
// Only exact dicts are remembered (a subclass may hold its items elsewhere); none when any is not.
void remember_groups(FastImpl& f, PyObject* groups, const py::list& lr, const py::object& momentum) {
  const std::int64_t n = f.n;
  py::object dicts = std::move(f.seen_groups);  // nothing is known until every entry below is set
  f.seen_groups = py::none();
  f.seen_version.resize(static_cast<std::size_t>(n));
  bool same_dicts = !dicts.is_none();
  for (std::int64_t g = 0; g < n; ++g) {
    PyObject* group = PyList_GET_ITEM(groups, g);
    if (!PyDict_CheckExact(group)) return;
    same_dicts = same_dicts && PyList_GET_ITEM(dicts.ptr(), g) == group;
    f.seen_version[g] = dict_version(group);
  }
  py::object old_dicts;  // released at return, once the record is whole (freeing a dict may run Python)
  if (!same_dicts) {
    old_dicts = std::move(dicts);
    dicts = py::reinterpret_steal<py::object>(PyList_GetSlice(groups, 0, n));
    if (!dicts) throw py::error_already_set();
  }
  py::object old_lr = std::move(f.seen_lr), old_momentum = std::move(f.seen_momentum);
  f.seen_lr = lr;
  f.seen_momentum = momentum;
  f.seen_groups = std::move(dicts);
  g_last_seen = &f;
}

// The step; false (nothing changed) where it is not the common case.
bool fast_step(FastImpl& f, PyObject* scheduler, PyObject* runtime) {
  if (g_slots.type == nullptr || Py_TYPE(runtime) != g_slots.type ||
      slot(runtime, g_slots.program) != f.program.ptr() || slot(runtime, g_slots.owner) != Py_None) {
    return false;
  }
  const auto dict_object = py::reinterpret_steal<py::object>(PyObject_GenericGetDict(scheduler, nullptr));
  if (!dict_object || !PyDict_Check(dict_object.ptr())) {
    PyErr_Clear();
    return false;
  }
  PyObject* dict = dict_object.ptr();
  if (!false_or_absent(dict, g_names.host_path) || !false_or_absent(dict, g_names.skip_on_overflow) ||
      !false_or_absent(dict, g_names.is_initial)) {
    return false;
  }
  PyObject* optimizer = PyDict_GetItemWithError(dict, g_names.optimizer);
  if (optimizer == nullptr) {
    PyErr_Clear();
    return false;
  }
  const auto groups_object = py::reinterpret_steal<py::object>(PyObject_GetAttr(optimizer, g_names.param_groups));
  if (!groups_object) {
    PyErr_Clear();
    return false;
  }
  PyObject* groups = groups_object.ptr();
  if (!PyList_CheckExact(groups) || PyList_GET_SIZE(groups) != f.n || !watched_unchanged(f, dict) ||
      !group_items_unchanged(f, groups)) {
    return false;  // (the comparisons above may run Python: the counts are read after them)
  }
  const auto count_held = py::reinterpret_borrow<py::object>(PyDict_GetItemWithError(dict, g_names.step_count));
  const auto epoch_held = py::reinterpret_borrow<py::object>(PyDict_GetItemWithError(dict, g_names.last_epoch));
  std::int64_t step_count = 0, prev = 0;
  // the first step after the initial one warns (torch's order check); last_epoch < 0: torch's initial step
  const bool moves_count = f.counting != kRestarts;
  if ((moves_count && (!exact_long(count_held.ptr(), &step_count) || step_count == 1)) ||
      !exact_long(epoch_held.ptr(), &prev) || prev < 0) {
    if (PyErr_Occurred()) PyErr_Clear();
    return false;
  }
  const std::int64_t t = prev + 1;
  if (f.callables != kNoCallables) {
    return callables_step(f, scheduler, runtime, dict, groups, count_held.ptr(), epoch_held.ptr(), step_count + 1, t);
  }
  py::object t_cur_object, t_i_object;
  if (f.counting == kRestarts && !restart_period(dict, t, &t_cur_object, &t_i_object)) return false;
  if (!f.limit_name.is_none()) {
    std::int64_t limit = 0;
    PyObject* held = PyDict_GetItemWithError(dict, f.limit_name.ptr());
    if (!exact_long(held, &limit) || t > limit) {
      if (PyErr_Occurred()) PyErr_Clear();
      return false;  // past it: the Python step raises torch's error
    }
  }
  const std::int64_t new_count = step_count + 1;
  const bool own_count = f.counting == kOwnSteps;
  const double s = own_count ? static_cast<double>(new_count - 1) : static_cast<double>(t);
  const double prev_s = own_count ? static_cast<double>(new_count - 2) : static_cast<double>(prev);
  const std::int64_t n = f.n;
  Program& lr = f.programs[0];
  lr.rows.evaluate(s, n, f.cur.data(), lr.distinct);
  if (!f.absolute && !(f.have_prev && f.prev_step == prev_s)) {
    lr.rows.evaluate(prev_s, n, f.prev.data(), lr.distinct);
    f.prev_step = prev_s;
    f.have_prev = true;
  }
  // the Python step sets these before its write, and the coefficients read them as torch's get_lr does
  const auto t_object = py::int_(t);
  const auto count_object = py::int_(new_count);
  Rollback rollback(dict, count_held.ptr(), epoch_held.ptr());
  if ((moves_count && PyDict_SetItem(dict, g_names.step_count, count_object.ptr()) != 0) ||
      PyDict_SetItem(dict, g_names.last_epoch, t_object.ptr()) != 0) {
    throw py::error_already_set();
  }
  // torch's recursion from what an off group holds: its coefficients, asked for up front when the
  // last step had groups off the program (no Python runs while the groups are read below); floats
  // only, else the Python step
  const bool recursion = !f.absolute && slot(runtime, g_slots.off) == Py_True;
  double a = 0.0, shift = 0.0, add = 0.0;
  if (recursion) {
    const auto coefficients = py::reinterpret_steal<py::object>(
        PyObject_CallMethodOneArg(scheduler, g_names.coefficients, t_object.ptr()));
    if (!coefficients) {
      PyErr_Clear();  // the Python step calls it again and raises
      return false;
    }
    PyObject* c = coefficients.ptr();
    if (!PyTuple_CheckExact(c) || PyTuple_GET_SIZE(c) != 3 || !plain_number(PyTuple_GET_ITEM(c, 0), &a) ||
        !plain_number(PyTuple_GET_ITEM(c, 1), &shift) || !plain_number(PyTuple_GET_ITEM(c, 2), &add)) {
      return false;
    }
  }
  // NOTE [one step rule]: a group holding the closed form at the previous step gets this step's,
  // any other torch's recursion from what it holds (borrowed: nothing runs Python until the writes)
  std::vector<PyObject*>& held = f.held_objects;
  bool off = false;
  const bool has_tensors = !f.tensors.empty();
  const double* values = f.cur.data();  // f.values where some group is off the program
  std::optional<NoCollection> no_collection;  // float groups are recorded (NOTE [dict versions])
  if (!has_tensors) {  // float groups: the tight loop of the common step, off groups patched after
    if (kDictVersions) no_collection.emplace();
    PyObject* key = lr.key.ptr();
    const double* expected = f.prev.data();
    double* on_now = f.on_now.data();
    const bool absolute = f.absolute;
    const FastImpl* source = seen_source(f, groups);
    for (std::int64_t g = 0; g < n; ++g) {
      PyObject* group = PyList_GET_ITEM(groups, g);
      PyObject* value = source != nullptr && unchanged_since_seen(*source, group, g)
                            ? PyList_GET_ITEM(source->seen_lr.ptr(), g)
                            : lookup_held(group, key, -1);
      double h = 0.0;
      if (value != nullptr && PyFloat_CheckExact(value)) {
        h = PyFloat_AS_DOUBLE(value);
      } else if (value == nullptr || !plain_number(value, &h)) {
        return false;
      }
      held[g] = value;
      const bool on = absolute || h == expected[g];
      on_now[g] = on ? 1.0 : 0.0;
      off |= !on;
    }
    if (off) {
      if (!recursion) return false;  // the first step off the program: the Python step takes it (and asks for coefficients)
      std::copy(f.cur.begin(), f.cur.end(), f.values.begin());
      for (std::int64_t g = 0; g < n; ++g) {
        double h = 0.0;
        if (on_now[g] == 0.0 && plain_number(held[g], &h)) f.values[g] = a * (h - shift) + add;
      }
      values = f.values.data();
    }
  } else {
    for (std::int64_t g = 0; g < n; ++g) {
      PyObject* value = lookup_held(PyList_GET_ITEM(groups, g), lr.key.ptr(), -1);
      double h = 0.0;
      double expected = f.prev[g];
      const int slot = f.tensor_slot[g];
      if (slot >= 0) {  // the very tensor the program was built with, read in its dtype
        const auto& tensor = f.tensors[slot];
        if (value != tensor.tensor.ptr()) return false;
        h = tensor.load();
        expected = tensor.rounded(expected);
      } else if (value == nullptr || !plain_number(value, &h)) {
        return false;
      }
      held[g] = value;
      if (f.absolute || h == expected) {
        f.on_now[g] = 1.0;
        f.values[g] = f.cur[g];
      } else if (recursion) {
        f.on_now[g] = 0.0;
        f.values[g] = a * (h - shift) + add;
        off = true;
      } else {
        return false;  // the first step off the program: the Python step takes it (and asks for coefficients)
      }
    }
    values = f.values.data();
  }
  if (first_non_finite(values, n) != n) return false;  // the Python step names the scheduler in its error
  const bool has_momentum = f.programs.size() > 1;
  if (has_momentum) {
    Program& m = f.programs[1];
    m.rows.evaluate(s, n, f.momentum.data(), m.distinct);
    if (!all_finite(f.momentum)) return false;
    const bool seen = !has_tensors && !f.seen_groups.is_none() && !f.seen_momentum.is_none();
    for (std::int64_t g = 0; g < n; ++g) {
      double h = 0.0;
      PyObject* group = PyList_GET_ITEM(groups, g);
      PyObject* value = seen && unchanged_since_seen(f, group, g) ? PyList_GET_ITEM(f.seen_momentum.ptr(), g)
                                                                   : lookup_held(group, m.key.ptr(), m.tuple_slot);
      if (value == nullptr || !plain_number(value, &h)) return false;
      f.held_momentum[g] = value;
    }
  }
  // -- every check passed: write (only running out of memory can fail from here) --
  const py::list written =
      !off && !has_tensors
          ? write_rows(groups, lr.key.ptr(), values, n, held.data(), lr.row_index.data(), lr.rows.count, f.row_float)
          : write_floats(groups, lr.key.ptr(), -1, values, n, held.data(), lr.rows,
                         has_tensors ? f.tensor_slot.data() : nullptr);
  py::object proof = written;
  if (has_tensors) {  // tensor groups: stored in their dtype; _last_lr keeps the float they hold
    for (std::int64_t g = 0; g < n; ++g) {
      const int slot = f.tensor_slot[g];
      if (slot < 0) continue;
      const auto& tensor = f.tensors[slot];
      tensor.store(f.values[g]);
      PyObject* stored = PyFloat_FromDouble(tensor.load());
      if (stored == nullptr) throw py::error_already_set();
      PyList_SetItem(written.ptr(), g, stored);  // steals stored, releases the None
    }
    // NOTE [proof of the program]: written behind autograd's back, so the versions are moved,
    // and a tensor group's proof is the tensor with its version now
    const auto bumped = py::reinterpret_steal<py::object>(PyObject_CallOneArg(f.bump.ptr(), f.tensor_list.ptr()));
    if (!bumped) throw py::error_already_set();
    py::list evidence(n);
    for (std::int64_t g = 0; g < n; ++g) {
      const int slot = f.tensor_slot[g];
      PyObject* item;
      if (slot < 0) {
        item = PyList_GET_ITEM(written.ptr(), g);
        Py_INCREF(item);
      } else {
        const auto& tensor = f.tensors[slot];
        const auto version = py::reinterpret_steal<py::object>(PyObject_GetAttr(tensor.tensor.ptr(), g_names.version));
        if (!version) throw py::error_already_set();
        item = PyTuple_Pack(2, tensor.tensor.ptr(), version.ptr());
        if (item == nullptr) throw py::error_already_set();
      }
      PyList_SET_ITEM(evidence.ptr(), g, item);
    }
    proof = evidence;
  }
  py::object written_momentum = py::none();
  if (has_momentum) {
    const Program& m = f.programs[1];
    written_momentum = write_floats(groups, m.key.ptr(), m.tuple_slot, f.momentum.data(), n,
                                    m.tuple_slot < 0 ? f.held_momentum.data() : nullptr, m.rows);
  }
  // the record, before anything below releases an object the user gave (which may run Python)
  if (kDictVersions && !has_tensors) remember_groups(f, groups, written, written_momentum);
  // _last_lr: float groups get a copy of the list written (the user may edit the list get_last_lr
  // returns; the proof and the record of NOTE [dict versions] are the runtime's own), tensor groups
  // the list itself (their proof is `evidence`)
  py::object given = py::none();
  if (!has_tensors) {
    given = py::reinterpret_steal<py::object>(PyList_GetSlice(written.ptr(), 0, n));
    if (!given) throw py::error_already_set();
  }
  rollback.active = false;
  if (PyDict_SetItem(dict, g_names.last_lr, has_tensors ? written.ptr() : given.ptr()) != 0 ||
      (f.counting == kRestarts && (PyDict_SetItem(dict, g_names.t_cur, t_cur_object.ptr()) != 0 ||
                                   PyDict_SetItem(dict, g_names.t_i, t_i_object.ptr()) != 0))) {
    throw py::error_already_set();
  }
  std::memcpy(f.on, f.on_now.data(), static_cast<std::size_t>(n) * sizeof(double));
  f.prev.swap(f.cur);  // this step's closed form is the next step's expected value
  f.prev_step = s;
  f.have_prev = true;
  // the runtime as _lrfast_write leaves it (NOTE [proof of the program])
  if (own_count) {
    set_slot(runtime, g_slots.t, py::int_(new_count - 1).ptr());
  } else {
    set_slot(runtime, g_slots.t, t_object.ptr());
  }
  set_slot(runtime, g_slots.prev_t, Py_None);  // the Python step's own cache of the closed form
  set_slot(runtime, g_slots.off, off ? Py_True : Py_False);
  set_slot(runtime, g_slots.proof, proof.ptr());
  set_slot(runtime, g_slots.given, given.ptr());
  set_slot(runtime, g_slots.proof_on, off ? f.on_array.ptr() : Py_None);
  set_slot(runtime, g_slots.proof_program, f.program.ptr());
  set_slot(runtime, g_slots.momentum_proof, written_momentum.ptr());
  return true;
}

PyObject* fast_step_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "FastStep.step takes (scheduler, runtime)");
    return nullptr;
  }
  FastImpl* impl = reinterpret_cast<FastStep*>(self)->impl;
  if (impl == nullptr) Py_RETURN_FALSE;  // cleared by the cycle collector
  return raw_call([impl, args] { return py::bool_(fast_step(*impl, args[0], args[1])); });
}

int fast_step_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  const FastImpl* f = reinterpret_cast<FastStep*>(self)->impl;
  if (f != nullptr) {
    for (const py::object* o : {&f->program, &f->on_array, &f->watched, &f->group_keys, &f->group_items,
                                &f->limit_name, &f->seen_groups, &f->seen_lr, &f->seen_momentum}) {
      Py_VISIT(o->ptr());
    }
    for (const auto& t : f->tensors) {
      Py_VISIT(t.tensor.ptr());
      Py_VISIT(t.view.ptr());
    }
    Py_VISIT(f->tensor_list.ptr());
    Py_VISIT(f->bump.ptr());
    Py_VISIT(f->pure_check.ptr());
    for (const auto& verdict : f->pure_verdicts) Py_VISIT(verdict.first.ptr());
    for (const Program& p : f->programs) {
      Py_VISIT(p.descriptors.ptr());
      Py_VISIT(p.table.ptr());
      Py_VISIT(p.key.ptr());
    }
  }
  return 0;
}

int fast_step_clear(PyObject* self) {
  auto* object = reinterpret_cast<FastStep*>(self);
  if (g_last_seen == object->impl) g_last_seen = nullptr;  // before any reference is released
  delete object->impl;  // its py::objects release their references
  object->impl = nullptr;
  return 0;
}

void fast_step_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  fast_step_clear(self);
  type->tp_free(self);
  Py_DECREF(type);  // a heap type: each instance holds a reference to it
}

PyMethodDef fast_step_methods[] = {
    {"step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fast_step_method)), METH_FASTCALL,
     "step(scheduler, runtime) -> bool\nThe whole common scheduler step (NOTE [fast step] in "
     "lrfast/lr_scheduler/_base.py): True when taken, False (nothing changed) where the Python step must run."},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot fast_step_slots[] = {
    {Py_tp_doc, const_cast<char*>("One scheduler program's whole step in one call; made by make_fast_step.")},
    {Py_tp_dealloc, reinterpret_cast<void*>(fast_step_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(fast_step_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(fast_step_clear)},
    {Py_tp_methods, fast_step_methods},
    {0, nullptr}};

PyType_Spec fast_step_spec = {"lrfast._C.FastStep", sizeof(FastStep), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                              fast_step_slots};

PyTypeObject* g_fast_step_type = nullptr;

// ---------------------------------------------------------------------------------------
// _C.plateau_host_step: NOTE [plateau host step] in lrfast/lr_scheduler/_plateau.py, compiled.
// torch's ReduceLROnPlateau.step(metric) for a float metric, on the host copies of the mirrored
// attributes, by plateau.h's rule (the one the plateau kernel runs): torch's _is_better (mode
// and threshold_mode read at each step, as torch reads them), the bad-epoch and cooldown
// counts, a reduction by torch's _reduce_lr (with `reduces`: the class keeps lrfast's own), and
// _last_lr (tensor LRs cloned, as torch does). Returns False having changed nothing where
// anything is not that case (lr_tensor, min_lrs of another length, other types): the Python
// step runs.

struct PlateauNames {
  PyObject *best, *num_bad, *cooldown_counter, *last_lr, *lr_buffer, *patience, *mode, *threshold, *threshold_mode,
      *min_lrs, *factor, *eps, *cooldown, *clone, *fill;
} g_plateau;

// torch.Tensor (imported once: lrfast imports torch before any scheduler exists)
PyObject* tensor_type() {
  static PyObject* type = [] {
    const auto torch = py::module_::import("torch");
    return py::object(torch.attr("Tensor")).release().ptr();  // kept for the life of the process
  }();
  return type;
}

// True where two groups to be reduced hold the same tensor memory (one tensor shared by groups,
// as an optimizer's default tensor lr is): torch's _reduce_lr reads and fills group by group, so
// it reduces that memory once per group; the compiled step, reading every group first, would
// reduce it once. The Python step then reduces, as torch does.
bool reduces_shared_memory(const std::vector<py::object>& written, const std::vector<py::object>& tensor) {
  static PyObject* const data_ptr = PyUnicode_InternFromString("data_ptr");  // kept for the life of the process
  std::vector<std::uintptr_t> addresses;
  for (std::size_t g = 0; g < tensor.size(); ++g) {
    if (!tensor[g] || written[g].is_none()) continue;
    const auto address = py::reinterpret_steal<py::object>(PyObject_CallMethodNoArgs(tensor[g].ptr(), data_ptr));
    if (!address || !PyLong_Check(address.ptr())) {
      PyErr_Clear();
      return true;  // not told: the Python step
    }
    addresses.push_back(static_cast<std::uintptr_t>(PyLong_AsUnsignedLongLong(address.ptr())));
    if (PyErr_Occurred()) {
      PyErr_Clear();
      return true;
    }
  }
  std::sort(addresses.begin(), addresses.end());
  return std::adjacent_find(addresses.begin(), addresses.end()) != addresses.end();
}

// torch's _reduce_lr, by plateau.h's reduce_lr (the same function the plateau kernel and the
// composed host step run): written[g] is the group's new LR, or None where it keeps its own.
// The object written is Python's max(old_lr * factor, min_lr): the min_lr object itself (an int
// stays an int) where it is the greater. A tensor LR (tensor[g], else null) is read as torch
// reads it, float(lr), and is filled with written[g] by the caller. held: the groups' LRs read
// already (all exact floats, NOTE [plateau record]), or null to look each up. False where the
// groups or arguments are not plain numbers or tensors, or two groups to be reduced share tensor
// memory (nothing decided): the Python step reduces.
bool plateau_reduction(const plateau::Rule& rule, PyObject* dict, PyObject* groups, PyObject* const* held,
                       std::vector<py::object>& written, std::vector<py::object>& tensor) {
  PyObject* min_lrs = PyDict_GetItemWithError(dict, g_plateau.min_lrs);
  if (min_lrs == nullptr) PyErr_Clear();
  const Py_ssize_t n = PyList_GET_SIZE(groups);
  // groups added since construction (torch's rule for min_lrs), or a negative eps (a reduction by
  // nothing would be written, which reduce_lr does not tell apart from none): the Python step
  if (min_lrs == nullptr || !PyList_CheckExact(min_lrs) || PyList_GET_SIZE(min_lrs) != n || !(rule.eps >= 0.0)) {
    return false;
  }
  const auto min_lrs_held = py::reinterpret_borrow<py::object>(min_lrs);  // alive whatever float() runs
  written.assign(static_cast<std::size_t>(n), py::none());
  tensor.assign(static_cast<std::size_t>(n), py::object());
  for (Py_ssize_t g = 0; g < n; ++g) {
    // a tensor's float() runs Python, which may change the lists: read them only in bounds
    if (PyList_GET_SIZE(groups) != n || PyList_GET_SIZE(min_lrs) != n) return false;
    PyObject* lr = held != nullptr ? held[g] : lookup_held(PyList_GET_ITEM(groups, g), g_names.lr, -1);
    PyObject* min_lr = PyList_GET_ITEM(min_lrs, g);
    std::int64_t whole = 0;
    double floor = 0.0;
    if (PyFloat_CheckExact(min_lr)) {
      floor = PyFloat_AS_DOUBLE(min_lr);
    } else if (exact_long(min_lr, &whole)) {
      floor = static_cast<double>(whole);
    } else {
      return false;
    }
    if (lr == nullptr) return false;
    double old_lr = 0.0;
    if (PyFloat_CheckExact(lr)) {
      old_lr = PyFloat_AS_DOUBLE(lr);
    } else {
      const int is_tensor = PyObject_IsInstance(lr, tensor_type());
      if (is_tensor <= 0) {
        if (is_tensor < 0) PyErr_Clear();
        return false;
      }
      auto held_tensor = py::reinterpret_borrow<py::object>(lr);  // float() runs Python: keep it alive
      const auto as_float = py::reinterpret_steal<py::object>(PyNumber_Float(lr));
      if (!as_float) {
        PyErr_Clear();  // the Python step raises torch's error
        return false;
      }
      old_lr = PyFloat_AS_DOUBLE(as_float.ptr());
      tensor[g] = std::move(held_tensor);
    }
    if (!std::isfinite(old_lr)) return false;
    const double new_lr = plateau::reduce_lr(rule, old_lr, floor);
    if (new_lr == old_lr) continue;  // not lowered by more than eps (eps >= 0): kept
    const bool floor_wins = floor > plateau::detail::mul_rn(old_lr, rule.factor);  // Python's max
    written[g] = floor_wins ? py::reinterpret_borrow<py::object>(min_lr) : py::float_(new_lr);
  }
  return !reduces_shared_memory(written, tensor);
}

// NOTE [plateau record]: NOTE [dict versions] for ReduceLROnPlateau's compiled step, which
// reads every group's LR at every step (torch's _last_lr). After a step whose groups were all
// exact dicts holding exact floats (nothing in it ran Python), the record keeps those dicts
// (strong: none can be freed and another take its address), their versions after the step's
// writes, and the float each then held; the next such step takes a group's LR from it while the
// dict is that one at that version. One record per scheduler, in a slot outside __dict__ (never
// in state_dict); a deep copy or an unpickled scheduler starts with an empty one (it only saves
// lookups), a shallow copy shares it (as it shares the optimizer: what it records holds for
// both). Python 3.14 and free-threaded builds never use it.
struct GroupRecord {
  std::vector<PyObject*> dicts, lrs;  // strong references (null: nothing recorded at g)
  std::vector<std::uint64_t> versions;

  bool unchanged(PyObject* group, std::size_t g) const {
    return g < dicts.size() && dicts[g] == group && dict_version(group) == versions[g];
  }
  // After the writes: group g of the n holds values[g]. References replaced are released by the
  // caller, once every entry is set (a release may run Python, which could edit a group).
  void set(PyObject* groups, std::size_t n, PyObject* const* values, std::vector<py::object>& released) {
    released.reserve(released.size() + 2 * std::max(n, dicts.size()));  // no allocation fails below
    if (static_cast<std::size_t>(PyList_GET_SIZE(groups)) != n) {
      clear(released);
      return;
    }
    if (dicts.size() != n) {
      clear(released);
      dicts.assign(n, nullptr);
      lrs.assign(n, nullptr);
      versions.assign(n, 0);
    }
    for (std::size_t g = 0; g < n; ++g) {
      PyObject* group = PyList_GET_ITEM(groups, g);
      replace(dicts[g], group, released);
      replace(lrs[g], values[g], released);
      versions[g] = dict_version(group);
    }
  }
  void clear(std::vector<py::object>& released) {
    released.reserve(released.size() + dicts.size() + lrs.size());  // no allocation fails below
    for (PyObject* o : dicts) {
      if (o != nullptr) released.push_back(py::reinterpret_steal<py::object>(o));
    }
    for (PyObject* o : lrs) {
      if (o != nullptr) released.push_back(py::reinterpret_steal<py::object>(o));
    }
    dicts.clear();
    lrs.clear();
    versions.clear();
  }

 private:
  static void replace(PyObject*& slot, PyObject* value, std::vector<py::object>& released) {
    if (slot == value) return;
    if (slot != nullptr) released.push_back(py::reinterpret_steal<py::object>(slot));
    slot = Py_NewRef(value);
  }
};

struct GroupRecordObject {
  PyObject_HEAD
  GroupRecord* record;
};

PyTypeObject* g_group_record_type = nullptr;

PyObject* group_record_new(PyTypeObject* type, PyObject*, PyObject*) {
  auto* object = PyObject_GC_New(GroupRecordObject, type);
  if (object == nullptr) return nullptr;
  object->record = new (std::nothrow) GroupRecord();
  if (object->record == nullptr) {
    Py_DECREF(object);
    return PyErr_NoMemory();
  }
  PyObject_GC_Track(object);
  return reinterpret_cast<PyObject*>(object);
}

int group_record_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  if (const GroupRecord* r = reinterpret_cast<GroupRecordObject*>(self)->record) {
    for (PyObject* o : r->dicts) Py_VISIT(o);
    for (PyObject* o : r->lrs) Py_VISIT(o);
  }
  return 0;
}

int group_record_clear(PyObject* self) {
  auto* object = reinterpret_cast<GroupRecordObject*>(self);
  if (object->record == nullptr) return 0;
  // the record emptied first by moves (nothing allocated: nothing can throw out of this C
  // callback), its references released after, when it is already empty
  std::vector<PyObject*> dicts = std::move(object->record->dicts), lrs = std::move(object->record->lrs);
  object->record->dicts.clear();
  object->record->lrs.clear();
  object->record->versions.clear();
  for (PyObject* o : dicts) Py_XDECREF(o);
  for (PyObject* o : lrs) Py_XDECREF(o);
  return 0;
}

void group_record_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  group_record_clear(self);
  delete reinterpret_cast<GroupRecordObject*>(self)->record;
  type->tp_free(self);
  Py_DECREF(type);  // a heap type: each instance holds a reference to it
}

// copy.copy / deepcopy of the record itself, and pickle: a new, empty record (NOTE [plateau record]; a
// shallow copy of the scheduler shares its slot's record without calling these)
PyObject* group_record_fresh(PyObject* self, PyObject*) {
  return group_record_new(Py_TYPE(self), nullptr, nullptr);
}

PyObject* group_record_reduce(PyObject* self, PyObject*) {
  return Py_BuildValue("(O())", reinterpret_cast<PyObject*>(Py_TYPE(self)));
}

PyObject* group_record_len(PyObject* self, PyObject*) {
  const GroupRecord* r = reinterpret_cast<GroupRecordObject*>(self)->record;
  return PyLong_FromSize_t(r == nullptr ? 0 : r->dicts.size());
}

PyMethodDef group_record_methods[] = {
    {"__copy__", group_record_fresh, METH_NOARGS, "A new, empty record."},
    {"__deepcopy__", group_record_fresh, METH_O, "A new, empty record."},
    {"__reduce__", group_record_reduce, METH_NOARGS, "Pickled empty."},
    {"recorded", group_record_len, METH_NOARGS, "How many groups the record holds (0: none)."},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot group_record_slots[] = {
    {Py_tp_doc, const_cast<char*>("ReduceLROnPlateau's record of its groups (NOTE [plateau record] in "
                                  "csrc/scheduler_step.cpp); deep copies and pickles start empty.")},
    {Py_tp_new, reinterpret_cast<void*>(group_record_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(group_record_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(group_record_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(group_record_clear)},
    {Py_tp_methods, group_record_methods},
    {0, nullptr}};

PyType_Spec group_record_spec = {"lrfast._C.GroupRecord", sizeof(GroupRecordObject), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, group_record_slots};

// mode / threshold_mode as plateau.h's codes, or -1 for a value other than torch's two
int code_of(PyObject* value, const char* first, const char* second) {
  if (PyUnicode_Check(value) && PyUnicode_CompareWithASCIIString(value, first) == 0) return 0;
  if (PyUnicode_Check(value) && PyUnicode_CompareWithASCIIString(value, second) == 0) return 1;
  return -1;
}

bool plateau_host_step(PyObject* scheduler, PyObject* metric, bool reduces, PyObject* record_object) {
  if (!PyFloat_CheckExact(metric)) return false;
  const auto dict_object = py::reinterpret_steal<py::object>(PyObject_GenericGetDict(scheduler, nullptr));
  if (!dict_object || !PyDict_Check(dict_object.ptr())) {
    PyErr_Clear();
    return false;
  }
  PyObject* dict = dict_object.ptr();
  auto get = [dict](PyObject* name) {
    PyObject* value = PyDict_GetItemWithError(dict, name);
    if (value == nullptr) PyErr_Clear();
    return value;
  };
  auto number = [&get](PyObject* name, double* out) {
    PyObject* value = get(name);
    return value != nullptr && plain_number(value, out);
  };
  // torch's attributes as plateau.h's rule, read at each step as torch reads them; a mode or
  // threshold_mode other than torch's two takes the Python step (torch's _is_better branches on them)
  std::int64_t epoch = 0, bad = 0, counter = 0;
  plateau::Rule rule{};
  PyObject* best = get(g_plateau.best);
  PyObject* buffer = get(g_plateau.lr_buffer);
  PyObject* mode = get(g_plateau.mode);
  PyObject* threshold_mode = get(g_plateau.threshold_mode);
  PyObject* optimizer = get(g_names.optimizer);
  if (!exact_long(get(g_names.last_epoch), &epoch) || !exact_long(get(g_plateau.num_bad), &bad) ||
      !exact_long(get(g_plateau.cooldown_counter), &counter) || best == nullptr || !PyFloat_CheckExact(best) ||
      (buffer != nullptr && buffer != Py_None) || mode == nullptr || threshold_mode == nullptr ||
      optimizer == nullptr || !number(g_plateau.patience, &rule.patience) ||
      !number(g_plateau.threshold, &rule.threshold) || !number(g_plateau.factor, &rule.factor) ||
      !number(g_plateau.eps, &rule.eps) || !number(g_plateau.cooldown, &rule.cooldown)) {
    return false;
  }
  rule.mode = code_of(mode, "min", "max");
  rule.threshold_mode = code_of(threshold_mode, "rel", "abs");
  if (rule.mode < 0 || rule.threshold_mode < 0) return false;
  // torch's step up to the reduction (plateau.h's observe, as the plateau kernel runs it)
  double state[plateau::kStateSize];
  state[plateau::state_slot::kBest] = PyFloat_AS_DOUBLE(best);
  state[plateau::state_slot::kNumBadEpochs] = static_cast<double>(bad);
  state[plateau::state_slot::kCooldownCounter] = static_cast<double>(counter);
  const bool better = plateau::is_better(rule, PyFloat_AS_DOUBLE(metric), PyFloat_AS_DOUBLE(best));  // best = metric
  const bool reduction = plateau::observe(rule, state, PyFloat_AS_DOUBLE(metric));
  const auto groups_object = py::reinterpret_steal<py::object>(PyObject_GetAttr(optimizer, g_names.param_groups));
  if (!groups_object || !PyList_CheckExact(groups_object.ptr())) {
    PyErr_Clear();
    return false;
  }
  PyObject* groups = groups_object.ptr();
  const Py_ssize_t n = PyList_GET_SIZE(groups);
  // NOTE [plateau record]: every group an exact dict holding an exact float, read without running
  // Python (from the record where the dict is as this scheduler's last step left it)
  GroupRecord* record = kDictVersions && Py_IS_TYPE(record_object, g_group_record_type)
                            ? reinterpret_cast<GroupRecordObject*>(record_object)->record
                            : nullptr;
  std::optional<NoCollection> no_collection;  // with record (no Python runs from the reads to the record)
  std::vector<PyObject*> held;  // borrowed: the groups' LRs, with record (nothing frees them before the record)
  bool all_recorded = record != nullptr;  // every group as the record has it: nothing to record again
  if (record != nullptr) {
    no_collection.emplace();
    held.resize(static_cast<std::size_t>(n));
    for (Py_ssize_t g = 0; g < n; ++g) {
      PyObject* group = PyList_GET_ITEM(groups, g);
      const auto at = static_cast<std::size_t>(g);
      const bool exact = PyDict_CheckExact(group);
      const bool recorded = exact && record->unchanged(group, at);
      all_recorded = all_recorded && recorded;
      PyObject* value = recorded ? record->lrs[at] : exact ? lookup_held(group, g_names.lr, -1) : nullptr;
      if (value == nullptr || !PyFloat_CheckExact(value)) {
        record = nullptr;  // the groups are read as below, and not recorded
        no_collection.reset();  // tensors' float() / fill_ / clone run Python: as the user left the collector
        break;
      }
      held[at] = value;
    }
  }
  PyObject* const* floats = record != nullptr ? held.data() : nullptr;
  std::vector<py::object> reduced;    // the groups' new LRs (None: kept)
  std::vector<py::object> tensor_lr;  // with reduced: the group's LR where it is a tensor (filled in place)
  if (reduction) {
    std::int64_t cooldown = 0;  // the counter torch sets is the cooldown attribute itself: an int here
    if (!reduces || !exact_long(get(g_plateau.cooldown), &cooldown) ||
        !plateau_reduction(rule, dict, groups, floats, reduced, tensor_lr)) {
      return false;
    }
    // -- decided: the reduction's fills of tensor LRs first (_last_lr clones them after, as torch's
    // step does), then the float writes below
    for (Py_ssize_t g = 0; g < n; ++g) {
      if (!tensor_lr[g] || reduced[g].is_none()) continue;
      const auto filled = py::reinterpret_steal<py::object>(
          PyObject_CallMethodOneArg(tensor_lr[g].ptr(), g_plateau.fill, reduced[g].ptr()));
      if (!filled) throw py::error_already_set();
    }
    if (PyList_GET_SIZE(groups) != n) {  // a fill ran Python that added or removed groups
      throw py::value_error("ReduceLROnPlateau.step: the optimizer's param_groups changed while the LRs were reduced");
    }
  }
  py::list last_lr(n);
  for (Py_ssize_t g = 0; g < n; ++g) {  // torch's _param_groups_val_list: tensors cloned
    PyObject* lr = floats != nullptr ? floats[g] : lookup_held(PyList_GET_ITEM(groups, g), g_names.lr, -1);
    if (lr == nullptr) {
      if (!reduction) return false;  // nothing changed yet: the Python step runs
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "lr");  // gone while a fill ran Python
      throw py::error_already_set();
    }
    PyObject* now;
    if (reduction && !reduced[g].is_none() && !tensor_lr[g]) {
      now = reduced[g].inc_ref().ptr();
    } else if (PyFloat_CheckExact(lr)) {
      now = Py_NewRef(lr);
    } else {
      const int tensor = PyObject_IsInstance(lr, tensor_type());
      if (tensor < 0) throw py::error_already_set();
      now = tensor ? PyObject_CallMethodNoArgs(lr, g_plateau.clone) : Py_NewRef(lr);
      if (now == nullptr) throw py::error_already_set();
    }
    PyList_SET_ITEM(last_lr.ptr(), g, now);
  }
  for (Py_ssize_t g = 0; reduction && g < n; ++g) {  // the reduction's writes
    if (!reduced[g].is_none() && !tensor_lr[g] &&
        PyDict_SetItem(PyList_GET_ITEM(groups, g), g_names.lr, reduced[g].ptr()) != 0) {
      throw py::error_already_set();
    }
  }
  std::vector<py::object> released;  // released at return, after the record is whole
  if (record != nullptr && !(all_recorded && !reduction)) {
    // the groups hold _last_lr's floats now (exact floats, or a min_lr int: not recorded)
    bool all_floats = true;
    for (Py_ssize_t g = 0; g < n && all_floats; ++g) all_floats = PyFloat_CheckExact(PyList_GET_ITEM(last_lr.ptr(), g));
    if (all_floats) {
      record->set(groups, static_cast<std::size_t>(n), PySequence_Fast_ITEMS(last_lr.ptr()), released);
    } else {
      record->clear(released);
    }
  }
  const auto epoch_object = py::int_(epoch + 1);
  const auto bad_object = py::int_(static_cast<std::int64_t>(state[plateau::state_slot::kNumBadEpochs]));
  const auto counter_object = py::int_(static_cast<std::int64_t>(state[plateau::state_slot::kCooldownCounter]));
  if (PyDict_SetItem(dict, g_names.last_epoch, epoch_object.ptr()) != 0 ||
      (better && PyDict_SetItem(dict, g_plateau.best, metric) != 0) ||
      PyDict_SetItem(dict, g_plateau.num_bad, bad_object.ptr()) != 0 ||
      PyDict_SetItem(dict, g_plateau.cooldown_counter, counter_object.ptr()) != 0 ||
      PyDict_SetItem(dict, g_plateau.last_lr, last_lr.ptr()) != 0) {
    throw py::error_already_set();
  }
  return true;
}

PyObject* plateau_host_step_raw(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 4) {
    PyErr_SetString(PyExc_TypeError, "plateau_host_step takes (scheduler, metric, reduces, record)");
    return nullptr;
  }
  return raw_call([args] { return py::bool_(plateau_host_step(args[0], args[1], args[2] == Py_True, args[3])); });
}

PyMethodDef plateau_host_step_def = {
    "plateau_host_step",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(plateau_host_step_raw)), METH_FASTCALL,
    "plateau_host_step(scheduler, metric, reduces, record) -> bool\nReduceLROnPlateau.step(metric) for a float "
    "metric (NOTE [plateau host step] in lrfast/lr_scheduler/_plateau.py), reducing by torch's rule where "
    "`reduces`; record: the scheduler's GroupRecord (NOTE [plateau record]), or None. True when taken, False "
    "(nothing changed) where the Python step must run."};

py::object make_fast_step(py::object program, std::int64_t n, const py::object& lr, const py::object& momentum,
                          const py::object& on, const py::tuple& watched, const py::tuple& group_keys,
                          const py::object& group_items, const py::object& limit_name, bool absolute,
                          int counting, int callables, const py::list& tensors, const py::object& bump,
                          const py::object& pure_check) {
  auto impl = std::make_unique<FastImpl>();
  impl->program = std::move(program);
  impl->n = n;
  if (callables != kNoCallables) {  // the lambdas give the values: no program
    if (!impl->program.is_none() || !lr.is_none() || !momentum.is_none() || !on.is_none() || absolute ||
        counting != kLastEpoch) {
      throw py::value_error("make_fast_step: a step of callables has no program, momentum or on flags");
    }
  } else {
    impl->programs.reserve(2);
    impl->programs.emplace_back(py::cast<py::tuple>(lr), n);
    if (!momentum.is_none()) impl->programs.emplace_back(py::cast<py::tuple>(momentum), n);
    if (impl->programs[0].tuple_slot != -1) throw py::value_error("make_fast_step: the LR is not a tuple element");
    auto on_checked = py::cast<StrictArray>(on);
    if (on_checked.ndim() != 1 || on_checked.shape(0) != n || !on_checked.writeable() || !on_checked.is(on)) {
      throw py::value_error("make_fast_step: on must be a writable float64 array of one value per group");
    }
    impl->on_array = on;
    impl->on = on_checked.mutable_data();
  }
  for (const auto& item : watched) {
    if (!PyTuple_CheckExact(item.ptr()) || PyTuple_GET_SIZE(item.ptr()) != 3 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(item.ptr(), 0))) {
      throw py::value_error("make_fast_step: watched holds (name, copy, is_dict) tuples");
    }
  }
  impl->watched = watched;
  for (const auto& key : group_keys) {
    if (!PyUnicode_Check(key.ptr())) throw py::type_error("make_fast_step: group keys must be str");
  }
  impl->group_keys = group_keys;
  if (group_keys.size() > 0) {
    if (!PyList_CheckExact(group_items.ptr()) || PyList_GET_SIZE(group_items.ptr()) != n) {
      throw py::value_error("make_fast_step: group_items needs one entry per group");
    }
    for (const auto& item : group_items) {
      if (group_keys.size() > 1 && (!PyTuple_Check(item.ptr()) || PyTuple_GET_SIZE(item.ptr()) !=
                                                                       static_cast<Py_ssize_t>(group_keys.size()))) {
        throw py::value_error("make_fast_step: group_items holds one tuple of the keys' values per group");
      }
    }
  }
  impl->group_items = group_items;
  if (!limit_name.is_none() && !PyUnicode_Check(limit_name.ptr())) {
    throw py::type_error("make_fast_step: limit_name must be a str or None");
  }
  impl->limit_name = limit_name;
  impl->absolute = absolute;
  if (counting != kLastEpoch && counting != kOwnSteps && counting != kRestarts) {
    throw py::value_error("make_fast_step: counting must be 0 (last_epoch), 1 (_step_count) or 2 (warm restarts)");
  }
  impl->counting = counting;
  if (callables != kNoCallables && callables != kLambda && callables != kMultiplicative) {
    throw py::value_error("make_fast_step: callables must be 0 (a program), 1 (LambdaLR) or 2 (MultiplicativeLR)");
  }
  impl->callables = callables;
  if (!pure_check.is_none() && (callables == kNoCallables || !PyCallable_Check(pure_check.ptr()))) {
    throw py::value_error("make_fast_step: pure_check is a callable, for a step of callables only");
  }
  impl->pure_check = pure_check;
  impl->tensor_slot.assign(static_cast<std::size_t>(n), -1);
  py::list tensor_list;
  for (const auto& item : tensors) {  // (group, tensor, its one-element NumPy view)
    const auto spec = py::cast<py::tuple>(item);
    if (spec.size() != 3) throw py::value_error("make_fast_step: tensors holds (group, tensor, view) tuples");
    const auto g = py::cast<std::int64_t>(spec[0]);
    auto view = py::cast<py::array>(spec[2]);
    const bool f32 = view.dtype().is(py::dtype::of<float>());
    if (g < 0 || g >= n || impl->tensor_slot[g] != -1 || callables != kNoCallables || view.size() < 1 ||
        !view.writeable() || !(f32 || view.dtype().is(py::dtype::of<double>()))) {
      throw py::value_error("make_fast_step: a tensor group needs a writable float32 or float64 view, once");
    }
    impl->tensor_slot[g] = static_cast<int>(impl->tensors.size());
    FastImpl::TensorGroup tensor;
    tensor.tensor = spec[1];
    tensor.data = view.mutable_data();
    tensor.view = view;
    tensor.f32 = f32;
    impl->tensors.push_back(std::move(tensor));
    tensor_list.append(spec[1]);
  }
  if (!impl->tensors.empty()) {
    if (!PyCallable_Check(bump.ptr())) throw py::value_error("make_fast_step: tensor groups need bump");
    impl->bump = bump;
    impl->tensor_list = tensor_list;
  }
  for (auto* v : {&impl->prev, &impl->cur, &impl->values, &impl->on_now, &impl->momentum}) {
    v->assign(static_cast<std::size_t>(n), 0.0);
  }
  impl->held_objects.assign(static_cast<std::size_t>(n), nullptr);
  impl->held_momentum.assign(static_cast<std::size_t>(n), nullptr);
  auto* object = PyObject_GC_New(FastStep, g_fast_step_type);
  if (object == nullptr) throw py::error_already_set();
  object->impl = impl.release();
  PyObject_GC_Track(object);
  return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(object));
}

}  // namespace

void add_scheduler_step(py::module_& m) {
  intern_names();
  auto intern = [](const char* text) {
    PyObject* name = PyUnicode_InternFromString(text);
    if (name == nullptr) throw py::error_already_set();
    return name;  // kept for the life of the process
  };
  g_plateau = {intern("_lrfast_best"), intern("_lrfast_num_bad_epochs"), intern("_lrfast_cooldown_counter"),
               intern("_lrfast_last_lr"), intern("_lrfast_lr_buffer"), intern("patience"), intern("mode"),
               intern("threshold"), intern("threshold_mode"), intern("min_lrs"), intern("factor"), intern("eps"),
               intern("cooldown"), intern("clone"), intern("fill_")};
  m.add_object("plateau_host_step", py::reinterpret_steal<py::object>(
                                         PyCFunction_NewEx(&plateau_host_step_def, nullptr, m.attr("__name__").ptr())));
  m.add_object("step_groups",
               py::reinterpret_steal<py::object>(PyCFunction_NewEx(&step_groups_def, nullptr, m.attr("__name__").ptr())));
  m.attr("STEP_NEEDS_COEFFICIENTS") = kNeedsCoefficients;
  m.attr("STEP_NOT_FLOAT") = kNotFloat;
  auto* type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&fast_step_spec));
  if (type == nullptr) throw py::error_already_set();
  g_fast_step_type = type;  // the module keeps it alive
  m.add_object("FastStep", py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(type)));
  auto* record_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&group_record_spec));
  if (record_type == nullptr) throw py::error_already_set();
  g_group_record_type = record_type;  // the module keeps it alive
  m.add_object("GroupRecord", py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(record_type)));
  m.def("bind_runtime", &bind_runtime, py::arg("runtime"),
        "Where FastStep finds the scheduler runtime's slots (lrfast.lr_scheduler._base._Runtime).");
  m.def("make_fast_step", &make_fast_step, py::arg("program"), py::arg("n"), py::arg("lr"), py::arg("momentum"),
        py::arg("on"), py::arg("watched"), py::arg("group_keys"), py::arg("group_items"), py::arg("limit_name"),
        py::arg("absolute"), py::arg("counting"), py::arg("callables"), py::arg("tensors"), py::arg("bump"),
        py::arg("pure_check") = py::none(),
        "A FastStep for one scheduler program (NOTE [fast step] in lrfast/lr_scheduler/_base.py). lr and momentum: "
        "(descriptors, table, row_of or None, key, tuple_slot); on: the program's on-program flags; pure_check: "
        "for LambdaLR / MultiplicativeLR, the check of NOTE [pure lambdas] (lrfast/lr_scheduler/_pure.py).");
}

}  // namespace lrfast::host
