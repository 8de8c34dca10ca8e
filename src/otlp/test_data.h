// Test helpers shared by the otlp tests: the real SDK segments in tests/data/otlp.
#pragma once

#include <fstream>
#include <string>
#include <vector>

namespace xrayd::otlp::testing {

// Every line of tests/data/otlp/<name> (one segment document per line).
inline std::vector<std::string> LoadSegments(const std::string& name) {
  std::ifstream in(std::string(XRAYD_SOURCE_DIR) + "/tests/data/otlp/" + name);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

inline std::vector<std::string> AllSdkSegments() {
  std::vector<std::string> all = LoadSegments("node_sdk_segments.jsonl");
  for (auto& d : LoadSegments("python_sdk_segments.jsonl")) all.push_back(d);
  return all;
}

}  // namespace xrayd::otlp::testing
