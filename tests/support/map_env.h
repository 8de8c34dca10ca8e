// Test helper: an aws::EnvLookup over a fixed map, so a test states exactly which environment
// variables the code under test sees (nothing from the real process environment leaks in).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "aws/env.h"

namespace xrayd::testing {

inline aws::EnvLookup MapEnv(std::map<std::string, std::string> m) {
  return [m = std::move(m)](std::string_view k) -> std::optional<std::string> {
    auto it = m.find(std::string(k));
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace xrayd::testing
