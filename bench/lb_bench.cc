// Load-balancer access logs: lines per CPU-second for 1M ALB lines through each stage, against
// baselines measured in the same run. Not a test.
//
//   split      baseline: cut each line into its space-separated fields (string_views, no quotes
//              handled, nothing converted) — the least any parser must do
//   parse      lb::ParseLogLine: every field, quotes and escapes, numbers and times converted
//   synthesize parse + lb::SynthesizeSegment (the segment document the store receives)
//   inflate    baseline: zlib inflate of the gzip'ed log, nothing else
//   reader     lb::LogReader on the gzip'ed log: inflate + split lines + parse + synthesize + Offer
//
// The 1M lines are 10,000 distinct realistic entries (random clients, targets, statuses, user agents
// with spaces and escaped quotes, trace ids) cycled 100 times, so the input stays ~4 MB.
//
//   build/bench/lb_bench [lines]
#include <sys/resource.h>
#include <zlib.h>

#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "lb/access_log.h"
#include "lb/log_reader.h"
#include "lb/segment_synthesis.h"

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

std::vector<std::string> MakeLines(size_t n) {
  std::mt19937_64 rng(17);
  const char* agents[] = {"curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                          "python-requests/2.31.0", "Go-http-client/1.1", "agent with \\\"quotes\\\" inside"};
  const int statuses[] = {200, 200, 200, 200, 201, 204, 301, 404, 429, 500, 502, 503};
  std::vector<std::string> out;
  char buf[2048];
  for (size_t i = 0; i < n; ++i) {
    const int st = statuses[rng() % 12];
    const bool lb_only = st == 502 || st == 503;
    const unsigned ms = rng() % 1000000;
    std::snprintf(buf, sizeof buf,
                  "https 2026-12-06T12:%02u:%02u.%06uZ app/k8s-default-flaskapp-25042181e0/298318111abc0def "
                  "%u.%u.%u.%u:%u %s 0.00%u %s 0.000 %d %s %u %u \"GET https://shop.example.com:443/api/v1/items/%u?page=%u HTTP/1.1\" "
                  "\"%s\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/k8s-default-flaskapp/73e2d6bc24d8a067 "
                  "\"Root=1-%08x-%016llx%08x\" \"shop.example.com\" \"arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012\" "
                  "1 2026-12-06T12:%02u:%02u.%06uZ \"forward\" \"-\" \"%s\" \"%s\" \"%s\" \"-\" \"-\" TID_%016llx",
                  unsigned(rng() % 60), unsigned(rng() % 60), ms, unsigned(rng() % 223 + 1), unsigned(rng() % 256),
                  unsigned(rng() % 256), unsigned(rng() % 256), unsigned(rng() % 60000 + 1024),
                  lb_only ? "-" : "10.0.3.17:5000", unsigned(rng() % 10), lb_only ? "-1" : "0.042", st,
                  lb_only ? "-" : std::to_string(st).c_str(), unsigned(rng() % 2000), unsigned(rng() % 20000),
                  unsigned(rng() % 100000), unsigned(rng() % 10), agents[rng() % 5], unsigned(0x65e1d287 + i),
                  static_cast<unsigned long long>(rng()), unsigned(rng()), unsigned(rng() % 60), unsigned(rng() % 60), ms,
                  lb_only ? "TargetConnectionErrorAll" : "-", lb_only ? "-" : "10.0.3.17:5000",
                  lb_only ? "-" : std::to_string(st).c_str(), static_cast<unsigned long long>(rng()));
    out.emplace_back(buf);
  }
  return out;
}

std::string Gzip(const std::string& text) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, text.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

class CountingSink : public xrayd::pipeline::SegmentSink {
 public:
  size_t Offer(std::vector<std::string>& docs) override {
    for (const auto& d : docs) bytes += d.size();
    const size_t n = docs.size();
    docs.clear();
    count += n;
    return n;
  }
  size_t count = 0, bytes = 0;
};

void Report(const char* stage, size_t lines, double cpu, double baseline_cpu, const char* baseline) {
  std::printf("%-11s %9zu lines  %7.3f CPU-s  %10.0f lines/CPU-s", stage, lines, cpu, lines / cpu);
  if (baseline_cpu > 0) std::printf("  (%.1fx the %s baseline's CPU)", cpu / baseline_cpu, baseline);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const size_t total = argc > 1 ? std::stoul(argv[1]) : 1000000;
  const std::vector<std::string> lines = MakeLines(10000);
  size_t bytes = 0;
  for (const auto& l : lines) bytes += l.size() + 1;
  std::printf("%zu lines (10000 distinct, %.0f bytes on average)\n", total, double(bytes) / lines.size());

  size_t fields = 0;
  double t = CpuSeconds();
  for (size_t i = 0; i < total; ++i) {
    std::string_view l = lines[i % lines.size()];
    for (size_t p = 0; p != std::string_view::npos; p = l.find(' ', p + 1)) ++fields;
  }
  const double split = CpuSeconds() - t;
  Report("split", total, split, 0, "");

  xrayd::lb::LogEntry e;
  size_t bad = 0;
  t = CpuSeconds();
  for (size_t i = 0; i < total; ++i) bad += !xrayd::lb::ParseLogLine(lines[i % lines.size()], &e).ok();
  const double parse = CpuSeconds() - t;
  Report("parse", total, parse, split, "split");

  std::string doc;
  size_t doc_bytes = 0;
  t = CpuSeconds();
  for (size_t i = 0; i < total; ++i) {
    const std::string& l = lines[i % lines.size()];
    if (xrayd::lb::ParseLogLine(l, &e).ok() && xrayd::lb::SynthesizeSegment(e, l, {}, &doc).ok()) doc_bytes += doc.size();
  }
  const double synth = CpuSeconds() - t;
  Report("synthesize", total, synth, split, "split");

  std::string text;
  text.reserve(bytes * (total / lines.size() + 1));
  for (size_t i = 0; i < total; ++i) (text += lines[i % lines.size()]) += '\n';
  const std::string gz = Gzip(text);
  text.clear();
  text.shrink_to_fit();
  std::vector<char> out(256 * 1024);
  t = CpuSeconds();
  z_stream zs{};
  inflateInit2(&zs, 15 + 16);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  size_t inflated = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    inflated += out.size() - zs.avail_out;
  }
  inflateEnd(&zs);
  const double inflate_cpu = CpuSeconds() - t;
  Report("inflate", total, inflate_cpu, 0, "");

  CountingSink sink;
  xrayd::lb::LbCounters counters;
  t = CpuSeconds();
  {
    xrayd::lb::LogReader reader(sink, {}, counters);
    reader.Begin("bench.log.gz");
    for (size_t i = 0; i < gz.size(); i += 256 * 1024)
      (void)reader.Feed(std::string_view(gz).substr(i, 256 * 1024));
    (void)reader.Finish();
  }
  const double reader_cpu = CpuSeconds() - t;
  Report("reader", total, reader_cpu, inflate_cpu, "inflate");
  std::printf("(%zu malformed; %zu fields split; %.0f bytes per segment document; %.1f MB gzip -> %.1f MB; "
              "reader offered %zu segments, %zu malformed)\n",
              bad, fields, double(doc_bytes) / total, gz.size() / 1e6, inflated / 1e6, sink.count,
              size_t(counters.malformed.load()));
  return bad == 0 && sink.count == total ? 0 : 1;
}
