# Builds and runs the consumer project in one of four modes (see project/CMakeLists.txt).
# Called by ctest with -DSOURCE_DIR, -DMODE and -DWORK_DIR.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

set(consumer_args -DLEASEQ_MODE=${MODE} -DLEASEQ_SOURCE_DIR=${SOURCE_DIR})
if(MODE STREQUAL "find_package")
  run_step(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/leaseq-build
           -DLEASEQ_BUILD_TESTS=OFF -DLEASEQ_BUILD_EXAMPLES=OFF -DLEASEQ_INSTALL=ON)
  run_step(${CMAKE_COMMAND} --install ${WORK_DIR}/leaseq-build --prefix ${WORK_DIR}/prefix)
  list(APPEND consumer_args -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
elseif(MODE STREQUAL "build_tree")
  # find_package straight from a configured (never installed) build directory.
  run_step(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/leaseq-build
           -DLEASEQ_BUILD_TESTS=OFF -DLEASEQ_BUILD_EXAMPLES=OFF -DLEASEQ_INSTALL=ON)
  list(APPEND consumer_args -Dleaseq_DIR=${WORK_DIR}/leaseq-build)
endif()
run_step(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/project -B ${WORK_DIR}/build ${consumer_args})
run_step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run_step(${WORK_DIR}/build/consumer ${WORK_DIR}/home)
message(STATUS "consumer (${MODE}) built and ran")
