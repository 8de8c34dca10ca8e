// PlainPutDocuments (traces.h) against nlohmann, the general path's parser: for every body the
// plain reader accepts, the documents must be exactly the ones the general path would take out;
// every other body must be left to the general path (nullopt).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "api/traces.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

// `body` as is, and padded past 1 MB with trailing whitespace (PlainPutDocuments reads such
// bodies in place, smaller ones with simdjson's DOM): both readers must answer alike.
std::vector<std::string> BothReaders(const std::string& body) { return {body, body + std::string(1 << 20, ' ')}; }

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
      R"({"TraceSegmentDocuments":[ ] })",
      R"({"TraceSegmentDocuments":["ends in a pair \ud83d\ude00","ends in a backslash \\","\"","",""]})",
      "{\"TraceSegmentDocuments\":[\"DEL \x7f and \u00ff\"]}",
  };
  for (const auto& text : bodies)
    for (const auto& body : BothReaders(text)) {
      auto plain = PlainPutDocuments(body, 4 << 20);
      ASSERT_TRUE(plain) << text;
      auto general = GeneralPathDocuments(body);
      ASSERT_TRUE(general) << text;
      EXPECT_EQ(*plain, *general) << text;
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
      R"({"TraceSegmentDocuments": ["a",]})",
      R"({"TraceSegmentDocuments": ["high then not low \ud800\u0041"]})",
      R"({"TraceSegmentDocuments": ["low first \udc00"]})",
      R"({"TraceSegmentDocuments": ["short \u12"]})",
      R"({"TraceSegmentDocuments": ["bad escape \x"]})",
      "{\"TraceSegmentDocuments\": [\"raw\ttab\"]}",
      R"({"TraceSegmentDocuments": ["unterminated \"]})",
      R"({"TraceSegmentDocuments": ["a"]}})",
  };
  for (const auto& text : bodies)
    for (const auto& body : BothReaders(text)) EXPECT_FALSE(PlainPutDocuments(body, 4 << 20)) << text;
  // An escaped key: the DOM reads it as the key it is, the in-place reader leaves it; never other documents.
  for (const auto& body : BothReaders(R"({"Trace\u0053egmentDocuments": ["escaped key"]})"))
    if (auto plain = PlainPutDocuments(body, 4 << 20)) EXPECT_EQ(*plain, *GeneralPathDocuments(body));
  // Over the size limit: the general path refuses it with its own message.
  const std::string big = R"({"TraceSegmentDocuments": [")" + std::string(2000, 'x') + R"("]})";
  EXPECT_TRUE(PlainPutDocuments(big, big.size()));
  EXPECT_FALSE(PlainPutDocuments(big, big.size() - 1));
}

// Random documents (quotes, backslashes, control bytes, 2-4 byte UTF-8), written by nlohmann with
// and without \u escapes for everything past ASCII: the plain reader takes out exactly them.
TEST(PlainPutDocuments, RandomDocumentsComeBackExactly) {
  std::mt19937 rng(7);
  const std::vector<std::string> pieces = {"\"", "\\", "/", "\n", "\t", std::string(1, '\0'), "\x01", "\x1f",
                                           "a", "{\"k\":1}", "é", "€", "😀", " ", "\x7f"};
  for (int round = 0; round < 100; ++round) {
    json list = json::array();
    for (int d = 0, n = static_cast<int>(rng() % 5); d < n; ++d) {
      std::string doc;
      for (int k = 0, len = static_cast<int>(rng() % 40); k < len; ++k) doc += pieces[rng() % pieces.size()];
      list.push_back(doc);
    }
    const json body = {{"TraceSegmentDocuments", list}};
    for (const bool ascii : {false, true}) {
      const std::string text = body.dump(round % 2 == 0 ? -1 : 1, ' ', ascii);
      for (const auto& padded : BothReaders(text)) {
        auto plain = PlainPutDocuments(padded, 4 << 20);
        ASSERT_TRUE(plain) << text;
        EXPECT_EQ(*plain, list.get<std::vector<std::string>>()) << text;
      }
    }
  }
}

}  // namespace
}  // namespace xrayd::api
