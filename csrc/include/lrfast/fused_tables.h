// lrfast/fused_tables.h -- the device tables of one fused-optimizer bucket.
//
// NOTE [persistent pointer table] A bucket is the set of tensors of one optimizer that
// share a device and a dtype. Its tables live in device memory and are re-uploaded
// only when something they hold changed (a param group edited, a grad reallocated by
// zero_grad(set_to_none=True), state loaded); lrfast/_backend/cuda_optim.py builds
// them with the same slot numbers as here. All entries are int64 or float64 so the
// host builds them as plain NumPy arrays.
#pragma once

#include <cstdint>

namespace lrfast {
namespace fused {

// tensors: int64 [n_tensors, kTensorSlots]
namespace tensor_slot {
constexpr int kParam = 0;      // address of the parameter data
constexpr int kGrad = 1;       // address of the gradient data
constexpr int kState0 = 2;     // exp_avg (Adam) / momentum_buffer (SGD)
constexpr int kState1 = 3;     // exp_avg_sq (Adam)
constexpr int kState2 = 4;     // max_exp_avg_sq (Adam with amsgrad)
constexpr int kStep = 5;       // address of the per-tensor float32 step count (Adam), or 0
constexpr int kNumel = 6;      // number of elements
constexpr int kGroup = 7;      // param-group index
constexpr int kFlags = 8;      // bit 0: SGD momentum buffer starts from the gradient this step
constexpr int kChunkStart = 9; // index of this tensor's first chunk (prefix sum)
}  // namespace tensor_slot
constexpr int kTensorSlots = 10;
constexpr std::int64_t kFirstStepFlag = 1;

// groups: float64 [n_groups, kGroupSlots]
namespace group_slot {
constexpr int kLr = 0;           // the LR when it is a plain value
constexpr int kBeta1 = 1;        // beta1 (Adam) / momentum (SGD), when not scheduled
constexpr int kBeta2 = 2;
constexpr int kEps = 3;
constexpr int kWeightDecay = 4;
constexpr int kDampening = 5;
constexpr int kLrSource = 6;     // enum LrSource
constexpr int kBeta1Scheduled = 7;  // 1: beta1 / momentum from the momentum descriptor
constexpr int kNesterov = 8;
constexpr int kMaximize = 9;
constexpr int kAmsgrad = 10;
constexpr int kLrTensorDtype = 11;  // ScalarType code of the LR tensor (kLrSource == kLrTensor)
constexpr int kScheduleStep = 12;   // the step the group's schedules are evaluated at (eager launches)
constexpr int kDecoupled = 13;      // Adam: 1 for AdamW's decoupled weight decay
}  // namespace group_slot
constexpr int kGroupSlots = 14;

enum LrSource : int { kLrValue = 0, kLrSchedule = 1, kLrTensor = 2 };
enum Algorithm : int { kSgd = 0, kAdam = 1 };  // Adam covers AdamW (per group: kDecoupled)

// NOTE [schedule step counter] How a launch finds the step its schedules are evaluated at.
// kCounterNone: from the group table (kScheduleStep), nothing else.
// kCounterEager: the same, and the last block stores `counter_next` into *step_counter, so
//   the device counter always holds the step the *next* launch will use.
// kCounterGraph: from *step_counter for every scheduled group, and the last block adds 1
//   (unless the step was skipped on overflow and the launch says so): a launch captured
//   in a CUDA graph then advances its schedule at every replay.
enum CounterMode : int { kCounterNone = 0, kCounterEager = 1, kCounterGraph = 2 };

// Elements per chunk (one block walks one chunk) and threads per block.
constexpr std::int64_t kChunkSize = 65536;
constexpr int kBlockSize = 512;
constexpr int kILP = 4;

}  // namespace fused
}  // namespace lrfast
