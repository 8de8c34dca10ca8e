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

class FixedSource final : public MetricsSource {
 public:
  void RenderMetrics(std::string& out) const override {
    AppendCounterFamily(out, "xrayd_test_things_total", "Things.", "kind", {{"a", 1}, {"b", 22}});
  }
};

TEST(Metrics, SourcesRenderWhileRegistered) {
  Metrics m;
  FixedSource source;
  EXPECT_EQ(m.RenderPrometheus().find("xrayd_test_things_total"), std::string::npos);
  m.AddSource(&source);
  const std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("# HELP xrayd_test_things_total Things.\n# TYPE xrayd_test_things_total counter\n"
                      "xrayd_test_things_total{kind=\"a\"} 1\nxrayd_test_things_total{kind=\"b\"} 22\n"),
            std::string::npos)
      << text;
  m.RemoveSource(&source);
  EXPECT_EQ(m.RenderPrometheus().find("xrayd_test_things_total"), std::string::npos);
}

TEST(Metrics, ExporterFamiliesCarryTheExporterLabel) {
  auto& m = GlobalMetrics();
  m.ResetForTest();
  auto& x = m.ForExporter("xray");
  EXPECT_EQ(&x, &m.ForExporter("xray")) << "one accounting per name";
  x.Update([](ExporterMetrics::Snapshot& s) {
    s.received = 10;
    s.delivered = 6;
    s.queued = 1;
    s.spooled = 2;
    s.dropped[static_cast<size_t>(DropReason::kSpoolCorrupt)] = 1;
    s.retries = 4;
    s.spool_errors[static_cast<size_t>(SpoolErrorKind::kTornTail)] = 1;
  });
  const std::string text = m.RenderPrometheus();
  for (const char* line : {"xrayd_exporter_received_total{exporter=\"xray\"} 10\n",
                           "xrayd_exporter_delivered_total{exporter=\"xray\"} 6\n",
                           "xrayd_exporter_queued_segments{exporter=\"xray\"} 1\n",
                           "xrayd_exporter_spooled_segments{exporter=\"xray\"} 2\n",
                           "xrayd_exporter_dropped_total{exporter=\"xray\",reason=\"spool_corrupt\"} 1\n",
                           "xrayd_exporter_dropped_total{exporter=\"xray\",reason=\"queue_full\"} 0\n",
                           "xrayd_exporter_retries_total{exporter=\"xray\"} 4\n",
                           "xrayd_spool_errors_total{exporter=\"xray\",kind=\"torn_tail\"} 1\n",
                           "# TYPE xrayd_exporter_queued_segments gauge\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line;
  EXPECT_TRUE(m.ReadinessProblems().empty());
  x.Update([](ExporterMetrics::Snapshot& s) { s.spool_problem = "spool /x unusable (newer version)"; });
  ASSERT_EQ(m.ReadinessProblems().size(), 1u);
  EXPECT_EQ(m.ReadinessProblems()[0], "exporter xray: spool /x unusable (newer version)");
  m.ResetForTest();
  EXPECT_TRUE(m.ReadinessProblems().empty());
}

}  // namespace
}  // namespace xrayd
