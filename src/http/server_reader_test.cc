#include "http/server_reader.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

namespace xrayd::http {
namespace {

using Progress = RequestReader::Progress;

std::string Gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Progress Feed(RequestReader& r, const std::string& bytes) {
  r.Append(bytes);
  return r.Next();
}

TEST(HttpRequestReader, ParsesARequestAndKeepsPipelinedBytesForTheNext) {
  RequestReader r{ServerLimits{}};
  ASSERT_EQ(Feed(r, "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}GET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
            Progress::kRequest);
  bool keep = false;
  IncomingRequest a = r.TakeRequest(&keep);
  EXPECT_TRUE(keep);
  EXPECT_EQ(a.method, "POST");
  EXPECT_EQ(a.path, "/a");
  EXPECT_EQ(a.query, "x=1");
  EXPECT_EQ(a.body, "{}");
  EXPECT_EQ(a.Header("host"), "h");
  ASSERT_EQ(r.Next(), Progress::kRequest);
  EXPECT_EQ(r.TakeRequest(&keep).path, "/b");
  EXPECT_EQ(r.Next(), Progress::kNeedMore);
  EXPECT_FALSE(r.InHeader());
}

TEST(HttpRequestReader, ByteByByteGivesTheSameRequest) {
  RequestReader r{ServerLimits{}};
  const std::string req = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  Progress p = Progress::kNeedMore;
  for (size_t i = 0; i < req.size(); ++i) {
    p = Feed(r, req.substr(i, 1));
    if (i + 1 < req.size()) {
      ASSERT_EQ(p, Progress::kNeedMore) << i;
    }
  }
  ASSERT_EQ(p, Progress::kRequest);
  EXPECT_EQ(r.TakeRequest(nullptr).body, "abcde");
}

TEST(HttpRequestReader, RefusesAmbiguousFraming) {
  const struct {
    const char* text;
    int status;
    HttpRefusal reason;
  } cases[] = {
      {"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400, HttpRefusal::kBadFraming},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", 400, HttpRefusal::kBadFraming},
      {"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 400, HttpRefusal::kBadFraming},
      {"POST / HTTP/1.1\r\nContent-Length: 2, 3\r\n\r\n", 400, HttpRefusal::kBadFraming},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, HttpRefusal::kTransferCoding},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501, HttpRefusal::kTransferCoding},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501,
       HttpRefusal::kTransferCoding},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, HttpRefusal::kBadFraming},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n", 400, HttpRefusal::kBadFraming},
      {"POST / HTTP/1.1\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", 415, HttpRefusal::kContentEncoding},
      {"GARBAGE\r\n\r\n", 400, HttpRefusal::kMalformed},
      {"GET / HTTP/2.0\r\n\r\n", 400, HttpRefusal::kMalformed},
  };
  for (const auto& c : cases) {
    RequestReader r{ServerLimits{}};
    EXPECT_EQ(Feed(r, c.text), Progress::kRefused) << c.text;
    EXPECT_EQ(r.refusal().status, c.status) << c.text;
    EXPECT_EQ(r.refusal().reason, c.reason) << c.text;
    EXPECT_EQ(r.Next(), Progress::kRefused) << "a refusal is final";
  }
}

TEST(HttpRequestReader, EqualDuplicateContentLengthsAreOneLength) {
  RequestReader r{ServerLimits{}};
  ASSERT_EQ(Feed(r, "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"), Progress::kRequest);
  EXPECT_EQ(r.TakeRequest(nullptr).body, "ok");
}

TEST(HttpRequestReader, NoLengthMeansNoBody) {  // RFC 9112 §6.3 (7): the next bytes are the next request
  RequestReader r{ServerLimits{}};
  ASSERT_EQ(Feed(r, "POST / HTTP/1.1\r\nHost: h\r\n\r\nxxxxxxxx"), Progress::kRequest);
  EXPECT_EQ(r.TakeRequest(nullptr).body, "");
  EXPECT_EQ(r.Next(), Progress::kNeedMore);
  EXPECT_TRUE(r.InHeader());
}

TEST(HttpRequestReader, HeaderLimits) {
  ServerLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_header_count = 10;
  {
    RequestReader r{limits};
    EXPECT_EQ(Feed(r, "GET /" + std::string(4000, 'a')), Progress::kRefused);
    EXPECT_EQ(r.refusal().status, 431);
  }
  {
    RequestReader r{limits};
    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 11; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(Feed(r, many + "\r\n"), Progress::kRefused);
    EXPECT_EQ(r.refusal().reason, HttpRefusal::kTooManyHeaders);
  }
}

