// How the kernels address device memory: every array a kernel reads or writes is a
// DeviceArray<T> made by device_array(pointer, count, name), with the element count the
// launch gave it, and every access is an index into it (a[i], *a, pack_at, span).
// Under nvcc a DeviceArray is the bare pointer and the count and name compile away; in the
// emulated build (csrc/emu/checked.h) it is checked: an access outside [0, count) makes
// the launch raise, naming the kernel, block, thread, buffer and index (docs/emulator.md).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#if defined(LRFAST_EMU)
#include "checked.h"
#endif

namespace lrfast {
namespace cuda {

// A count the launch does not know (the group table's rows, a schedule table): unchecked
// on the device, bounded by a registered allocation on the emulator.
constexpr std::int64_t kUnknownCount = -1;

#if defined(LRFAST_EMU)
template <typename T>
using DeviceArray = ::lrfast::emu::Checked<T>;

template <typename T>
inline DeviceArray<T> device_array(T* pointer, std::int64_t count, const char* name) {
  return DeviceArray<T>(pointer, count, name);
}

// Elements [i, i + n) as a bare pointer (a descriptor handed to schedule.h's evaluate).
template <typename T>
inline T* span(const DeviceArray<T>& a, std::int64_t i, std::int64_t n) { return a.at(i, n); }

// The vector pack P (N elements of T) starting at element i, as one access.
template <typename P, typename T>
inline P& pack_at(const DeviceArray<T>& a, std::int64_t i) {
  return *reinterpret_cast<P*>(a.at(i, static_cast<std::int64_t>(sizeof(P) / sizeof(T))));
}

template <typename T>
inline T* raw(const DeviceArray<T>& a) { return a.get(); }
#else
template <typename T>
using DeviceArray = T*;

template <typename T>
__device__ __forceinline__ T* device_array(T* pointer, std::int64_t, const char*) { return pointer; }

template <typename T>
__device__ __forceinline__ T* span(T* a, std::int64_t i, std::int64_t) { return a + i; }

template <typename P, typename T>
__device__ __forceinline__ P& pack_at(T* a, std::int64_t i) { return *reinterpret_cast<P*>(a + i); }

template <typename T>
__device__ __forceinline__ T* raw(T* a) { return a; }
#endif

// A device address held as an integer (a table entry, an LR tensor's address).
template <typename T>
__device__ __forceinline__ DeviceArray<T> device_array(std::uintptr_t address, std::int64_t count, const char* name) {
  return device_array(reinterpret_cast<T*>(address), count, name);
}

}  // namespace cuda
}  // namespace lrfast
