// PlainPutDocuments (traces.h) against nlohmann, the general path's parser: for every body the
// plain reader accepts, the documents must be exactly the ones the general path would take out;
// every other body must be left to the general path (nullopt).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/traces.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

// The documents the general path takes from `body` (nlohmann, then the shape: a list of strings).
std::optional<std::vector<std::string>> GeneralPathDocuments(const std::string& body) {
  json in = json::parse(body, nullptr, false);
  if (!in.is_object() || in.size() != 1 || !in.contains("TraceSegmentDocuments")) return std::nullopt;
  std::vector<std::string> docs;
  for (const auto& d : in["TraceSegmentDocuments"]) {
    if (!d.is_string()) return std::nullopt;
    docs.push_back(d.get<std::string>());
  }
  return docs;
}

TEST(PlainPutDocuments, TakesTheSameDocumentsAsTheGeneralPath) {
  const std::vector<std::string> bodies = {
      R"({"TraceSegmentDocuments": []})",
      R"({"TraceSegmentDocuments":["{\"id\":\"a\"}","{}"]})",
      "  {\n\"TraceSegmentDocuments\" : [ \"x\" ] }  ",
      R"({"TraceSegmentDocuments": ["caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"]})",
      R"({"TraceSegmentDocuments": ["nul\u0000inside", "é raw UTF-8"]})",
  };
  for (const auto& body : bodies) {
    auto plain = PlainPutDocuments(body, 1 << 20);
    ASSERT_TRUE(plain) << body;
    auto general = GeneralPathDocuments(body);
    ASSERT_TRUE(general) << body;
    EXPECT_EQ(*plain, *general) << body;
  }
}

TEST(PlainPutDocuments, LeavesEveryOtherBodyToTheGeneralPath) {
  const std::vector<std::string> bodies = {
      "",
      "{}",
      "[]",
      R"({"TraceSegmentDocuments": "not a list"})",
      R"({"TraceSegmentDocuments": ["a", 1]})",
      R"({"TraceSegmentDocuments": ["a"], "Other": 1})",
      R"({"TraceSegmentDocuments": ["a"], "TraceSegmentDocuments": ["b"]})",  // nlohmann keeps the last
      R"({"traceSegmentDocuments": ["a"]})",
      R"({"TraceSegmentDocuments": ["a"]} trailing)",
      R"({"TraceSegmentDocuments": ["a")",
      R"({"TraceSegmentDocuments": ["lone \ud800 surrogate"]})",
      "{\"TraceSegmentDocuments\": [\"bad \xff byte\"]}",
  };
  for (const auto& body : bodies) EXPECT_FALSE(PlainPutDocuments(body, 1 << 20)) << body;
  // Over the size limit: the general path refuses it with its own message.
  const std::string big = R"({"TraceSegmentDocuments": [")" + std::string(2000, 'x') + R"("]})";
  EXPECT_TRUE(PlainPutDocuments(big, big.size()));
  EXPECT_FALSE(PlainPutDocuments(big, big.size() - 1));
}

}  // namespace
}  // namespace xrayd::api
