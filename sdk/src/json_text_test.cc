#include "json_text.h"

#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <random>

namespace xray::json_text {
namespace {

std::string Quoted(std::string_view s) {
  std::string out;
  AppendString(out, s);
  return out;
}

TEST(JsonText, EscapesWhatJsonRequires) {
  EXPECT_EQ(Quoted("plain"), "\"plain\"");
  EXPECT_EQ(Quoted("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(Quoted("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(Quoted(std::string("\x01\x1f", 2)), R"("\u0001\u001f")");
  EXPECT_EQ(Quoted(std::string("nul\0in", 6)), R"("nul\u0000in")");
  EXPECT_EQ(Quoted("/"), "\"/\"");  // no need to escape
}

TEST(JsonText, KeepsWellFormedUtf8AndReplacesTheRest) {
  EXPECT_EQ(Quoted("Привіт ✓ 😀"), "\"Привіт ✓ 😀\"");
  EXPECT_EQ(Quoted("a\xff" "b"), "\"a\xEF\xBF\xBD" "b\"");         // stray byte
  EXPECT_EQ(Quoted("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");     // overlong '/'
  EXPECT_EQ(Quoted("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // surrogate
  EXPECT_EQ(Quoted("\xF4\x90\x80\x80").find("\xF4"), std::string::npos);           // > U+10FFFF
  EXPECT_EQ(Quoted("cut \xE2\x9C"), "\"cut \xEF\xBF\xBD\xEF\xBF\xBD\"");             // truncated
}

// Whatever bytes come in, the output parses as JSON and valid text round-trips unchanged.
TEST(JsonText, RandomBytesAlwaysGiveValidJson) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    std::string out;
    AppendString(out, s);
    auto parsed = nlohmann::json::parse(out, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << out;
    bool valid_utf8 = true;
    try {
      (void)nlohmann::json(s).dump();  // the strict handler throws on invalid UTF-8
    } catch (const nlohmann::json::exception&) {
      valid_utf8 = false;
    }
    if (valid_utf8) {
      EXPECT_EQ(parsed.get<std::string>(), s);
    }
  }
}

TEST(JsonText, NumbersReadBackExactly) {
  for (double v : {0.0, 1.5, -2.25, 1700000000.123456, 1e-7, 123456789012345.0}) {
    std::string out;
    AppendDouble(out, v);
    EXPECT_EQ(nlohmann::json::parse(out).get<double>(), v) << out;
  }
  std::string out;
  AppendDouble(out, std::numeric_limits<double>::infinity());
  EXPECT_EQ(out, "null");
  out.clear();
  AppendInt(out, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(out, "-9223372036854775808");
}

TEST(JsonText, ObjectPutsCommasBetweenMembers) {
  std::string out;
  {
    Object o(out);
    o.String("a", "x");
    o.StringIfSet("skipped", "");
    o.Int("b", 2);
    {
      Object inner(o.Key("c"));
      inner.Bool("d", true);
    }
    o.Raw("e", "[1,2]");
  }
  EXPECT_EQ(out, R"({"a":"x","b":2,"c":{"d":true},"e":[1,2]})");
}

}  // namespace
}  // namespace xray::json_text
