// Bounds-checked device memory for the emulated kernels (docs/emulator.md, "Out-of-bounds
// accesses"). In the emulated build every array a kernel reads or writes is a Checked<T>:
// a pointer with the number of elements the launch gave it (and, for an address inside an
// allocation registered with register_allocation, no more than that allocation holds).
// An access outside it goes to a scratch buffer instead of memory, and the launch raises
// RuntimeError naming the kernel, the block, the thread, the buffer and the index when the
// grid ends -- every time, whatever the heap around the buffer holds. Under nvcc the same
// kernel code sees bare pointers (csrc/cuda/memory.cuh).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lrfast {
namespace emu {

// Records the first out-of-bounds access of the running grid: elements [index, index + span)
// of `buffer`, which holds `count` elements (-1: a null pointer); `from_allocation`: the
// count is a registered allocation's, smaller than the launch's.
void report_out_of_bounds(const char* buffer, std::int64_t index, std::int64_t span, std::int64_t count,
                          bool from_allocation);

// Elements of `element_size` bytes from `address` to the end of the registered allocation
// holding it, or -1 when no registered allocation holds it.
std::int64_t registered_extent(std::uintptr_t address, std::size_t element_size);

// Allocations whose ends bound every Checked array built inside them (tests: a launch told
// of more elements than its buffer holds). Serialised with the launches.
void register_allocation(std::uintptr_t address, std::uint64_t bytes);
void clear_allocations();
std::uint64_t allocation_count();

// Where a refused access reads and writes: 64 aligned bytes, room for a vector pack.
void* scratch();

template <typename T>
class Checked {
 public:
  Checked() = default;
  Checked(std::nullptr_t) {}  // NOLINT: as a null pointer converts
  // `count` < 0: unknown to the launch (only a registered allocation bounds it).
  Checked(T* base, std::int64_t count, const char* name) : base_(base), count_(count), name_(name) {
    if (base_ == nullptr) return;
    const std::int64_t extent = registered_extent(reinterpret_cast<std::uintptr_t>(base_), sizeof(T));
    if (extent >= 0 && (count_ < 0 || extent < count_)) {
      count_ = extent;
      from_allocation_ = true;
    }
  }

  // Elements [i, i + n) as one access; a pointer to them, or to scratch memory (reported).
  T* at(std::int64_t i, std::int64_t n) const {
    const std::int64_t k = offset_ + i;
    if (base_ == nullptr || k < 0 || (count_ >= 0 && k + n > count_)) {
      report_out_of_bounds(name_, k, n, base_ == nullptr ? -1 : count_, from_allocation_);
      return static_cast<T*>(scratch());
    }
    return base_ + k;
  }
  T& operator[](std::int64_t i) const { return *at(i, 1); }
  T& operator*() const { return *at(0, 1); }
  Checked operator+(std::int64_t d) const {
    Checked c = *this;
    c.offset_ += d;
    return c;
  }
  explicit operator bool() const { return base_ != nullptr; }
  T* get() const { return base_ == nullptr ? nullptr : base_ + offset_; }

 private:
  T* base_ = nullptr;
  std::int64_t offset_ = 0;
  std::int64_t count_ = -1;
  const char* name_ = "?";
  bool from_allocation_ = false;
};

}  // namespace emu
}  // namespace lrfast
