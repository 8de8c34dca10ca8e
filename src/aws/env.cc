#include "aws/env.h"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace xrayd::aws {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Reads exactly `n` digits at `pos`; advances pos.
bool Digits(std::string_view s, size_t& pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool Expect(std::string_view s, size_t& pos, char c) {
  if (pos >= s.size() || (s[pos] != c && !(c == 'T' && (s[pos] == 't' || s[pos] == ' ')))) return false;
  ++pos;
  return true;
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::optional<std::string> EnvValue(const EnvLookup& env, std::string_view name) {
  auto v = env(name);
  if (!v || v->empty()) return std::nullopt;
  return v;
}

bool IsTrue(std::string_view value) {
  value = Trim(value);
  if (value == "1") return true;
  if (value.size() != 4) return false;
  for (size_t i = 0; i < 4; ++i)
    if (std::tolower(static_cast<unsigned char>(value[i])) != "true"[i]) return false;
  return true;
}

bool EnvFlag(const EnvLookup& env, std::string_view name) {
  auto v = env(name);
  return v && IsTrue(*v);
}

std::string ExpandHome(const EnvLookup& env, const std::string& path) {
  if (path == "~" || path.rfind("~/", 0) == 0) {
    if (auto home = EnvValue(env, "HOME")) return *home + path.substr(1);
  }
  return path;
}

std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view s) {
  s = Trim(s);
  size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!Digits(s, pos, 4, year) || !Expect(s, pos, '-') || !Digits(s, pos, 2, month) || !Expect(s, pos, '-') ||
      !Digits(s, pos, 2, day) || !Expect(s, pos, 'T') || !Digits(s, pos, 2, hour) || !Expect(s, pos, ':') ||
      !Digits(s, pos, 2, minute) || !Expect(s, pos, ':') || !Digits(s, pos, 2, second))
    return std::nullopt;
  std::chrono::nanoseconds fraction{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100000000, nanos = 0;
    const size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      nanos += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
    fraction = std::chrono::nanoseconds(nanos);
  }
  std::chrono::minutes offset{0};
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!Digits(s, pos, 2, oh)) return std::nullopt;
    if (pos < s.size() && s[pos] == ':') ++pos;
    if (!Digits(s, pos, 2, om)) return std::nullopt;
    offset = std::chrono::minutes(sign * (oh * 60 + om));
  } else {
    return std::nullopt;  // a timestamp without a zone is ambiguous
  }
  if (pos != s.size()) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const auto t = std::chrono::sys_days(ymd) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
                 std::chrono::seconds(second) + fraction - offset;
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(t);
}

std::string ActiveProfileName(const EnvLookup& env) {
  if (auto p = EnvValue(env, "AWS_PROFILE")) return *p;
  if (auto p = EnvValue(env, "AWS_DEFAULT_PROFILE")) return *p;
  return "default";
}

bool ProfileNamedExplicitly(const EnvLookup& env) {
  return EnvValue(env, "AWS_PROFILE") || EnvValue(env, "AWS_DEFAULT_PROFILE");
}

void SharedProfiles::Parse(std::string_view text, bool config_file, Sections& out) {
  std::map<std::string, std::string, std::less<>>* section = nullptr;
  bool in_subsection = false;  // indented lines under "key =" with an empty value
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    const bool indented = !raw.empty() && (raw.front() == ' ' || raw.front() == '\t');
    std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      in_subsection = false;
      section = nullptr;
      const size_t close = line.find(']');
      if (close == std::string_view::npos) continue;
      std::string_view name = Trim(line.substr(1, close - 1));
      if (config_file) {
        if (name.rfind("profile", 0) == 0 && name.size() > 7 && (name[7] == ' ' || name[7] == '\t')) {
          name = Trim(name.substr(8));
        } else if (name != "default") {
          continue;  // [sso-session x], [services x], or a profile missing its "profile " prefix
        }
      }
      section = &out[std::string(name)];
      continue;
    }
    if (section == nullptr) continue;
    if (indented && in_subsection) continue;
    in_subsection = false;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = Trim(line.substr(0, eq));
    const std::string_view value = Trim(line.substr(eq + 1));
    if (value.empty()) {
      in_subsection = true;  // "s3 =" opens nested properties we do not use
      continue;
    }
    (*section)[std::string(key)] = std::string(value);
  }
}

SharedProfiles SharedProfiles::FromText(std::string_view config_text, std::string_view credentials_text) {
  SharedProfiles p;
  Parse(config_text, true, p.config_);
  Parse(credentials_text, false, p.credentials_);
  return p;
}

SharedProfiles SharedProfiles::Load(const EnvLookup& env) {
  const std::string home = EnvValue(env, "HOME").value_or("");
  const std::string config_path =
      ExpandHome(env, EnvValue(env, "AWS_CONFIG_FILE").value_or(home + "/.aws/config"));
  const std::string cred_path =
      ExpandHome(env, EnvValue(env, "AWS_SHARED_CREDENTIALS_FILE").value_or(home + "/.aws/credentials"));
  SharedProfiles p = FromText(ReadWholeFile(config_path).value_or(""), ReadWholeFile(cred_path).value_or(""));
  p.config_path_ = config_path;
  p.credentials_path_ = cred_path;
  return p;
}

bool SharedProfiles::Has(std::string_view profile) const {
  return config_.find(profile) != config_.end() || credentials_.find(profile) != credentials_.end();
}

std::optional<std::string> SharedProfiles::Get(std::string_view profile, std::string_view key) const {
  for (const Sections* s : {&credentials_, &config_}) {
    auto sec = s->find(profile);
    if (sec == s->end()) continue;
    auto v = sec->second.find(key);
    if (v != sec->second.end()) return v->second;
  }
  return std::nullopt;
}

std::optional<std::string> SharedConfigValue(const EnvLookup& env, std::string_view key) {
  return SharedProfiles::Load(env).Get(ActiveProfileName(env), key);
}

std::optional<std::string> IniLookup(std::string_view text, std::string_view section, std::string_view key) {
  bool in_section = false;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      const size_t close = line.find(']');
      if (close == std::string_view::npos) continue;
      in_section = Trim(line.substr(1, close - 1)) == section;
      continue;
    }
    if (!in_section) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    if (Trim(line.substr(0, eq)) == key) return std::string(Trim(line.substr(eq + 1)));
  }
  return std::nullopt;
}

}  // namespace xrayd::aws
