// Every CUDA runtime call goes through LRFAST_CUDA_CHECK: a failure becomes a
// std::runtime_error naming the call, which pybind11 raises as RuntimeError.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace lrfast {
namespace cuda {

inline void throw_on_error(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  throw std::runtime_error(std::string("lrfast: CUDA call ") + call + " failed: " +
                           cudaGetErrorName(status) + " (" + cudaGetErrorString(status) +
                           ") at " + file + ":" + std::to_string(line));
}

// Makes `device` current for the lifetime of the guard and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  bool switched_ = false;
};

}  // namespace cuda
}  // namespace lrfast

#define LRFAST_CUDA_CHECK(call) ::lrfast::cuda::throw_on_error((call), #call, __FILE__, __LINE__)
