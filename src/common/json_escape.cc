#include "common/json_escape.h"

#include <array>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Finds the next byte at or after `i` that needs escaping ('"', '\\' or a control byte), or n.
// With SSE2 (every x86-64) it tests 16 bytes per step; segment documents are mostly plain runs
// between quotes, so this is where the time goes.
inline size_t NextSpecial(const unsigned char* in, size_t i, size_t n) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i ctl_max = _mm_set1_epi8(0x1F);
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                     _mm_cmpeq_epi8(_mm_max_epu8(v, ctl_max), ctl_max));  // v <= 0x1F
    const int mask = _mm_movemask_epi8(hit);
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  for (; i < n; ++i)
    if (kEscape[in[i]] != 0) return i;
  return n;
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  const auto* in = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  // Worst case is 6 bytes per input byte (\u00XX); grow in steps instead of reserving that.
  size_t old = out.size();
  size_t cap = n + n / 4 + 18;
  out.resize(old + cap);
  char* w = out.data() + old;
  char* end = out.data() + out.size();
  *w++ = '"';
  size_t i = 0;
  while (i < n) {
    const size_t j = NextSpecial(in, i, n);
    const size_t need = (j - i) + 6 + 1;  // the run, one escape, the closing quote
    if (static_cast<size_t>(end - w) < need) {
      const size_t used = static_cast<size_t>(w - out.data());
      out.resize(out.size() + need + (n - i) / 2 + 16);
      w = out.data() + used;
      end = out.data() + out.size();
    }
    std::memcpy(w, in + i, j - i);
    w += j - i;
    if (j == n) break;
    const char e = kEscape[in[j]];
    *w++ = '\\';
    if (e == 'u') {
      static constexpr char kHex[] = "0123456789abcdef";
      *w++ = 'u';
      *w++ = '0';
      *w++ = '0';
      *w++ = kHex[in[j] >> 4];
      *w++ = kHex[in[j] & 15];
    } else {
      *w++ = e;
    }
    i = j + 1;
  }
  *w++ = '"';
  out.resize(static_cast<size_t>(w - out.data()));
}

}  // namespace xrayd
