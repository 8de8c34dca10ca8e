#include "common/json_escape.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

namespace xrayd {
namespace {

std::string Escaped(std::string_view s) {
  std::string out = "prefix:";
  AppendJsonString(out, s);
  return out.substr(7);
}

TEST(JsonEscape, KnownCases) {
  EXPECT_EQ(Escaped(""), "\"\"");
  EXPECT_EQ(Escaped("plain"), "\"plain\"");
  EXPECT_EQ(Escaped("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Escaped("\n\t\r\b\f"), "\"\\n\\t\\r\\b\\f\"");
  EXPECT_EQ(Escaped(std::string("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
  EXPECT_EQ(Escaped("h\xc3\xa9llo \x7f"), "\"h\xc3\xa9llo \x7f\"");  // UTF-8 and DEL pass through
}

TEST(JsonEscape, RoundTripsRandomInputThroughARealParser) {
  std::mt19937 rng(42);
  std::string alphabet = "abc \"\\/{}:,\x01\x1f\n\t\xc3\xa9\x7f\x80\xff";
  alphabet.push_back('\0');
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s;
    const size_t len = rng() % 200;
    const bool dense = rng() % 2;
    for (size_t i = 0; i < len; ++i)
      s.push_back(dense ? alphabet[rng() % alphabet.size()] : (rng() % 10 ? 'x' : alphabet[rng() % alphabet.size()]));
    const std::string json = Escaped(s);
    // nlohmann rejects invalid UTF-8 in strings, so compare on the bytes it decodes only when valid.
    try {
      EXPECT_EQ(nlohmann::json::parse(json).get<std::string>(), s) << iter;
    } catch (const nlohmann::json::parse_error&) {
      // Invalid UTF-8 in the input: check structure instead: no raw control bytes or unescaped quotes.
      for (size_t i = 1; i + 1 < json.size(); ++i) ASSERT_GE(static_cast<unsigned char>(json[i]), 0x20) << iter;
    }
  }
}

// Long runs where every byte, or every other one, needs escaping: the output grows far past the first
// estimate, block after block (the sanitizer builds check the stores stay inside the string).
TEST(JsonEscape, DenseSpecialsOverManyBlocks) {
  for (size_t len : {15u, 16u, 17u, 31u, 33u, 1000u, 4099u}) {
    for (const char* pattern : {"\"", "\x01", "a\"", "\\\n"}) {
      std::string s;
      while (s.size() < len) s += pattern;
      s.resize(len);
      EXPECT_EQ(nlohmann::json::parse(Escaped(s)).get<std::string>(), s) << len << " " << pattern;
    }
  }
}

// The reference: one byte at a time, as RFC 8259 section 7 says (short escapes where JSON has them).
std::string ReferenceEscape(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

// Both paths (SSE2 and, where this CPU has it, AVX-512) give the reference's bytes at every length
// around their block sizes, for sparse and dense specials, appended after existing output.
TEST(JsonEscape, EveryPathMatchesTheReference) {
  std::mt19937 rng(7);
  const std::string alphabet = std::string("ab \"\\/{}:,\x01\x1f\n\t\xc3\xa9\x7f\x80\xff", 19) + '\0';
  using Path = void (*)(std::string&, std::string_view);
  std::vector<std::pair<const char*, Path>> paths = {{"sse2", detail::AppendJsonStringSse2}};
  if (detail::HaveAvx512Escape()) paths.emplace_back("avx512", detail::AppendJsonStringAvx512);
  for (int iter = 0; iter < 3000; ++iter) {
    const size_t len = iter < 300 ? static_cast<size_t>(iter) : rng() % 5000;
    const int density = iter % 4;  // 0: no specials, 1: JSON-like, 2: dense, 3: controls now and then
    std::string s;
    for (size_t i = 0; i < len; ++i) {
      const char c = alphabet[rng() % alphabet.size()];
      switch (density) {
        case 0: s.push_back(static_cast<char>('a' + rng() % 26)); break;
        case 1: s.push_back(rng() % 8 ? static_cast<char>('a' + rng() % 26) : '"'); break;
        case 2: s.push_back(c); break;
        default: s.push_back(rng() % 100 ? (rng() % 6 ? 'x' : '"') : c); break;
      }
    }
    const std::string want = "head" + ReferenceEscape(s);
    for (const auto& [name, path] : paths) {
      std::string out = "head";
      path(out, s);
      ASSERT_EQ(out, want) << name << " iteration " << iter << " length " << len;
    }
  }
}

}  // namespace
}  // namespace xrayd
