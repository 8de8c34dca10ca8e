#include "common/json_escape.h"

#include <array>

namespace xrayd {
namespace {

// 0 = copy as is; 'u' = \u00XX; any other = the char after the backslash.
constexpr std::array<char, 256> MakeEscapeTable() {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  t['"'] = '"';
  t['\\'] = '\\';
  return t;
}
constexpr std::array<char, 256> kEscape = MakeEscapeTable();

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + s.size() / 8 + 2);
  out.push_back('"');
  const char* p = s.data();
  const char* end = p + s.size();
  const char* run = p;  // start of the pending unescaped run
  for (; p != end; ++p) {
    const char e = kEscape[static_cast<unsigned char>(*p)];
    if (e == 0) continue;
    out.append(run, p);
    if (e == 'u') {
      static constexpr char kHex[] = "0123456789abcdef";
      const auto c = static_cast<unsigned char>(*p);
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out.append(u, 6);
    } else {
      const char two[2] = {'\\', e};
      out.append(two, 2);
    }
    run = p + 1;
  }
  out.append(run, end);
  out.push_back('"');
}

}  // namespace xrayd
