#include "cli/flags.h"

#include <gtest/gtest.h>

namespace xrayd::cli {
namespace {

const std::vector<FlagSpec> kSpecs = {{{"b", "bind"}}, {{"o", "local-mode"}, true}, {{"m", "buffer-memory"}}};

ParsedFlags MustParse(std::vector<std::string> args) {
  auto r = ParseFlags(kSpecs, args);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? *r : ParsedFlags{};
}

TEST(Flags, EverySpellingOfAValue) {
  for (auto args : std::vector<std::vector<std::string>>{{"-b", "0.0.0.0:2000"},
                                                         {"--b", "0.0.0.0:2000"},
                                                         {"-b=0.0.0.0:2000"},
                                                         {"--bind=0.0.0.0:2000"},
                                                         {"-bind=0.0.0.0:2000"},
                                                         {"-bind", "0.0.0.0:2000"},
                                                         {"--bind", "0.0.0.0:2000"}}) {
    auto f = MustParse(args);
    ASSERT_TRUE(f.Has("bind")) << args[0];
    EXPECT_EQ(f.Get("bind"), "0.0.0.0:2000") << args[0];
  }
}

TEST(Flags, BooleansNeverTakeTheNextArgument) {
  auto f = MustParse({"-o", "false"});
  EXPECT_EQ(f.Get("local-mode"), "true");
  ASSERT_EQ(f.positional.size(), 1u);  // "false" ends flag parsing, as in Go
  EXPECT_EQ(MustParse({"-o=false"}).Get("local-mode"), "false");
  EXPECT_EQ(MustParse({"--local-mode=T"}).Get("local-mode"), "true");
  EXPECT_FALSE(ParseFlags(kSpecs, {"-o=maybe"}));
}

TEST(Flags, LastValueWinsAcrossSpellings) {
  EXPECT_EQ(MustParse({"-b", "a:1", "--bind", "b:2"}).Get("bind"), "b:2");
}

TEST(Flags, ValueMayStartWithDash) { EXPECT_EQ(MustParse({"-m", "-5"}).Get("buffer-memory"), "-5"); }

TEST(Flags, StopsAtFirstNonFlagAndDoubleDash) {
  auto f = MustParse({"-o", "stray", "-b", "x:1"});
  EXPECT_FALSE(f.Has("bind"));
  EXPECT_EQ(f.positional, (std::vector<std::string>{"stray", "-b", "x:1"}));
  auto g = MustParse({"--", "-b", "x:1"});
  EXPECT_FALSE(g.Has("bind"));
}

TEST(Flags, ErrorsReadLikeGo) {
  auto unknown = ParseFlags(kSpecs, {"-bogus"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message, "flag provided but not defined: -bogus");
  auto missing = ParseFlags(kSpecs, {"--bind"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "flag needs an argument: -bind");
  EXPECT_FALSE(ParseFlags(kSpecs, {"---b", "x"}));
}

}  // namespace
}  // namespace xrayd::cli
