# The release build (issue 15): -DXRAYD_STATIC=ON, in its own build directory (build-release):
#
#   cmake -S . -B build-release -G Ninja -DXRAYD_STATIC=ON -DXRAYD_UI=ON && cmake --build build-release --target xrayd
#
# Links statically what Debian 12 ships as archives: OpenSSL (libssl.a, libcrypto.a), libsqlite3.a,
# libyaml-cpp.a, libz.a; fmt and spdlog are compiled in header-only. What stays dynamic, and why
# (docs/ARCHITECTURE.md, "Release build"): glibc (libc, libm; NSS and getaddrinfo want the shared
# one), libsimdjson.so (Debian ships no archive and no source to build one) and therefore libstdc++
# and libgcc_s, which libsimdjson.so itself loads (two copies of libstdc++ in one process would be
# worse than one shared). libcurl is gone from xrayd altogether (http::Client is Boost.Beast).
# Sections are garbage-collected and the binary is stripped at link time. The default build is unchanged.
option(XRAYD_STATIC "Release build: link Debian's static archives, strip, gc-sections" OFF)

if(XRAYD_STATIC)
  # Read by FindOpenSSL and FindZLIB (CMake >= 3.24) in the find_package() calls that follow.
  set(OPENSSL_USE_STATIC_LIBS TRUE)
  set(ZLIB_USE_STATIC_LIBS ON)
  if(NOT CMAKE_BUILD_TYPE OR CMAKE_BUILD_TYPE STREQUAL "RelWithDebInfo")
    set(CMAKE_BUILD_TYPE Release)
  endif()
  add_compile_options(-ffunction-sections -fdata-sections)
endif()

# xrayd_third_party_libraries(<out-var>): the third-party link list of every xrayd library.
function(xrayd_third_party_libraries out)
  set(common Threads::Threads OpenSSL::SSL OpenSSL::Crypto simdjson::simdjson Boost::headers ZLIB::ZLIB
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

# xrayd_release_link(<target>): the release link options for the shipped binary.
function(xrayd_release_link target)
  if(XRAYD_STATIC)
    target_link_options(${target} PRIVATE -Wl,--gc-sections -Wl,-O1 -Wl,--as-needed -s)
  endif()
endfunction()
