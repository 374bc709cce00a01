// Emulator shim of <cuda_runtime.h> (docs/emulator.md): the execution-space keywords
// become plain C++, __shared__ variables become function statics (one copy, shared by
// every thread of the block that is running), device memory is host memory, streams
// and devices are accepted and ignored, and the runtime calls the kernels' launchers
// make always succeed.
#pragma once

#include <atomic>
#include <cstdint>

#include "emu.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

// The CUDA runtime version the emulated device reports (and compares with the emulated
// driver's, emu.h: set_driver_version), so that the launchers' driver checks run here too.
#define CUDART_VERSION 13000

enum cudaError { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInsufficientDriver = 35,
                 cudaErrorNoDevice = 100 };
typedef cudaError cudaError_t;
typedef struct CUstream_st* cudaStream_t;

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* count) {
  // As the real runtime: a driver older than the runtime makes every call fail.
  *count = ::lrfast::emu::driver_version() < CUDART_VERSION ? 0 : 1;
  return *count ? cudaSuccess : cudaErrorInsufficientDriver;
}
inline cudaError_t cudaGetDevice(int* device) { *device = 0; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }  // the device index is ignored
inline cudaError_t cudaDriverGetVersion(int* version) { *version = ::lrfast::emu::driver_version(); return cudaSuccess; }
inline cudaError_t cudaRuntimeGetVersion(int* version) { *version = CUDART_VERSION; return cudaSuccess; }

inline void __syncthreads() { ::lrfast::emu::syncthreads(); }
// Threads of a block interleave only at barriers, so every access is already ordered;
// the fence keeps the compiler from moving memory accesses across it.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// Atomics: no other thread runs between a read and a write here, so plain operations
// are atomic; each returns the old value, as on the device.
template <typename T> inline T atomicAdd(T* address, T value) { const T old = *address; *address = old + value; return old; }
template <typename T> inline T atomicSub(T* address, T value) { const T old = *address; *address = old - value; return old; }
template <typename T> inline T atomicExch(T* address, T value) { const T old = *address; *address = value; return old; }
template <typename T> inline T atomicMax(T* address, T value) { const T old = *address; if (value > old) *address = value; return old; }
template <typename T> inline T atomicMin(T* address, T value) { const T old = *address; if (value < old) *address = value; return old; }
template <typename T> inline T atomicCAS(T* address, T compare, T value) {
  const T old = *address;
  if (old == compare) *address = value;
  return old;
}
