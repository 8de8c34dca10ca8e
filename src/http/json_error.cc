#include "http/json_error.h"

#include "common/json_escape.h"

namespace xrayd::http {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else return 0;
  if (i + n > s.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  return n;
}

}  // namespace

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string JsonErrorBody(std::string_view type, std::string_view message) {
  std::string body = "{\"__type\":";
  AppendJsonString(body, ValidUtf8(type));
  body += ",\"message\":";
  AppendJsonString(body, ValidUtf8(message));
  body += '}';
  return body;
}

OutgoingResponse JsonErrorResponse(int status, std::string_view type, std::string_view message) {
  OutgoingResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.headers.emplace_back("x-amzn-ErrorType", ValidUtf8(type));
  r.body = JsonErrorBody(type, message);
  return r;
}

}  // namespace xrayd::http
