#include "common/json_escape.h"

#include <array>
#include <cstdint>
#include <cstring>

#include <algorithm>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
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

// Writes the escape for special byte c at w; returns the new end.
inline char* WriteEscape(char* w, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char e = kEscape[c];
  *w++ = '\\';
  if (e == 'u') {
    w[0] = 'u';
    w[1] = '0';
    w[2] = '0';
    w[3] = kHex[c >> 4];
    w[4] = kHex[c & 15];
    return w + 5;
  }
  *w++ = e;
  return w;
}

}  // namespace

namespace detail {

// Works in 16-byte steps with SSE2 (every x86-64), scalar elsewhere. The output grows in steps
// that always leave room for one step at its worst (a 16-byte store, or 16 bytes escaped 6x).
void AppendJsonStringSse2(std::string& out, std::string_view s) {
  constexpr size_t kBlock = 16;
  constexpr size_t kWorstBlock = kBlock * 6 + kBlock;  // all 16 escaped, then one 16-byte store
  const auto* in = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t used = out.size();
  out.resize(used + n + n / 4 + kWorstBlock + 2);
  char* w = out.data() + used;
  char* end = out.data() + out.size();
  *w++ = '"';
  size_t i = 0;
  auto ensure_block_room = [&] {
    if (static_cast<size_t>(end - w) < kWorstBlock + 1) {
      used = static_cast<size_t>(w - out.data());
      out.resize(out.size() + (n - i) / 2 + kWorstBlock + 16);
      w = out.data() + used;
      end = out.data() + out.size();
    }
  };
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i ctl_max = _mm_set1_epi8(0x1F);
  // Each step stores 16 bytes speculatively; when none of them needs escaping that is all it does.
  while (i + kBlock <= n) {
    ensure_block_room();
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                     _mm_cmpeq_epi8(_mm_max_epu8(v, ctl_max), ctl_max));  // v <= 0x1F
    _mm_storeu_si128(reinterpret_cast<__m128i*>(w), v);
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(hit));
    if (mask == 0) {
      w += kBlock;
      i += kBlock;
      continue;
    }
    // Segment documents are JSON, so quotes come every few bytes: escape every special byte of the
    // block in one pass, copying the runs between them, rather than restarting the scan after each.
    const size_t block = i;
    size_t k = block + static_cast<size_t>(__builtin_ctz(mask));
    w += k - block;  // the bytes before the first special one are already stored
    for (;;) {
      w = WriteEscape(w, in[k]);
      mask &= mask - 1;
      const size_t next = mask ? block + static_cast<size_t>(__builtin_ctz(mask)) : block + kBlock;
      // The run up to the next special byte is at most 15 bytes: one 16-byte store when the input
      // has 16 readable bytes there, else an exact copy (the last block of the string).
      if (k + 1 + kBlock <= n) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(w), _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + k + 1)));
      } else {
        std::memcpy(w, in + k + 1, next - k - 1);
      }
      w += next - k - 1;
      if (mask == 0) break;
      k = next;
    }
    i = block + kBlock;
  }
#endif
  for (; i < n; ++i) {
    ensure_block_room();
    if (kEscape[in[i]] == 0) {
      *w++ = static_cast<char>(in[i]);
    } else {
      w = WriteEscape(w, in[i]);
    }
  }
  *w++ = '"';
  out.resize(static_cast<size_t>(w - out.data()));
}


#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define XRAYD_HAVE_AVX512_ESCAPE 1

// 32 input bytes per step, without a branch per special byte: each byte is widened to the pair
// (backslash, byte), and one compress (AVX-512 VBMI2) keeps the byte, plus its backslash where the
// byte is '"' or '\\'. A block holding a control byte (raw control bytes are rare in JSON: only
// whitespace between tokens) is escaped byte by byte. Every store is one full 64-byte vector, so the
// output keeps room for the worst block (32 bytes escaped 6x) plus one vector.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi2,bmi2"))) void AppendJsonStringAvx512(
    std::string& out, std::string_view s) {
  constexpr size_t kBlock = 32;
  constexpr size_t kWorstBlock = kBlock * 6 + 64;
  const auto* in = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t used = out.size();
  out.resize(used + n + n / 4 + kWorstBlock + 2);
  char* w = out.data() + used;
  char* end = out.data() + out.size();
  *w++ = '"';
  const __m256i quote = _mm256_set1_epi8('"');
  const __m256i backslash = _mm256_set1_epi8('\\');
  const __m256i ctl_max = _mm256_set1_epi8(0x1F);
  const __m512i pair_prefix = _mm512_set1_epi16('\\');
  for (size_t i = 0; i < n; i += kBlock) {
    if (static_cast<size_t>(end - w) < kWorstBlock + 1) {
      used = static_cast<size_t>(w - out.data());
      out.resize(out.size() + (n - i) / 2 + kWorstBlock + 16);
      w = out.data() + used;
      end = out.data() + out.size();
    }
    const size_t len = std::min(kBlock, n - i);
    const __mmask32 valid = len == kBlock ? ~__mmask32{0} : static_cast<__mmask32>((uint32_t{1} << len) - 1);
    const __m256i v = _mm256_maskz_loadu_epi8(valid, in + i);  // never reads past the input
    if (_mm256_mask_cmple_epu8_mask(valid, v, ctl_max) != 0) {
      for (size_t k = i; k < i + len; ++k) {
        if (kEscape[in[k]] == 0) {
          *w++ = static_cast<char>(in[k]);
        } else {
          w = WriteEscape(w, in[k]);
        }
      }
      continue;
    }
    const uint32_t special =
        _mm256_mask_cmpeq_epi8_mask(valid, v, quote) | _mm256_mask_cmpeq_epi8_mask(valid, v, backslash);
    const __m512i pairs = _mm512_or_si512(_mm512_slli_epi16(_mm512_cvtepu8_epi16(v), 8), pair_prefix);
    const uint64_t bytes = _pdep_u64(static_cast<uint64_t>(valid), 0xAAAAAAAAAAAAAAAAull);
    const uint64_t keep = bytes | _pdep_u64(special, 0x5555555555555555ull);
    _mm512_storeu_si512(w, _mm512_maskz_compress_epi8(keep, pairs));
    w += len + static_cast<size_t>(__builtin_popcount(special));
  }
  *w++ = '"';
  out.resize(static_cast<size_t>(w - out.data()));
}

bool HaveAvx512Escape() {
  static const bool have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi2") &&
                           __builtin_cpu_supports("bmi2");
  return have;
}
#else
bool HaveAvx512Escape() { return false; }
void AppendJsonStringAvx512(std::string& out, std::string_view s) { AppendJsonStringSse2(out, s); }
#endif

}  // namespace detail

void AppendJsonString(std::string& out, std::string_view s) {
  static const bool avx512 = detail::HaveAvx512Escape();
  if (avx512) {
    detail::AppendJsonStringAvx512(out, s);
  } else {
    detail::AppendJsonStringSse2(out, s);
  }
}

}  // namespace xrayd
