# find_package(lrfast CONFIG) for out-of-tree C++/CUDA extensions:
#   cmake -Dlrfast_DIR=$(python -c "import lrfast; print(lrfast.get_cmake_dir())") ...
#   target_link_libraries(my_ext PRIVATE lrfast::headers)
# Provides the header-only target lrfast::headers (schedule.h, optim_math.h, fused_tables.h)
# and LRFAST_INCLUDE_DIR, LRFAST_LAYOUT_VERSION.
set(_lrfast_candidates
  "${CMAKE_CURRENT_LIST_DIR}/../include"            # an installed wheel: lrfast/include
  "${CMAKE_CURRENT_LIST_DIR}/../../csrc/include")   # a source checkout (editable install)
foreach(_dir IN LISTS _lrfast_candidates)
  if(EXISTS "${_dir}/lrfast/schedule.h")
    get_filename_component(LRFAST_INCLUDE_DIR "${_dir}" ABSOLUTE)
    break()
  endif()
endforeach()
if(NOT LRFAST_INCLUDE_DIR)
  set(lrfast_FOUND FALSE)
  set(lrfast_NOT_FOUND_MESSAGE "lrfast/schedule.h not found beside ${CMAKE_CURRENT_LIST_DIR}")
  return()
endif()
file(STRINGS "${LRFAST_INCLUDE_DIR}/lrfast/schedule.h" _lrfast_version_line REGEX "^#define LRFAST_LAYOUT_VERSION ")
string(REGEX REPLACE "^#define LRFAST_LAYOUT_VERSION ([0-9]+).*" "\\1" LRFAST_LAYOUT_VERSION "${_lrfast_version_line}")
if(NOT TARGET lrfast::headers)
  add_library(lrfast::headers INTERFACE IMPORTED)
  set_target_properties(lrfast::headers PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${LRFAST_INCLUDE_DIR}")
endif()
set(lrfast_FOUND TRUE)
