# The release build (issue 15): -DXRAYD_STATIC=ON, in its own build directory (build-release):
#
#   cmake -S . -B build-release -G Ninja -DXRAYD_STATIC=ON -DXRAYD_UI=ON && cmake --build build-release --target xrayd
#
# One fully static executable (docs/ARCHITECTURE.md, "Release build"): OpenSSL (libssl.a, libcrypto.a),
# libsqlite3.a, libyaml-cpp.a, libz.a and glibc, libstdc++ and libgcc from their Debian archives; fmt
# and spdlog compiled in header-only; simdjson, which Debian ships only as a shared library, compiled
# here from the source package of the installed libsimdjson-dev (scripts/simdjson_source.sh fetches it
# with apt-get source at configure time; -DXRAYD_SIMDJSON_DIR=DIR names an unpacked copy instead).
# glibc's getaddrinfo needs no shared NSS module for xrayd's lookups: since glibc 2.34 the "files" and
# "dns" sources are part of libc itself, static libc.a included (tests/e2e/test_image.py resolves a
# name through /etc/hosts and a DNS server inside the image's tree). -DXRAYD_STATIC_GLIBC=OFF keeps
# glibc shared (libstdc++ and libgcc still static), for comparison. Sections are garbage-collected and
# the binary is stripped at link time. The default build is unchanged.
option(XRAYD_STATIC "Release build: link Debian's static archives, strip, gc-sections" OFF)
option(XRAYD_STATIC_GLIBC "With XRAYD_STATIC: glibc static too (OFF: only libstdc++/libgcc)" ON)
set(XRAYD_SIMDJSON_DIR "" CACHE PATH
    "With XRAYD_STATIC: a directory with simdjson.cpp and simdjson.h of the installed version (default: fetched)")

if(XRAYD_STATIC)
  # Read by FindOpenSSL and FindZLIB (CMake >= 3.24) in the find_package() calls that follow.
  set(OPENSSL_USE_STATIC_LIBS TRUE)
  set(ZLIB_USE_STATIC_LIBS ON)
  set(Protobuf_USE_STATIC_LIBS ON)  # FindProtobuf (src/otlp/): libprotobuf-lite.a
  # src/store/'s pkg_check_modules(ZSTD ... IMPORTED_TARGET libzstd) and src/pipeline/'s (PIPELINE_ZSTD)
  # find the library they link through these cache entries; set first, they name Debian's libzstd.a.
  # A new pkg_check_modules of libzstd needs its entry here (else the static link fails: "cannot mix
  # -static with dynamic object libzstd.so").
  find_library(xrayd_zstd_archive NAMES libzstd.a REQUIRED NO_CACHE)
  foreach(prefix ZSTD PIPELINE_ZSTD)
    set(pkgcfg_lib_${prefix}_zstd ${xrayd_zstd_archive} CACHE FILEPATH "libzstd.a (cmake/Release.cmake)" FORCE)
  endforeach()
  if(NOT CMAKE_BUILD_TYPE OR CMAKE_BUILD_TYPE STREQUAL "RelWithDebInfo")
    set(CMAKE_BUILD_TYPE Release)
  endif()
  add_compile_options(-ffunction-sections -fdata-sections)
  if(NOT XRAYD_SIMDJSON_DIR)
    execute_process(
      COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/../scripts/simdjson_source.sh ${CMAKE_BINARY_DIR}/simdjson-source
      OUTPUT_VARIABLE simdjson_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE simdjson_rc)
    if(NOT simdjson_rc EQUAL 0)
      message(FATAL_ERROR "XRAYD_STATIC: no simdjson source (see above); or pass -DXRAYD_SIMDJSON_DIR=DIR")
    endif()
    set(XRAYD_SIMDJSON_DIR ${simdjson_dir} CACHE PATH "" FORCE)
  endif()
  if(NOT EXISTS ${XRAYD_SIMDJSON_DIR}/simdjson.cpp)
    message(FATAL_ERROR "XRAYD_SIMDJSON_DIR=${XRAYD_SIMDJSON_DIR} has no simdjson.cpp")
  endif()
endif()

