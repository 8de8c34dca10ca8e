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

}  // namespace
}  // namespace xrayd
