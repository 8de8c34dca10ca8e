#include "api/trace_assembly.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace xrayd::api {
namespace {

using nlohmann::json;

store::StoredSegment Stored(const std::string& doc, bool independent) {
  const json j = json::parse(doc);
  store::StoredSegment s;
  s.id = j.value("id", "");
  s.independent_subsegment = independent;
  s.doc = doc;
  return s;
}

TEST(TraceAssembly, StreamedSubsegmentGoesUnderItsParent) {
  const auto out = AssembleTrace({
      Stored(R"({"trace_id":"1-5f00-a","id":"aaaaaaaaaaaaaaaa","name":"web","start_time":10,"end_time":12})", false),
      Stored(R"({"type":"subsegment","trace_id":"1-5f00-a","parent_id":"aaaaaaaaaaaaaaaa","id":"bbbbbbbbbbbbbbbb",)"
             R"("name":"db","start_time":10.5,"end_time":13})",
             true),
  });
  ASSERT_EQ(out.segments.size(), 1u);
  EXPECT_EQ(out.segments[0].id, "aaaaaaaaaaaaaaaa");
  const json merged = json::parse(out.segments[0].document);
  ASSERT_EQ(merged["subsegments"].size(), 1u);
  EXPECT_EQ(merged["subsegments"][0]["id"], "bbbbbbbbbbbbbbbb");
  EXPECT_FALSE(merged["subsegments"][0].contains("parent_id"));
  EXPECT_DOUBLE_EQ(out.duration, 3.0);
}

// Found by fuzz_api_request (CI, stop 23): members of embedded subsegments are not validated, and
// a number where the merge expects a string or a boolean made nlohmann throw (a 500 from
// GetTraceSummaries and BatchGetTraces). They now count as absent.
TEST(TraceAssembly, MembersOfOtherTypesDoNotThrow) {
  const auto out = AssembleTrace({
      Stored(R"({"trace_id":"1-5f00-a","id":"aaaaaaaaaaaaaaaa","name":"web","start_time":10,"end_time":12,)"
             R"("subsegments":[{"id":7,"in_progress":1,"name":"x","start_time":10},"text",)"
             R"({"id":"bbbbbbbbbbbbbbbb","in_progress":true,"name":"db","start_time":10.5}]})",
             false),
      Stored(R"({"type":"subsegment","trace_id":"1-5f00-a","parent_id":"aaaaaaaaaaaaaaaa","id":"bbbbbbbbbbbbbbbb",)"
             R"("name":"db","start_time":10.5,"end_time":11,"in_progress":"no"})",
             true),
      Stored(R"({"type":"subsegment","trace_id":"1-5f00-a","parent_id":12,"id":"cccccccccccccccc",)"
             R"("name":"orphan","start_time":10,"end_time":11})",
             true),
  });
  ASSERT_EQ(out.segments.size(), 2u);  // the segment, and the orphan whose parent_id is a number
  const json merged = json::parse(out.segments[0].document);
  ASSERT_EQ(merged["subsegments"].size(), 3u);
  // The finished copy replaced the in-progress stub of the same id; the others are kept as sent.
  EXPECT_EQ(merged["subsegments"][2]["end_time"], 11);
  EXPECT_EQ(merged["subsegments"][0]["id"], 7);
  EXPECT_EQ(out.segments[1].id, "cccccccccccccccc");
}

}  // namespace
}  // namespace xrayd::api
