#include "http/json_error.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace xrayd::http {
namespace {

TEST(JsonError, ShapeTheSdksParse) {
  OutgoingResponse r = JsonErrorResponse(400, "InvalidRequestException", "GroupName \"x\" is \\ bad\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/json");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "x-amzn-ErrorType");
  EXPECT_EQ(r.headers[0].second, "InvalidRequestException");
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["__type"], "InvalidRequestException");
  EXPECT_EQ(body["message"], "GroupName \"x\" is \\ bad\n");
}

TEST(JsonError, InvalidUtf8IsReplacedSoTheBodyAlwaysParses) {
  const std::string bad = std::string("a\xC3") + "b\xFF" + "\xED\xA0\x80" + "\xE2\x82\xAC";  // last: valid €
  EXPECT_EQ(ValidUtf8(bad), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "\xE2\x82\xAC");
  auto body = nlohmann::json::parse(JsonErrorBody("T", bad));  // throws if not valid UTF-8 JSON
  EXPECT_EQ(body["message"].get<std::string>().substr(0, 1), "a");
  EXPECT_EQ(ValidUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80"), "h\xC3\xA9llo \xF0\x9F\x98\x80");
  EXPECT_EQ(ValidUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(ValidUtf8("\xF4\x90\x80\x80").size(), 12u);           // past U+10FFFF: 4 replacements
}

}  // namespace
}  // namespace xrayd::http
