// Device discovery and the device guard shared by every launcher.
#include "check.cuh"
#include "cuda_api.h"

#include <string>

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

namespace {

std::string cuda_version_string(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

// The module links cudart statically (CMakeLists.txt), so it needs a driver for its own
// CUDA version whatever torch was built with; say so in words, with both versions.
std::string insufficient_driver_reason() {
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0) {
    return "no NVIDIA driver was found (libcuda could not be loaded)";
  }
  return "the NVIDIA driver supports CUDA " + cuda_version_string(driver) + " but lrfast was built with the CUDA " +
         cuda_version_string(CUDART_VERSION) + " runtime (linked statically), which needs a driver for CUDA " +
         cuda_version_string(CUDART_VERSION) + " or newer: update the driver, or build lrfast with a CUDA toolkit "
         "no newer than " + cuda_version_string(driver);
}

}  // namespace

int device_count(std::string* why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (why) {
      *why = status == cudaErrorInsufficientDriver
                 ? insufficient_driver_reason()
                 : std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    }
    (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  if (count == 0 && why) *why = "the CUDA driver reports no device";
  return count;
}

}  // namespace cuda
}  // namespace lrfast
