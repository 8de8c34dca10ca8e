#include "lb/seen_objects.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace xrayd::lb {
namespace {

TEST(SeenObjects, RemembersAcrossReopenAndIgnoresATornLine) {
  auto dir = std::filesystem::temp_directory_path() / ("lb-seen-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "lb_objects_read").string();
  {
    auto seen = SeenObjects::Open(path);
    ASSERT_TRUE(seen);
    EXPECT_FALSE((*seen)->Contains("s3://b/k1 \"e\""));
    ASSERT_TRUE((*seen)->Remember("s3://b/k1 \"e\""));
    ASSERT_TRUE((*seen)->Remember("file:/logs/with\nnewline%25 1 2"));
    ASSERT_TRUE((*seen)->Remember("s3://b/k1 \"e\""));  // once only
  }
  std::ofstream(path, std::ios::app) << "s3://b/torn";  // a crash mid-append
  auto again = SeenObjects::Open(path);
  ASSERT_TRUE(again);
  EXPECT_TRUE((*again)->Contains("s3://b/k1 \"e\""));
  EXPECT_TRUE((*again)->Contains("file:/logs/with\nnewline%25 1 2"));
  EXPECT_FALSE((*again)->Contains("s3://b/torn"));
  EXPECT_EQ((*again)->size(), 2u);
  EXPECT_FALSE(SeenObjects::Open((dir / "missing-dir" / "x").string()));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace xrayd::lb
