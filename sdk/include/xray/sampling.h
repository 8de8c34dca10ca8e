// Local sampling: which requests get a full trace.
//
// Rules use the documented local rules file, version 2 (version 1, with service_name instead of host,
// is read too):
//
//   {"version": 2,
//    "rules": [{"description": "...", "host": "*", "http_method": "GET", "url_path": "/api/*",
//               "fixed_target": 1, "rate": 0.1}],
//    "default": {"fixed_target": 1, "rate": 0.05}}
//
// Rules are tried in order; the first whose host, http_method and url_path all match (wildcards '*' and
// '?', case-insensitive) decides, else the default rule. A rule samples its first `fixed_target`
// requests of every wall-clock second (its reservoir), then `rate` of the rest at random.
//
// Centralized sampling (rules and quotas from the X-Ray API via the daemon's TCP port) is in
// centralized_sampling.h; it is the Recorder's default and uses a LocalSampler as its fallback.
//
// Thread safety: ShouldSample may be called concurrently; each rule's reservoir is one atomic word.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xray {

struct SamplingRequest {
  std::string_view host;          // Host header without the port
  std::string_view http_method;
  std::string_view url_path;
  std::string_view service_name;  // only consulted by version-1 rules and centralized rules
  std::string_view service_type;  // the segment's origin, e.g. "AWS::EC2::Instance"; centralized rules only
};

struct SamplingRule {
  std::string description;
  std::string host = "*";
  std::string http_method = "*";
  std::string url_path = "*";
  std::string service_name = "*";  // version 1 only
  int64_t fixed_target = 1;        // requests per second always sampled
  double rate = 0.05;              // fraction of the rest

  bool Matches(const SamplingRequest& request) const;
};

// '*' matches any run of characters, '?' exactly one; ASCII case is ignored.
bool WildcardMatch(std::string_view pattern, std::string_view text);

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual bool ShouldSample(const SamplingRequest& request) = 0;
};

class LocalSampler final : public Sampler {
 public:
  using Clock = std::function<int64_t()>;  // wall-clock seconds; injectable for tests

  // The SDK default: no rules, default rule fixed_target 1 and rate 0.05.
  LocalSampler();
  LocalSampler(std::vector<SamplingRule> rules, SamplingRule default_rule, Clock clock = {});

  // Parses a rules document. On failure returns nullopt and sets *error to what is wrong.
  static std::optional<std::vector<SamplingRule>> ParseRules(std::string_view json, SamplingRule* default_rule,
                                                             std::string* error);
  // ParseRules + construct; nullptr and *error on failure.
  static std::unique_ptr<LocalSampler> FromJson(std::string_view json, std::string* error, Clock clock = {});

  bool ShouldSample(const SamplingRequest& request) override;

 private:
  struct Reservoir {
    // High 40 bits: the second; low 24 bits: requests taken in that second.
    std::atomic<uint64_t> state{0};
    bool Take(int64_t now, int64_t quota);
  };
  bool Decide(const SamplingRule& rule, Reservoir& reservoir);

  // Constant after construction.
  const std::vector<SamplingRule> rules_;
  const SamplingRule default_rule_;
  const Clock clock_;

  std::unique_ptr<Reservoir[]> reservoirs_;  // one per rule, then the default's; atomic inside
};

}  // namespace xray
