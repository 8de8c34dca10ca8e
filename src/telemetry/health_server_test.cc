// /readyz over a real socket: ready, not ready, and 503 naming an exporter whose spool is unusable.
#include "telemetry/health_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include "telemetry/metrics.h"

namespace xrayd {
namespace {

TEST(HealthServer, ReadyzNamesAnExporterRunningWithoutItsSpool) {
  GlobalMetrics().ResetForTest();
  std::atomic<bool> up{false};
  HealthServer health("127.0.0.1:0", [&] { return up.load(); });
  ASSERT_TRUE(health.Start());
  httplib::Client client("127.0.0.1", health.port());
  auto r = client.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  up = true;
  r = client.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ready\n");
  auto& xray = GlobalMetrics().ForExporter("xray");
  xray.Update([](ExporterMetrics::Snapshot& s) { s.spool_problem = "spool /s/xray write failed (disk full); running from memory"; });
  r = client.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "not ready\nexporter xray: spool /s/xray write failed (disk full); running from memory\n");
  r = client.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << "alive all the same";
  r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("xrayd_spool_usable{exporter=\"xray\"} 0\n"), std::string::npos);
  xray.Update([](ExporterMetrics::Snapshot& s) { s.spool_problem.clear(); });
  r = client.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  health.Stop();
  GlobalMetrics().ResetForTest();
}

}  // namespace
}  // namespace xrayd
