// Appending JSON text to a std::string without building a document tree: the segment serializer's
// building blocks. Internal to the SDK (not installed with the public headers).
//
// xrayd has its own escaper (src/common/json_escape.h) on purpose: the SDK does not depend on the
// daemon's code, and the two promise different things. The daemon passes through bytes that arrived
// as a JSON document; the SDK writes text from the application, so it must also replace bytes that
// are not UTF-8.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

namespace xray::json_text {

// `s` as a quoted JSON string. Control characters are escaped; bytes that are not well-formed UTF-8
// become U+FFFD, so text from the application can never make the document invalid.
void AppendString(std::string& out, std::string_view s);

// Shortest text that reads back as the same double; non-finite values (never valid JSON) as null.
inline void AppendDouble(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

inline void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Writes the members of one object: Key() puts the separating comma where one is due.
class Object {
 public:
  explicit Object(std::string& out) : out_(out) { out_ += '{'; }
  ~Object() { out_ += '}'; }
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;

  std::string& Key(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    AppendString(out_, key);
    out_ += ':';
    return out_;
  }
  void String(std::string_view key, std::string_view v) { AppendString(Key(key), v); }
  void StringIfSet(std::string_view key, std::string_view v) {
    if (!v.empty()) String(key, v);
  }
  void Double(std::string_view key, double v) { AppendDouble(Key(key), v); }
  void Int(std::string_view key, int64_t v) { AppendInt(Key(key), v); }
  void Bool(std::string_view key, bool v) { Key(key) += v ? "true" : "false"; }
  void Raw(std::string_view key, std::string_view json) { Key(key) += json; }

 private:
  std::string& out_;
  bool first_ = true;
};

}  // namespace xray::json_text
