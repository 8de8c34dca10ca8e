#include "pipeline/spool_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iterator>

namespace xrayd::pipeline {
namespace {

struct Sample {
  const std::string* exporter;
  SpoolStats stats;
  double oldest_age_seconds;
};

void Family(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            const std::vector<Sample>& samples, const std::function<double(const Sample&)>& value) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  for (const auto& s : samples)
    fmt::format_to(std::back_inserter(out), "{}{{exporter=\"{}\"}} {}\n", name, *s.exporter, value(s));
}

}  // namespace

SpoolGauges& SpoolGauges::Instance() {
  static SpoolGauges* const instance = [] {
    auto* g = new SpoolGauges();  // never destroyed: the registry may outlive any static
    GlobalMetrics().AddSource(g);
    return g;
  }();
  return *instance;
}

void SpoolGauges::Add(std::string exporter, const Spool* spool) {
  MutexLock lock(mu_);
  spools_.emplace_back(std::move(exporter), spool);
}

void SpoolGauges::Remove(const Spool* spool) {
  MutexLock lock(mu_);
  std::erase_if(spools_, [&](const auto& e) { return e.second == spool; });
}

void SpoolGauges::RenderMetrics(std::string& out) const {
  MutexLock lock(mu_);
  if (spools_.empty()) return;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::vector<Sample> samples;
  for (const auto& [exporter, spool] : spools_) {
    const int64_t oldest = spool->OldestPendingMs();
    samples.push_back({&exporter, spool->stats(), oldest > 0 ? std::max<int64_t>(0, now_ms - oldest) / 1000.0 : 0.0});
  }
  Family(out, "xrayd_spool_disk_bytes", "gauge", "Bytes of the exporter's spool files on disk (compressed records).",
         samples, [](const Sample& s) { return static_cast<double>(s.stats.disk_bytes); });
  Family(out, "xrayd_spool_pending_records", "gauge",
         "Records (batches) in the exporter's spool not yet delivered and acknowledged.", samples,
         [](const Sample& s) { return static_cast<double>(s.stats.pending_records); });
  Family(out, "xrayd_spool_oldest_record_age_seconds", "gauge",
         "Age of the oldest record in the exporter's spool not yet delivered; 0 when there is none.", samples,
         [](const Sample& s) { return s.oldest_age_seconds; });
  Family(out, "xrayd_spool_appended_raw_bytes_total", "counter",
         "Segment bytes appended to the exporter's spool, before compression.", samples,
         [](const Sample& s) { return static_cast<double>(s.stats.appended_raw_bytes); });
  Family(out, "xrayd_spool_appended_disk_bytes_total", "counter",
         "Bytes appended to the exporter's spool as written (record headers and compressed payloads).", samples,
         [](const Sample& s) { return static_cast<double>(s.stats.appended_disk_bytes); });
}

}  // namespace xrayd::pipeline
