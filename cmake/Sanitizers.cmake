# Sanitizer, fuzzing and clang-analysis switches for the whole tree (off by default; .ci/run turns
# them on through scripts/ci-sanitizers.sh). Included once from the root CMakeLists.txt, before any
# target, so xrayd, its tests, the SDK and hello are all instrumented alike.
#
#   -DXRAYD_SANITIZE=address,undefined   ASan + UBSan (any -fsanitize= list; "thread" for TSan)
#   -DXRAYD_FUZZ=ON                      clang only: coverage instrumentation for libFuzzer
#                                        everywhere (fuzz/ links libFuzzer's main into its targets)
#   clang builds always warn with -Wthread-safety (src/common/thread_annotations.h); the layer's
#   XRAYD_THREAD_SAFETY option, where present, makes those warnings errors.
set(XRAYD_SANITIZE "" CACHE STRING "Sanitizers for every target, as -fsanitize= takes them (empty: none)")
option(XRAYD_FUZZ "Build libFuzzer targets (needs clang)" OFF)

if(XRAYD_SANITIZE)
  # UB stops the test that hit it instead of printing and carrying on; frame pointers give whole stacks.
  add_compile_options(-fsanitize=${XRAYD_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${XRAYD_SANITIZE})
  message(STATUS "xrayd: sanitizers ${XRAYD_SANITIZE}")
endif()

if(XRAYD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "XRAYD_FUZZ=ON needs clang (cmake -DCMAKE_CXX_COMPILER=clang++)")
  endif()
  # Coverage feedback from the code under test, not only from the harness.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  add_compile_options(-Wthread-safety)
endif()
