// Device discovery and the device guard shared by every launcher.
#include "check.cuh"
#include "cuda_api.h"

namespace lrfast {
namespace cuda {

DeviceGuard::DeviceGuard(int device) {
  LRFAST_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) {
    LRFAST_CUDA_CHECK(cudaSetDevice(device));
    switched_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  // A destructor must not throw; restoring the device the caller had can only fail
  // if the context is already broken, which the next checked call will report.
  if (switched_) (void)cudaSetDevice(previous_);
}

int device_count(std::string* why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (why) *why = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  if (count == 0 && why) *why = "the CUDA driver reports no device";
  return count;
}

}  // namespace cuda
}  // namespace lrfast