# The static libsimdjson of the release build: Debian's own amalgamation of the installed version, built
# as Debian's package declares it (SIMDJSON_THREADS_ENABLED, as simdjson::simdjson's interface says).
function(xrayd_static_simdjson)
  if(TARGET xrayd_simdjson)
    return()
  endif()
  add_library(xrayd_simdjson STATIC ${XRAYD_SIMDJSON_DIR}/simdjson.cpp)
  target_compile_definitions(xrayd_simdjson PUBLIC SIMDJSON_THREADS_ENABLED=1)
  # No include directory: xrayd's code includes /usr/include/simdjson.h, which scripts/simdjson_source.sh
  # checked to be this source's header byte for byte (and simdjson.cpp finds its own beside it).
  target_compile_options(xrayd_simdjson PRIVATE -w)
  target_link_libraries(xrayd_simdjson PUBLIC Threads::Threads)
endfunction()

# xrayd_third_party_libraries(<out-var>): the third-party link list of every xrayd library.
function(xrayd_third_party_libraries out)
  set(simdjson simdjson::simdjson)
  if(XRAYD_STATIC)
    xrayd_static_simdjson()
    set(simdjson xrayd_simdjson)
  endif()
  set(common Threads::Threads OpenSSL::SSL OpenSSL::Crypto ${simdjson} Boost::headers ZLIB::ZLIB
             nlohmann_json::nlohmann_json)
  if(NOT XRAYD_STATIC)
    set(${out} ${common} yaml-cpp spdlog::spdlog fmt::fmt SQLite::SQLite3 PARENT_SCOPE)
    return()
  endif()
  foreach(lib yaml-cpp sqlite3)
    find_library(XRAYD_STATIC_${lib} NAMES lib${lib}.a REQUIRED)
  endforeach()
  get_target_property(yaml_includes yaml-cpp INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT TARGET xrayd_static_archives)
    add_library(xrayd_static_archives INTERFACE)
    # spdlog and fmt header-only: no SPDLOG_COMPILED_LIB, FMT_HEADER_ONLY (Debian ships no archives).
    target_compile_definitions(xrayd_static_archives INTERFACE SPDLOG_FMT_EXTERNAL FMT_HEADER_ONLY=1)
    target_include_directories(xrayd_static_archives INTERFACE ${yaml_includes} ${SQLite3_INCLUDE_DIRS})
    target_link_libraries(xrayd_static_archives INTERFACE
      ${XRAYD_STATIC_yaml-cpp} ${XRAYD_STATIC_sqlite3} ${CMAKE_DL_LIBS} m)
  endif()
  set(${out} ${common} xrayd_static_archives PARENT_SCOPE)
endfunction()

# xrayd_release_cold_code(): the release build compiles the modules off every hot path for size (-Os):
# command line, serve's API (query paths: api_bench.py measures them), web UI, OTLP, load-balancer logs,
# sampling proxy, telemetry, wiring. Hot stays -O3: ingest, segment, buffer, pipeline, both exporters,
# the HTTP client and server, SigV4, the store and common. Call after add_subdirectory(src).
set(XRAYD_COLD_MODULES "cli;api;ui;otlp;lb;proxy;telemetry;daemon" CACHE STRING
    "With XRAYD_STATIC: the src/ modules compiled with -Os (bench/api_bench.py compares api/ at -O3)")
function(xrayd_release_cold_code)
  if(NOT XRAYD_STATIC)
    return()
  endif()
  foreach(module ${XRAYD_COLD_MODULES})
    if(TARGET xrayd_${module})
      target_compile_options(xrayd_${module} PRIVATE -Os)
    endif()
  endforeach()
endfunction()

# xrayd_release_link(<target>): the release link options for the shipped binary (gold for its safe
# identical-code folding: the same template code instantiated for several types is kept once).
function(xrayd_release_link target)
  if(XRAYD_STATIC)
    target_compile_options(${target} PRIVATE -Os)  # main.cc: argument handling, healthcheck
    target_link_options(${target} PRIVATE -Wl,--gc-sections -Wl,-O1 -Wl,--as-needed -s
                        -fuse-ld=gold -Wl,--icf=safe)
    if(XRAYD_STATIC_GLIBC)
      target_link_options(${target} PRIVATE -static)
    else()
      target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc)
    endif()
  endif()
endfunction()

# xrayd_link_map(<target>): every build writes <binary>.map, the linker's record of the archive members
# and objects it took. scripts/licence_notices.py derives the binary's third-party notices from it (and
# from the headers those objects include), so the image and the .deb name every library actually linked.
function(xrayd_link_map target)
  target_link_options(${target} PRIVATE "LINKER:-Map=$<TARGET_FILE:${target}>.map")
endfunction()
