// SpoolGauges: every open spool's size, backlog and age on /metrics, labelled by exporter
// (xrayd_spool_disk_bytes, xrayd_spool_pending_records, xrayd_spool_oldest_record_age_seconds, and
// the counters xrayd_spool_appended_raw_bytes_total / xrayd_spool_appended_disk_bytes_total, whose
// ratio is the compression). Segment counts are the exporter's own (xrayd_exporter_spooled_segments).
//
// One process-wide MetricsSource, registered with GlobalMetrics() on first use and never destroyed
// (so a scrape never meets a dead source). An Exporter Add()s its spool once opened and Remove()s
// it before closing it. Owns no thread. Thread-safe; a scrape renders under mu_, so Remove() waits
// for a scrape in progress and no scrape reads a closed spool. Lock order: the registry's lock,
// then mu_, then the spool's own.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/thread_annotations.h"
#include "pipeline/spool.h"
#include "telemetry/metrics.h"

namespace xrayd::pipeline {

class SpoolGauges final : public MetricsSource {
 public:
  static SpoolGauges& Instance();

  // `spool` must stay open until Remove(spool).
  void Add(std::string exporter, const Spool* spool) XRAYD_EXCLUDES(mu_);
  void Remove(const Spool* spool) XRAYD_EXCLUDES(mu_);
  void RenderMetrics(std::string& out) const override XRAYD_EXCLUDES(mu_);

 private:
  SpoolGauges() = default;
  mutable Mutex mu_;
  std::vector<std::pair<std::string, const Spool*>> spools_ XRAYD_GUARDED_BY(mu_);
};

}  // namespace xrayd::pipeline
