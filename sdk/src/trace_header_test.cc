#include "xray/trace_header.h"

#include <gtest/gtest.h>

namespace xray {
namespace {

constexpr const char* kRoot = "1-5759e988-bd862e3fe1be46a994272793";

TEST(TraceHeader, ParsesAllFields) {
  auto h = TraceHeader::Parse(
      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5");
  EXPECT_EQ(h.root, kRoot);
  EXPECT_EQ(h.parent, "53995c3f42cd8ad8");
  EXPECT_EQ(h.sampled, SampledFlag::kSampled);
  EXPECT_EQ(h.lineage, "a87bd80c:1|68fd508a:5");
  EXPECT_TRUE(h.extra.empty());
}

TEST(TraceHeader, RoundTrip) {
  const std::string in =
      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=12326a9d:0;Self=1-67891234-12456789abcdef012345678;Foo=bar";
  auto h = TraceHeader::Parse(in);
  EXPECT_EQ(h.ToString(), in);
  EXPECT_EQ(TraceHeader::Parse(h.ToString()).ToString(), in);
  ASSERT_EQ(h.extra.size(), 2u);
  EXPECT_EQ(h.extra[0].first, "Self");
  EXPECT_EQ(h.extra[1].second, "bar");
}

TEST(TraceHeader, SampledValues) {
  EXPECT_EQ(TraceHeader::Parse(std::string("Root=") + kRoot + ";Sampled=?").sampled, SampledFlag::kRequested);
  EXPECT_EQ(TraceHeader::Parse(std::string("Root=") + kRoot + ";Sampled=0").sampled, SampledFlag::kNotSampled);
  EXPECT_EQ(TraceHeader::Parse(std::string("Root=") + kRoot).sampled, SampledFlag::kUnknown);
  EXPECT_EQ(TraceHeader::Parse(std::string("Root=") + kRoot + ";Sampled=yes").sampled, SampledFlag::kUnknown);
  EXPECT_EQ(TraceHeader::Parse(std::string("Root=") + kRoot + ";Sampled=?").ToString(),
            std::string("Root=") + kRoot + ";Sampled=?");
}

TEST(TraceHeader, ToleratesSpacesOrderAndCase) {
  auto h = TraceHeader::Parse(" Sampled = 1 ; parent=53995C3F42CD8AD8 ;  ROOT = 1-5759E988-BD862E3FE1BE46A994272793 ;");
  EXPECT_EQ(h.root, kRoot);
  EXPECT_EQ(h.parent, "53995c3f42cd8ad8");
  EXPECT_EQ(h.sampled, SampledFlag::kSampled);
  EXPECT_EQ(h.ToString(), std::string("Root=") + kRoot + ";Parent=53995c3f42cd8ad8;Sampled=1");
}

TEST(TraceHeader, Malformed) {
  for (const char* bad : {"", ";;;", "garbage", "Root", "Root=", "=1", "Root=1-zzzz-notanid", "Root=2-5759e988-bd862e3fe1be46a994272793",
                          "Root=1-5759e988-bd862e3fe1be46a99427279", "\x01\x02=\xff;\xfe"}) {
    auto h = TraceHeader::Parse(bad);
    EXPECT_TRUE(h.root.empty()) << bad;
    EXPECT_TRUE(h.parent.empty()) << bad;
  }
  // A bad parent is dropped, the root kept.
  auto h = TraceHeader::Parse(std::string("Root=") + kRoot + ";Parent=xyz;Sampled=1");
  EXPECT_EQ(h.root, kRoot);
  EXPECT_TRUE(h.parent.empty());
  // A parent without a root is dropped.
  EXPECT_TRUE(TraceHeader::Parse("Parent=53995c3f42cd8ad8").parent.empty());
}

TEST(TraceHeader, HugeInputIsBounded) {
  std::string big = std::string("Root=") + kRoot + ";";
  for (int i = 0; i < 10000; ++i) big += "K" + std::to_string(i) + "=v;";
  auto h = TraceHeader::Parse(big);
  EXPECT_EQ(h.root, kRoot);
  EXPECT_LE(h.extra.size(), 16u);
}

TEST(TraceHeader, EmptyFormatsEmpty) { EXPECT_EQ(TraceHeader{}.ToString(), ""); }

}  // namespace
}  // namespace xray
