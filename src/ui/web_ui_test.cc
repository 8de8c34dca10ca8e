#include "ui/web_ui.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <string>

#include "ui/embedded_assets.h"

namespace xrayd::ui {
namespace {

http::IncomingRequest Get(std::string path, std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::IncomingRequest r;
  r.method = "GET";
  r.target = r.path = std::move(path);
  r.headers = std::move(headers);
  return r;
}

std::string HeaderOf(const http::OutgoingResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

const EmbeddedAsset& Script() {
  for (const auto& a : EmbeddedAssets())
    if (a.path.ends_with(".js")) return a;
  throw std::runtime_error("no script embedded");
}

class WebUiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (EmbeddedAssets().empty()) GTEST_SKIP() << "built with -DXRAYD_UI=OFF";
  }
};

TEST_F(WebUiTest, AppRoutesAnswerTheIndexPage) {
  for (const char* path : {"/", "/traces/1-5f84c7a1-3a1e5c2f8d9b0e4a6c7d8e9f", "/map", "/analytics", "/sampling",
                           "/groups", "/compare/1-aaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb/1-cccccccc-dddddddddddddddddddddddd"}) {
    auto r = ServeWebUi(Get(path));
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8") << path;
    EXPECT_NE(r.body.find("<div id=\"app\">"), std::string::npos) << path;
    EXPECT_EQ(HeaderOf(r, "Cache-Control"), "no-cache") << path;
  }
}

TEST_F(WebUiTest, UnknownPathsAre404NotTheApp) {
  for (const char* path : {"/nope", "/traces/", "/traces/a/b", "/compare/a", "/assets/missing.js", "/GetSamplingRules"}) {
    auto r = ServeWebUi(Get(path));
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body.find("<div id=\"app\">"), std::string::npos) << path;
  }
}

TEST_F(WebUiTest, EverySecurityHeaderOnEveryAnswer) {
  for (const char* path : {"/", "/nope", "/favicon.svg"}) {
    auto r = ServeWebUi(Get(path));
    const std::string csp = HeaderOf(r, "Content-Security-Policy");
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << path;
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << path;
    EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << path;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << path;
    EXPECT_EQ(HeaderOf(r, "X-Content-Type-Options"), "nosniff") << path;
    EXPECT_EQ(HeaderOf(r, "X-Frame-Options"), "DENY") << path;
  }
}

TEST_F(WebUiTest, IndexHasNoInlineScript) {
  auto r = ServeWebUi(Get("/"));
  size_t pos = 0;
  while ((pos = r.body.find("<script", pos)) != std::string::npos) {
    const size_t end = r.body.find('>', pos);
    EXPECT_NE(r.body.substr(pos, end - pos).find(" src=\"/assets/"), std::string::npos);
    EXPECT_EQ(r.body.compare(end + 1, 9, "</script>"), 0) << "a script element with a body";
    pos = end;
  }
}

TEST_F(WebUiTest, GzipWhenAcceptedRawOtherwise) {
  const EmbeddedAsset& js = Script();
  auto gz = ServeWebUi(Get(std::string(js.path), {{"Accept-Encoding", "br, gzip;q=0.8"}}));
  EXPECT_EQ(gz.status, 200);
  EXPECT_EQ(HeaderOf(gz, "Content-Encoding"), "gzip");
  EXPECT_EQ(gz.body, js.gzip);
  ASSERT_GE(gz.body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz.body[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<unsigned char>(gz.body[1]), 0x8b);
  EXPECT_EQ(HeaderOf(gz, "Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(HeaderOf(gz, "Vary"), "Accept-Encoding");

  for (const char* refused : {"", "identity", "gzip;q=0", "gzip; q=0.000, br"}) {
    auto raw = ServeWebUi(Get(std::string(js.path), {{"accept-encoding", refused}}));
    EXPECT_EQ(HeaderOf(raw, "Content-Encoding"), "") << refused;
    EXPECT_EQ(raw.body, RawBytes(js)) << refused;
  }
  EXPECT_LT(js.gzip.size(), js.raw_size);
}

// Only the gzip copy is compiled in: every file must inflate to exactly its recorded size and to
// the bytes its ETag (a SHA-256 prefix of the file, computed by the build) names.
TEST_F(WebUiTest, EveryEmbeddedFileInflatesToTheBytesItsETagNames) {
  ASSERT_FALSE(EmbeddedAssets().empty());
  for (const auto& a : EmbeddedAssets()) {
    const std::string raw = RawBytes(a);
    ASSERT_EQ(raw.size(), a.raw_size) << a.path;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(raw.data()), raw.size(), digest);
    std::string hex;
    for (unsigned char b : digest) hex += fmt::format("{:02x}", b);
    EXPECT_EQ(a.etag, "\"" + hex.substr(0, 32) + "\"") << a.path;
  }
}

TEST_F(WebUiTest, MatchingETagAnswers304WithoutBody) {
  const EmbeddedAsset& js = Script();
  auto first = ServeWebUi(Get(std::string(js.path)));
  const std::string etag = HeaderOf(first, "ETag");
  ASSERT_EQ(etag, js.etag);
  ASSERT_EQ(etag.front(), '"');
  auto again = ServeWebUi(Get(std::string(js.path), {{"If-None-Match", "\"other\", " + etag}}));
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  auto changed = ServeWebUi(Get(std::string(js.path), {{"If-None-Match", "\"other\""}}));
  EXPECT_EQ(changed.status, 200);
}

TEST_F(WebUiTest, OnlyGetAndHead) {
  auto r = Get("/");
  r.method = "DELETE";
  EXPECT_EQ(ServeWebUi(r).status, 405);
  r.method = "HEAD";
  EXPECT_EQ(ServeWebUi(r).status, 200);
}

TEST_F(WebUiTest, FirstLoadIsUnder400KBCompressed) {
  size_t total = 0;
  for (const auto& a : EmbeddedAssets()) total += a.gzip.size();
  EXPECT_LT(total, 400u * 1024);
}

}  // namespace
}  // namespace xrayd::ui
