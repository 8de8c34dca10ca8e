// SamplingRules: the centralized sampling rules xrayd serve hands to the X-Ray SDKs
// (GetSamplingRules, Create/Update/DeleteSamplingRule), the quotas it answers GetSamplingTargets
// with, and what clients reported, for GetSamplingStatisticSummaries.
//
// The Default rule is always present (priority 10000, as X-Ray has it) and cannot be deleted.
// Rules are saved in the store's settings after every change and loaded at construction, so they
// survive restarts (a failed save is logged; the change stays in memory). Requests arrive already
// checked against the model (request_shapes.h); what is left here are the rules about state
// (unknown or duplicate names).
//
// Thread-safe: one mutex guards everything below it; no thread of its own. Borrows the store,
// which must outlive it.
#pragma once

#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "api/api_context.h"
#include "api/api_error.h"
#include "common/thread_annotations.h"
#include "store/trace_store.h"

namespace xrayd::api {

class SamplingRules {
 public:
  explicit SamplingRules(store::TraceStore& store);

  nlohmann::json List() XRAYD_EXCLUDES(mu_);
  // CreateSamplingRule's SamplingRule (create) or UpdateSamplingRule's SamplingRuleUpdate.
  ApiResult<nlohmann::json> Upsert(const nlohmann::json& input, bool create) XRAYD_EXCLUDES(mu_);
  ApiResult<nlohmann::json> Delete(const nlohmann::json& input) XRAYD_EXCLUDES(mu_);
  // Each rule's reservoir (per second) is shared among the clients that reported for it in the
  // last 10 s; FixedRate applies beyond it.
  nlohmann::json Targets(const nlohmann::json& input) XRAYD_EXCLUDES(mu_);
  // Per rule, the last complete 10-second window of what the SDKs reported (the current one while
  // it is the only one); rules with no report in the last two windows are left out.
  nlohmann::json StatisticSummaries() XRAYD_EXCLUDES(mu_);

 private:
  static constexpr double kStatisticsWindow = 10;
  struct Window {
    double start = 0;
    int64_t requests = 0, sampled = 0, borrowed = 0;
  };

  std::string NameOf(const nlohmann::json& input) const XRAYD_REQUIRES(mu_);  // by RuleName or RuleARN
  nlohmann::json Record(const std::string& name) XRAYD_REQUIRES(mu_);
  void CountReport(const std::string& name, const nlohmann::json& doc, double now) XRAYD_REQUIRES(mu_);
  void SaveLocked() XRAYD_REQUIRES(mu_);

  // Constant after construction.
  store::TraceStore& store_;

  mutable Mutex mu_;
  std::map<std::string, nlohmann::json> rules_ XRAYD_GUARDED_BY(mu_);
  std::map<std::string, double> created_ XRAYD_GUARDED_BY(mu_);
  std::map<std::string, double> modified_ XRAYD_GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, double>> clients_ XRAYD_GUARDED_BY(mu_);  // rule → client → last seen
  std::map<std::string, std::deque<Window>> statistics_ XRAYD_GUARDED_BY(mu_);  // rule → current, previous window
  double last_modification_ XRAYD_GUARDED_BY(mu_) = 0;
};

// Handlers (api_context.h) of the sampling operations.
ApiResult<nlohmann::json> GetSamplingRules(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetSamplingTargets(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> CreateSamplingRule(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> UpdateSamplingRule(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> DeleteSamplingRule(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetSamplingStatisticSummaries(ApiContext& ctx, const nlohmann::json& in);

}  // namespace xrayd::api
