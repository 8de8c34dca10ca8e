#include "telemetry/metrics.h"

#include <gtest/gtest.h>

namespace xrayd {
namespace {

TEST(Metrics, PrometheusText) {
  Metrics m;
  m.segments_received = 7;
  m.Reject(RejectReason::kBadJson, 2);
  m.Fail(FailReason::kUnprocessed, 1);
  m.export_latency.Observe(0.003);
  m.export_latency.Observe(20);
  const std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("xrayd_segments_received_total 7\n"), std::string::npos);
  EXPECT_NE(text.find("xrayd_segments_rejected_total{reason=\"bad_json\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("xrayd_segments_failed_total{reason=\"unprocessed\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("xrayd_export_latency_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("xrayd_export_latency_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("xrayd_export_latency_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE xrayd_buffer_bytes gauge"), std::string::npos);
}

}  // namespace
}  // namespace xrayd