TEST(HttpRequestReader, BodyLimitHoldsForEveryFraming) {
  ServerLimits limits;
  limits.max_body_bytes = 1000;
  {
    RequestReader r{limits};
    EXPECT_EQ(Feed(r, "POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"), Progress::kRefused);
    EXPECT_EQ(r.refusal().status, 413);
  }
  {
    RequestReader r{limits};
    ASSERT_EQ(Feed(r, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Progress::kNeedMore);
    Progress p = Progress::kNeedMore;
    for (int i = 0; i < 20 && p == Progress::kNeedMore; ++i) p = Feed(r, "64\r\n" + std::string(100, 'x') + "\r\n");
    EXPECT_EQ(p, Progress::kRefused);
    EXPECT_EQ(r.refusal().status, 413);
    EXPECT_EQ(r.refusal().reason, HttpRefusal::kBodyTooLarge);
  }
}

TEST(HttpRequestReader, GzipIsInflatedWithinBounds) {
  ServerLimits limits;
  limits.max_body_bytes = 64 * 1024;
  limits.max_inflation_ratio = 100;
  const std::string doc = "{\"a\":\"" + std::string(2000, 'b') + "\"}";
  const std::string small = Gzip(doc);
  {
    RequestReader r{limits};
    ASSERT_EQ(Feed(r, "POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(small.size()) +
                          "\r\n\r\n" + small),
              Progress::kRequest);
    EXPECT_EQ(r.TakeRequest(nullptr).body, doc);
  }
  const std::string bomb = Gzip(std::string(10 * 1024 * 1024, '\0'));  // ~10 KB → 10 MB
  ASSERT_LT(bomb.size(), limits.max_body_bytes);
  RequestReader r{limits};
  ASSERT_EQ(Feed(r, "POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(bomb.size()) +
                        "\r\n\r\n" + bomb),
            Progress::kRefused);
  EXPECT_EQ(r.refusal().status, 413);
  EXPECT_EQ(r.refusal().reason, HttpRefusal::kInflatedTooLarge);
}

TEST(HttpDecode, StopsAtTheRatioAndAtTheLimit) {
  const std::string data(100000, 'a');
  std::string z = Gzip(data);
  std::string copy = z;
  auto r = Decode("gzip", copy, 1 << 20, 10);  // 100 KB from a few hundred bytes: over 10x
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, HttpRefusal::kInflatedTooLarge);
  copy = z;
  r = Decode("gzip", copy, 50000, 100000);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  copy = z;
  EXPECT_FALSE(Decode("gzip", copy, 1 << 20, 1000).has_value());
  EXPECT_EQ(copy, data);
  copy = z.substr(0, z.size() / 2);
  r = Decode("gzip", copy, 1 << 20, 1000);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  copy = "not compressed";
  EXPECT_EQ(Decode("deflate", copy, 1 << 20, 1000)->status, 400);
}

TEST(HttpRequestReader, ExpectContinueIsSignalledOnce) {
  RequestReader r{ServerLimits{}};
  EXPECT_EQ(Feed(r, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
            Progress::kContinueExpected);
  EXPECT_TRUE(r.InBody());
  EXPECT_EQ(r.Next(), Progress::kNeedMore);
  EXPECT_EQ(Feed(r, "abc"), Progress::kRequest);
}

// What a reader makes of `input` fed in pieces of `step` bytes: each request (method, path, body) or
// the refusal's status, in order. With pause_after_header, kHeader is answered by carrying on, as
// http::Server does once the body's bytes are reserved; DeclaredBodyBytes() is noted there.
std::vector<std::string> Outcomes(const std::string& input, size_t step, bool pause) {
  ServerLimits limits;
  limits.max_body_bytes = 64;
  RequestReader r(limits, pause);
  std::vector<std::string> out;
  for (size_t i = 0; i < input.size(); i += step) {
    r.Append(input.substr(i, step));
    for (Progress p = r.Next(); p != Progress::kNeedMore; p = r.Next()) {
      if (p == Progress::kRefused) {
        out.push_back("refused " + std::to_string(r.refusal().status));
        return out;
      }
      if (p == Progress::kHeader) {
        EXPECT_TRUE(pause);
        EXPECT_TRUE(r.InBody());
        EXPECT_EQ(r.BodyBytes(), 0u) << "no body byte is parsed before kHeader is answered";
        out.push_back("header " + std::to_string(r.DeclaredBodyBytes()));
      }
      if (p == Progress::kContinueExpected) out.push_back("continue");
      if (p == Progress::kRequest) {
        IncomingRequest req = r.TakeRequest(nullptr);
        out.push_back(req.method + " " + req.path + " " + req.body);
      }
    }
  }
  return out;
}

// Pausing after the header changes nothing else: the same requests, refusals and 100-continue, in
// whatever pieces the bytes arrive; kHeader comes once per request with a body, before any of it.
TEST(HttpRequestReader, PausingAfterTheHeaderChangesNothingElse) {
  const std::vector<std::string> inputs = {
      "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "POST /d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nPOST /e HTTP/1.1\r\nContent-Length: 1\r\n\r\nz",
      "POST /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
      "POST /g HTTP/1.1\r\nContent-Length: 65\r\n\r\n" + std::string(65, 'x'),
      "POST /h HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n" + std::string(65, 'x') + "\r\n0\r\n\r\n",
      "POST /i HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
      "POST /j HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(Gzip("hello").size()) +
          "\r\n\r\n" + Gzip("hello"),
  };
  for (const auto& input : inputs)
    for (size_t step : {size_t{1}, size_t{7}, input.size()}) {
      std::vector<std::string> plain = Outcomes(input, step, false), paused = Outcomes(input, step, true);
      std::vector<std::string> without_header;
      size_t headers = 0;
      for (const auto& o : paused) {
        if (o.rfind("header ", 0) == 0) ++headers;
        else without_header.push_back(o);
      }
      EXPECT_EQ(without_header, plain) << input << " in pieces of " << step;
      // A Content-Length over the limit, or two of them, is refused before kHeader: nothing to reserve.
      if (plain.front().rfind("refused", 0) != 0) EXPECT_GE(headers, 1u) << input;
    }
  EXPECT_EQ(Outcomes(inputs[0], 1, true).front(), "header 3");
  EXPECT_EQ(Outcomes(inputs[1], 5, true).front(), "header 0");  // chunked: reserved as it arrives
}

}  // namespace
}  // namespace xrayd::http
