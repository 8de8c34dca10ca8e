// Centralized sampling: sampling rules and reservoir quotas from the X-Ray API, reached through the
// daemon's TCP port (AWS's daemon and xrayd both relay these calls, signed, to X-Ray).
//
// Wire format (plain HTTP/1.1 POST, JSON, no signing — the daemon signs):
//   POST /GetSamplingRules   {} then {"NextToken": ...} while the answer has one
//        → {"SamplingRuleRecords": [{"SamplingRule": {RuleName, RuleARN, ResourceARN, Priority, FixedRate,
//           ReservoirSize, ServiceName, ServiceType, Host, HTTPMethod, URLPath, Version, Attributes},
//           "CreatedAt": ..., "ModifiedAt": ...}], "NextToken": ...}
//   POST /SamplingTargets    {"SamplingStatisticsDocuments": [{RuleName, ClientID, Timestamp, RequestCount,
//                              SampledCount, BorrowCount}]}
//        → {"SamplingTargetDocuments": [{RuleName, FixedRate, ReservoirQuota, ReservoirQuotaTTL, Interval}],
//           "LastRuleModification": ..., "UnprocessedStatistics": [...]}
// Timestamps in answers may be epoch seconds (numbers, as the JSON protocol sends them) or ISO 8601 strings.
//
// Behaviour, as the other X-Ray SDKs (Node, Python, Go, Java) have it:
//  * Rules are fetched at start and then every 5 minutes (plus up to 5 s of jitter); a rule is used only
//    when Version is 1, ResourceARN is "*" and Attributes is empty (the SDK cannot evaluate the others).
//    They are tried in order of Priority, then RuleName; the rule named "Default" matches everything and
//    comes last. A rule matches when ServiceName, ServiceType, Host, HTTPMethod and URLPath all match the
//    request ('*' and '?' wildcards, case-insensitive); an empty request attribute matches any pattern.
//  * Per rule: while a reservoir quota from /SamplingTargets is fresh (ReservoirQuotaTTL not passed), the
//    first ReservoirQuota requests of each second are sampled; while there is none (before the first
//    targets answer, or after its TTL), the rule may borrow one request per second when its
//    ReservoirSize is > 0. Beyond the reservoir, FixedRate (the target's once it has one) decides.
//  * About every 10 s (plus up to 0.1 s of jitter), each rule that matched requests since its last report
//    sends RequestCount/SampledCount/BorrowCount (SampledCount includes borrowed requests: the API
//    defines it as "requests recorded") and receives its target. A target's Interval (seconds) sets how
//    often that rule reports: every max(1, Interval / 10) rounds. A LastRuleModification newer than the
//    last rules fetch triggers an immediate rules fetch.
//  * Fallback to the local sampler (options.fallback): until rules were fetched, when no centralized rule
//    matches, and when the rules were not refreshed for rules_ttl_seconds (1 h). A failed fetch keeps the
//    rules already held until then (a short daemon outage does not change sampling), and while no rules
//    are held a failed first fetch is retried every targets interval rather than every 5 minutes.
//
// Thread safety: ShouldSample may be called concurrently from any thread. It never does I/O: it copies
// the current rule set under a short lock, then takes the matched rule's own short lock.
//
// Threads: unless options.start_poller is false, the sampler owns one poller thread, started by the
// constructor, that does all HTTP calls. The destructor wakes it (condition variable), waits for an HTTP
// call in flight to finish (bounded by options.http_timeout per call) and joins it; nothing else needs
// to be stopped first. ShouldSample must not run concurrently with the destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "xray/emitter.h"
#include "xray/sampling.h"

namespace xray {

struct CentralizedSamplerOptions {
  std::string host = "127.0.0.1";  // the daemon's TCP address
  uint16_t port = 2000;
  std::shared_ptr<Sampler> fallback;  // nullptr: LocalSampler() (1 request/s + 5 %)

  std::chrono::milliseconds rules_interval{std::chrono::minutes(5)};
  std::chrono::milliseconds rules_jitter{5000};  // up to this much added to each rules interval
  std::chrono::milliseconds targets_interval{10000};
  std::chrono::milliseconds targets_jitter{100};
  std::chrono::milliseconds http_timeout{2000};  // connect, read and write, per call
  int64_t rules_ttl_seconds = 3600;              // rules not refreshed for this long are not used
  bool start_poller = true;                      // false: no thread; call RefreshRules/ReportStatistics
  std::function<int64_t()> clock;                // wall-clock epoch seconds; injectable for tests

  // The TCP part of a daemon address (AWS_XRAY_DAEMON_ADDRESS), other fields at their defaults.
  static CentralizedSamplerOptions ForDaemon(const DaemonAddress& address);
};

class CentralizedSampler final : public Sampler {
 public:
  explicit CentralizedSampler(CentralizedSamplerOptions options = {});
  ~CentralizedSampler() override;
  CentralizedSampler(const CentralizedSampler&) = delete;
  CentralizedSampler& operator=(const CentralizedSampler&) = delete;

  bool ShouldSample(const SamplingRequest& request) override;

  // One GetSamplingRules round (all pages). On success replaces the rule set (rules kept by name keep
  // their reservoir state and unreported statistics) and returns true; on any failure (connection,
  // HTTP status, malformed answer) keeps the current rules and returns false. Blocking; the poller
  // calls it, tests and applications that want rules before serving may call it too.
  bool RefreshRules();
  // One SamplingTargets round for the rules due to report; true when there was nothing to report or
  // the call was answered with 200. Statistics sent in a failed call are lost (as in the other SDKs).
  bool ReportStatistics();

  // True while centralized rules are held and not expired (ShouldSample consults them).
  bool HasRules() const;
  // Rule names in matching order (empty until rules were fetched).
  std::vector<std::string> RuleNames() const;
  // 24 lower-case hex digits, random per sampler (normally one per process).
  const std::string& client_id() const { return client_id_; }

 private:
  struct RuleState;
  struct Rule;
  struct RuleSet;

  std::shared_ptr<const RuleSet> Snapshot() const;
  bool Decide(const Rule& rule, int64_t now);
  std::optional<std::string> Post(const char* path, const std::string& body, std::string* error) const;
  void PollLoop();

  // Constant after construction.
  const CentralizedSamplerOptions options_;
  const std::shared_ptr<Sampler> fallback_;
  const std::function<int64_t()> clock_;
  const std::string client_id_;

  mutable std::mutex rules_mu_;
  std::shared_ptr<const RuleSet> rules_;  // guarded by rules_mu_; nullptr until the first fetch
  double rules_fetched_wall_ = 0;          // guarded by rules_mu_; real epoch seconds of the last fetch

  std::mutex poll_mu_;  // serializes RefreshRules/ReportStatistics and guards the flags below
  bool failing_ = false;  // the last call failed (log only the first failure of a run)

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;        // guarded by stop_mu_
  bool refresh_wanted_ = false;  // guarded by stop_mu_; set when targets say the rules changed
  std::thread poller_;           // runs PollLoop when options_.start_poller
};

}  // namespace xray
