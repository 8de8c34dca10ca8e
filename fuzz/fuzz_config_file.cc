// Fuzzes the YAML config file reader: any text must give a Config or a clear error, never a crash.
#include <cstdint>
#include <string>

#include "cli/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  xrayd::cli::Config config;
  try {
    (void)xrayd::cli::ApplyConfigFile(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml", config, true);
  } catch (...) {
    __builtin_trap();  // the reader promises errors as values
  }
  return 0;
}
