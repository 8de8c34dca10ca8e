#include "xray/trace_header.h"

#include <cctype>

#include "xray/ids.h"

namespace xray {
namespace {

constexpr size_t kMaxHeaderBytes = 2048;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// ASCII only, and not std::tolower: header keys and ids are ASCII, and the locale lookup per character
// was a tenth of a traced request's cost.
char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

}  // namespace

TraceHeader TraceHeader::Parse(std::string_view value) {
  TraceHeader h;
  if (value.size() > kMaxHeaderBytes) value = value.substr(0, kMaxHeaderBytes);
  while (!value.empty()) {
    size_t semi = value.find(';');
    std::string_view field = value.substr(0, semi);
    value = semi == std::string_view::npos ? std::string_view() : value.substr(semi + 1);
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) continue;  // "garbage" or empty field: skip it
    std::string_view key = Trim(field.substr(0, eq));
    std::string_view val = Trim(field.substr(eq + 1));
    if (key.empty()) continue;
    if (EqualsIgnoreCase(key, "Root")) {
      if (IsValidTraceId(val)) h.root = Lower(val);
    } else if (EqualsIgnoreCase(key, "Parent")) {
      if (IsValidSegmentId(val)) h.parent = Lower(val);
    } else if (EqualsIgnoreCase(key, "Sampled")) {
      if (val == "1") h.sampled = SampledFlag::kSampled;
      else if (val == "0") h.sampled = SampledFlag::kNotSampled;
      else if (val == "?") h.sampled = SampledFlag::kRequested;
    } else if (EqualsIgnoreCase(key, "Lineage")) {
      h.lineage = std::string(val);
    } else if (h.extra.size() < 16) {
      h.extra.emplace_back(std::string(key), std::string(val));
    }
  }
  if (h.root.empty()) h.parent.clear();  // a parent without its trace is meaningless
  return h;
}

std::string TraceHeader::ToString() const {
  std::string out;
  auto add = [&out](std::string_view k, std::string_view v) {
    if (!out.empty()) out += ';';
    out.append(k).append("=").append(v);
  };
  if (!root.empty()) add("Root", root);
  if (!parent.empty()) add("Parent", parent);
  switch (sampled) {
    case SampledFlag::kSampled: add("Sampled", "1"); break;
    case SampledFlag::kNotSampled: add("Sampled", "0"); break;
    case SampledFlag::kRequested: add("Sampled", "?"); break;
    case SampledFlag::kUnknown: break;
  }
  if (!lineage.empty()) add("Lineage", lineage);
  for (const auto& [k, v] : extra) add(k, v);
  return out;
}

}  // namespace xray
