// lrfast/schedule.h -- closed-form learning-rate schedules, float64, host and device.
//
// A schedule is a pure function of the step t >= 0. It is stored as a packed
// descriptor: a flat array of kDescriptorSize doubles (see NOTE [descriptor layout]),
// plus an optional shared table of doubles (milestones, baked values) that
// segments reference by offset. The same code runs in host C++, in CUDA kernels
// and (through lrfast/_numba/schedule.py, a line-by-line twin) in Numba.
//
// No torch, no allocation, no recursion, no exceptions: evaluating a malformed
// descriptor yields NaN; validate_descriptor() is the host-side check that the
// bindings run before any evaluation.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define LRFAST_HD __host__ __device__ __forceinline__
#else
#define LRFAST_HD inline
#endif

// The descriptor layout this header reads. An out-of-tree kernel that stores descriptors
// itself can pin it: static_assert(LRFAST_LAYOUT_VERSION == 1, "...") (docs/extending.md).
#define LRFAST_LAYOUT_VERSION 1

namespace lrfast {

// NOTE [descriptor layout]
// Version 1. Everything is a float64 so that one buffer serves C++, CUDA, NumPy,
// Numba and torch alike (integers are exact up to 2**53, far past any step count).
//
//   header  [0] layout version (== kLayoutVersion)
//           [1] number of segments n (0 <= n <= kMaxSegments)
//           [2] scale: the result is multiplied by it (a param group's base LR, say)
//           [3] floor: a lower bound, lr = max(floor, ...); 0 means none (a schedule that goes
//               negative is not clamped at 0). ReduceLROnPlateau's min_lr in a composition.
//   segment s at kHeaderSize + s * kSegmentSize:
//           [0] kind (enum Kind)
//           [1] track: segments of one track form a join; tracks multiply (chain)
//           [2] start step: the segment is active from here until the next segment of
//               its track starts, and is evaluated at the local step u = t - start
//           [3 .. 3 + kSegmentParams) kind-specific parameters, listed at each kind
//
// Segments are sorted by (track, start); the first segment of each track starts at 0.
//   lr(t) = max(floor, scale * prod_k  value(active segment of track k, t - its start))
// (the max only when floor != 0). Additions within version 1, which leave every older
// descriptor's value unchanged: the floor in [3] (formerly reserved, 0) and kind kPlateau.
//
// A kPlateau segment reads a *live* table entry: ReduceLROnPlateau's kernel rewrites it on
// the device as it decides (NOTE [plateau state] in plateau.h). A consumer that evaluates
// such a descriptor must read the table the scheduler updates, not a copy taken earlier.
constexpr int kLayoutVersion = LRFAST_LAYOUT_VERSION;
constexpr int kHeaderSize = 4;
constexpr int kMaxSegments = 8;
constexpr int kSegmentParams = 13;
constexpr int kSegmentSize = 3 + kSegmentParams;
constexpr int kDescriptorSize = kHeaderSize + kMaxSegments * kSegmentSize;

namespace slot {
constexpr int kVersion = 0, kNumSegments = 1, kScale = 2, kFloor = 3;
constexpr int kKind = 0, kTrack = 1, kStart = 2, kParams = 3;
}  // namespace slot

static_assert(kSegmentSize == 16, "descriptor layout v1: 16 doubles per segment");
static_assert(kDescriptorSize == 132, "descriptor layout v1: 132 doubles per descriptor");

// The kinds of segment; each kind's parameters p[i] are named in namespace param below.
enum Kind : int {
  kConstant = 0,      // value                                  -> value
  kStep = 1,          // init * gamma^floor(u / step_size)
  kMultiStep = 2,     // init * gamma^#(milestones <= u)        (count milestones in the table)
  kExponential = 3,   // init * rate^(u / steps)
  kLinear = 4,        // start + (end - start) * min(u, steps) / steps
  kPolynomial = 5,    // end + (init - end) * (1 - min(u, steps) / steps)^power
  kCosine = 6,        // end + (init - end) * ((1 + cos(pi * v / steps)) / 2)^exponent,
                      //   v = u (periodic != 0, torch's form) or min(u, steps)
  kWarmRestarts = 7,  // cosine from init to end over the current period (t0, then t0 * t_mult^i)
  kCyclic = 8,        // torch's CyclicLR (mode kCyclicTable: table[i] = scale_fn(first + i),
                      //   first = 1 per cycle, 0 per iteration)
  kOneCycle = 9,      // phase i anneals phase_values[i] -> phase_values[i + 1] until step phase_ends[i]
  kInverseSqrt = 10,  // init / sqrt((u + timescale) / timescale)
  kSqrtDecay = 11,    // end + (init - end) * (1 - sqrt(min(u, steps) / steps))
  kTable = 12,        // table[table_offset + clamp(floor(u), 0, count - 1)]
  kPiecewise = 13,    // table[table_offset + count + #(table[table_offset, table_offset + count) <= u)]
                      //   (count sorted boundaries, then count + 1 values)
  kPlateau = 14,      // table[table_offset], a value written at run time
                      //   (ReduceLROnPlateau's LR or factor: NOTE [plateau state])
  kNumKinds = 15,
};

enum CyclicMode : int { kTriangular = 0, kTriangular2 = 1, kExpRange = 2, kCyclicTable = 3 };

// NOTE [segment parameters]
// The parameters of each kind by name: p[param::cosine::kSteps] is a cosine's length. This is
// the one C++ place that orders them; the bindings export the names (lrfast._C.layout()
// ["params"]) and lrfast/_descriptor.py builds every segment by name from them, so Python
// never writes the order down. kNumParams: the parameters a kind uses (<= kSegmentParams).
// table_offset is rebased when descriptors are packed together (it indexes the shared table).
namespace param {
namespace constant { constexpr int kValue = 0, kNumParams = 1; }
namespace step { constexpr int kInit = 0, kGamma = 1, kStepSize = 2, kNumParams = 3; }
namespace multistep { constexpr int kInit = 0, kGamma = 1, kTableOffset = 2, kCount = 3, kNumParams = 4; }
namespace exponential { constexpr int kInit = 0, kRate = 1, kSteps = 2, kNumParams = 3; }
namespace linear { constexpr int kStart = 0, kEnd = 1, kSteps = 2, kNumParams = 3; }
namespace polynomial { constexpr int kInit = 0, kEnd = 1, kSteps = 2, kPower = 3, kNumParams = 4; }
namespace cosine { constexpr int kInit = 0, kEnd = 1, kSteps = 2, kPeriodic = 3, kExponent = 4, kNumParams = 5; }
namespace warm_restarts { constexpr int kInit = 0, kEnd = 1, kT0 = 2, kTMult = 3, kNumParams = 4; }
namespace cyclic {
// mode: enum CyclicMode; per_iteration != 0: the scale's argument counts steps, else cycles
constexpr int kBase = 0, kPeak = 1, kTotalSize = 2, kStepRatio = 3, kMode = 4, kGamma = 5, kPerIteration = 6,
              kTableOffset = 7, kCount = 8, kNumParams = 9;
}  // namespace cyclic
namespace one_cycle {
// anneal_linear != 0: linear annealing, else cosine; kMaxPhases phase ends, then kMaxPhases + 1 values
constexpr int kMaxPhases = 3;
constexpr int kNumPhases = 0, kAnnealLinear = 1, kPhaseEnds = 2, kPhaseValues = kPhaseEnds + kMaxPhases,
              kNumParams = kPhaseValues + kMaxPhases + 1;
}  // namespace one_cycle
namespace inverse_sqrt { constexpr int kInit = 0, kTimescale = 1, kNumParams = 2; }
namespace sqrt_decay { constexpr int kInit = 0, kEnd = 1, kSteps = 2, kNumParams = 3; }
namespace table { constexpr int kTableOffset = 0, kCount = 1, kNumParams = 2; }
namespace piecewise { constexpr int kTableOffset = 0, kCount = 1, kNumParams = 2; }
namespace plateau { constexpr int kTableOffset = 0, kNumParams = 1; }
static_assert(cyclic::kNumParams <= kSegmentParams && one_cycle::kNumParams <= kSegmentParams,
              "every kind's parameters fit in a segment");
}  // namespace param

constexpr double kPi = 3.14159265358979323846;

namespace detail {

LRFAST_HD double quiet_nan() { return static_cast<double>(NAN); }

// Number of entries of the sorted run table[0, count) that are <= u (bisect_right).
LRFAST_HD int64_t count_at_most(const double* table, int64_t count, double u) {
  int64_t lo = 0, hi = count;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (table[mid] <= u) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// clamp(floor(x), 0, count - 1), clamped as a double: casting a step past 2**63 to an
// integer is undefined (x86 gives INT64_MIN, which would clamp to the first entry).
LRFAST_HD int64_t clamped_index(double x, int64_t count) {
  const double f = floor(x);
  if (!(f > 0.0)) return 0;
  if (f >= static_cast<double>(count - 1)) return count - 1;
  return static_cast<int64_t>(f);
}

// to + (from - to) * w, torch's closed form of a cosine segment, but exactly `from` where
// w == 1: there torch's recursion (CosineAnnealingLR, SWALR) keeps the LR it was given,
// and to + (from - to) loses it when |to| >> |from| (eta_min=1e30 would give 0.0).
// OneCycleLR and CosineAnnealingWarmRestarts evaluate torch's formula at every step, so
// they keep it (and its rounding) there too.
LRFAST_HD double anneal(double from, double to, double w) {
  return w == 1.0 ? from : to + (from - to) * w;
}


// torch.optim.lr_scheduler.CyclicLR.get_lr, in closed form.
LRFAST_HD double cyclic(const double* p, const double* table, double u) {
  using namespace param::cyclic;
  const double base = p[kBase], peak = p[kPeak], total_size = p[kTotalSize], step_ratio = p[kStepRatio];
  const int mode = static_cast<int>(p[kMode]);
  const double gamma = p[kGamma];
  const bool per_iteration = p[kPerIteration] != 0.0;
  const double cycle = floor(1.0 + u / total_size);
  const double x = 1.0 + u / total_size - cycle;
  const double scale_factor = x <= step_ratio ? x / step_ratio : (x - 1.0) / (step_ratio - 1.0);
  const double scale_arg = per_iteration ? u : cycle;
  double scale;
  switch (mode) {
    case kTriangular: scale = 1.0; break;
    case kTriangular2: scale = 1.0 / pow(2.0, scale_arg - 1.0); break;
    case kExpRange: scale = pow(gamma, scale_arg); break;
    case kCyclicTable: {
      // torch counts cycles from 1 and iterations from 0; the table starts at the first.
      const int64_t i = clamped_index(scale_arg - (per_iteration ? 0.0 : 1.0), static_cast<int64_t>(p[kCount]));
      scale = table[static_cast<int64_t>(p[kTableOffset]) + i];
      break;
    }
    default: return quiet_nan();
  }
  return base + (peak - base) * scale_factor * scale;
}

// torch.optim.lr_scheduler.OneCycleLR.get_lr: phase i runs from e(i-1) (0 for the
// first) to e(i); a step past the last phase end stays in the last phase, clamped
// at its end so the schedule holds its final value afterwards.
LRFAST_HD double one_cycle(const double* p, double u) {
  using namespace param::one_cycle;
  const int n_phases = static_cast<int>(p[kNumPhases]);
  const bool linear = p[kAnnealLinear] != 0.0;
  if (n_phases < 1 || n_phases > kMaxPhases) return quiet_nan();
  double phase_start = 0.0;
  for (int i = 0; i < n_phases; ++i) {
    const double phase_end = p[kPhaseEnds + i];
    if (u <= phase_end || i == n_phases - 1) {
      // torch raises past total_steps; the last phase extends one step past its
      // end (step == total_steps is legal there), then holds.
      const double v = u > phase_end + 1.0 ? phase_end + 1.0 : u;
      const double pct = (v - phase_start) / (phase_end - phase_start);
      const double from = p[kPhaseValues + i], to = p[kPhaseValues + i + 1];
      return linear ? (to - from) * pct + from : to + (from - to) / 2.0 * (cos(kPi * pct) + 1.0);
    }
    phase_start = phase_end;
  }
  return quiet_nan();
}

// CosineAnnealingWarmRestarts: the period holding u, found exactly (the log
// estimate is corrected by integer comparisons, so restarts land on the right step).
LRFAST_HD double warm_restarts(const double* p, double u) {
  using namespace param::warm_restarts;
  const double init = p[kInit], end = p[kEnd], t0 = p[kT0], t_mult = p[kTMult];
  double t_cur, t_i;
  if (u < t0) {
    t_cur = u;
    t_i = t0;
  } else if (t_mult == 1.0) {
    t_cur = fmod(u, t0);
    t_i = t0;
  } else {
    // period n starts at t0 * (t_mult^n - 1) / (t_mult - 1)
    double n = floor(log(u / t0 * (t_mult - 1.0) + 1.0) / log(t_mult));
    if (n < 0.0) n = 0.0;
    for (int fix = 0; fix < 4; ++fix) {
      const double start_n = t0 * (pow(t_mult, n) - 1.0) / (t_mult - 1.0);
      const double start_next = t0 * (pow(t_mult, n + 1.0) - 1.0) / (t_mult - 1.0);
      if (u < start_n && n > 0.0) n -= 1.0;
      else if (u >= start_next) n += 1.0;
      else break;
    }
    t_cur = u - t0 * (pow(t_mult, n) - 1.0) / (t_mult - 1.0);
    t_i = t0 * pow(t_mult, n);
  }
  return end + (init - end) * (1.0 + cos(kPi * t_cur / t_i)) / 2.0;  // torch's, even at T_cur = 0
}

}  // namespace detail

// Value of one segment at local step u >= 0.
LRFAST_HD double segment_value(const double* segment, const double* table, double u) {
  const double* p = segment + slot::kParams;
  namespace pm = param;
  switch (static_cast<int>(segment[slot::kKind])) {
    case kConstant:
      return p[pm::constant::kValue];
    case kStep: {
      using namespace pm::step;
      return p[kInit] * pow(p[kGamma], floor(u / p[kStepSize]));
    }
    case kMultiStep: {
      using namespace pm::multistep;
      const int64_t passed = detail::count_at_most(table + static_cast<int64_t>(p[kTableOffset]),
                                                   static_cast<int64_t>(p[kCount]), u);
      return p[kInit] * pow(p[kGamma], static_cast<double>(passed));
    }
    case kExponential: {
      using namespace pm::exponential;
      return p[kInit] * pow(p[kRate], u / p[kSteps]);
    }
    case kLinear: {
      using namespace pm::linear;
      const double v = u < p[kSteps] ? u : p[kSteps];
      return p[kSteps] > 0.0 ? p[kStart] + (p[kEnd] - p[kStart]) * v / p[kSteps] : p[kEnd];
    }
    case kPolynomial: {
      using namespace pm::polynomial;
      const double v = u < p[kSteps] ? u : p[kSteps];
      return p[kEnd] + (p[kInit] - p[kEnd]) * pow(1.0 - v / p[kSteps], p[kPower]);
    }
    case kCosine: {
      using namespace pm::cosine;
      const double v = (p[kPeriodic] != 0.0 || u < p[kSteps]) ? u : p[kSteps];
      const double w = (1.0 + cos(kPi * v / p[kSteps])) / 2.0;
      return detail::anneal(p[kInit], p[kEnd], p[kExponent] == 1.0 ? w : pow(w, p[kExponent]));
    }
    case kWarmRestarts:
      return detail::warm_restarts(p, u);
    case kCyclic:
      return detail::cyclic(p, table, u);
    case kOneCycle:
      return detail::one_cycle(p, u);
    case kInverseSqrt: {
      using namespace pm::inverse_sqrt;
      return p[kInit] * (1.0 / sqrt((u + p[kTimescale]) / p[kTimescale]));
    }
    case kSqrtDecay: {
      using namespace pm::sqrt_decay;
      const double v = u < p[kSteps] ? u : p[kSteps];
      return p[kEnd] + (p[kInit] - p[kEnd]) * (1.0 - sqrt(v / p[kSteps]));
    }
    case kTable: {
      using namespace pm::table;
      return table[static_cast<int64_t>(p[kTableOffset]) + detail::clamped_index(u, static_cast<int64_t>(p[kCount]))];
    }
    case kPiecewise: {
      using namespace pm::piecewise;
      const double* boundaries = table + static_cast<int64_t>(p[kTableOffset]);
      const int64_t count = static_cast<int64_t>(p[kCount]);
      return boundaries[count + detail::count_at_most(boundaries, count, u)];
    }
    case kPlateau:
      return table[static_cast<int64_t>(p[pm::plateau::kTableOffset])];
    default:
      return detail::quiet_nan();
  }
}

// max(floor, value), where a floor of 0 means none; NaN stays NaN.
LRFAST_HD double apply_floor(double floor, double value) {
  return (floor != 0.0 && value < floor) ? floor : value;
}

// scale * prod_k value(track k) at step t, before the floor (ReduceLROnPlateau compares the
// value before and after a reduction: plateau.h).
LRFAST_HD double evaluate_product(const double* descriptor, const double* table, double t) {
  if (static_cast<int>(descriptor[slot::kVersion]) != kLayoutVersion) return detail::quiet_nan();
  const int n = static_cast<int>(descriptor[slot::kNumSegments]);
  if (n < 0 || n > kMaxSegments) return detail::quiet_nan();
  double result = descriptor[slot::kScale];
  const double* segments = descriptor + kHeaderSize;
  for (int s = 0; s < n; ++s) {
    const double* seg = segments + s * kSegmentSize;
    const double* next = seg + kSegmentSize;
    // Only the last segment of a track that has started is evaluated.
    const bool superseded = s + 1 < n && next[slot::kTrack] == seg[slot::kTrack] &&
                            t >= next[slot::kStart];
    const bool started = t >= seg[slot::kStart];
    if (started && !superseded) result *= segment_value(seg, table, t - seg[slot::kStart]);
  }
  return result;
}

// The learning rate of a packed descriptor at step t (t >= 0; fractional t is allowed
// and meaningful for the continuous kinds, e.g. warm restarts stepped by epoch + i/n).
LRFAST_HD double evaluate(const double* descriptor, const double* table, double t) {
  return apply_floor(descriptor[slot::kFloor], evaluate_product(descriptor, table, t));
}

// Host-side check of a descriptor against a table of table_size doubles. Returns
// nullptr when the descriptor is well formed, else a static message.
inline const char* validate_descriptor(const double* d, int64_t table_size) {
  if (d[slot::kVersion] != kLayoutVersion) return "unsupported descriptor layout version";
  const double n_raw = d[slot::kNumSegments];
  if (!(n_raw >= 0.0 && n_raw <= kMaxSegments) || n_raw != floor(n_raw)) return "bad segment count";
  const int n = static_cast<int>(n_raw);
  if (!std::isfinite(d[slot::kFloor])) return "the floor must be finite";
  double prev_track = -1.0, prev_start = 0.0;
  for (int s = 0; s < n; ++s) {
    const double* seg = d + kHeaderSize + s * kSegmentSize;
    const double* p = seg + slot::kParams;
    const double kind = seg[slot::kKind];
    if (!(kind >= 0.0 && kind < kNumKinds) || kind != floor(kind)) return "unknown segment kind";
    const double track = seg[slot::kTrack], start = seg[slot::kStart];
    if (!(track >= 0.0) || track != floor(track)) return "bad track";
    if (track != prev_track) {
      if (track < prev_track) return "segments not sorted by track";
      if (start != 0.0) return "the first segment of a track must start at step 0";
    } else if (!(start > prev_start)) {
      return "segment starts must increase within a track";
    }
    prev_track = track;
    prev_start = start;
    const int k = static_cast<int>(kind);
    namespace pm = param;
    const double phases = p[pm::one_cycle::kNumPhases];
    if (k == kOneCycle && !(phases >= 1.0 && phases <= pm::one_cycle::kMaxPhases)) {
      return "one-cycle needs 1 to 3 phases";
    }
    const double mode = p[pm::cyclic::kMode];
    if (k == kCyclic && !(mode >= kTriangular && mode <= kCyclicTable && mode == floor(mode))) {
      return "unknown cyclic mode";
    }
    // Table references are checked as doubles, before any cast to an integer.
    const bool cyclic_table = k == kCyclic && mode == kCyclicTable;
    double offset = 0.0, count = 0.0, entries = 0.0;
    if (k == kMultiStep) {
      offset = p[pm::multistep::kTableOffset];
      count = p[pm::multistep::kCount];
      entries = count;
    }
    if (k == kTable) {
      offset = p[pm::table::kTableOffset];
      count = p[pm::table::kCount];
      entries = count;
    }
    if (k == kPiecewise) {
      offset = p[pm::piecewise::kTableOffset];
      count = p[pm::piecewise::kCount];
      entries = 2.0 * count + 1.0;
    }
    if (k == kPlateau) {
      offset = p[pm::plateau::kTableOffset];
      entries = 1.0;
    }
    if (cyclic_table) {
      offset = p[pm::cyclic::kTableOffset];
      count = p[pm::cyclic::kCount];
      entries = count;
    }
    if ((k == kTable || cyclic_table) && !(count >= 1.0)) return "a table segment needs at least one value";
    if (!(offset >= 0.0 && count >= 0.0 && offset + entries <= static_cast<double>(table_size)) ||
        offset != floor(offset) || count != floor(count)) {
      return "table reference out of range";
    }
  }
  return nullptr;
}

}  // namespace lrfast
