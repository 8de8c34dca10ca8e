// The load-balancer join: puts a trace's first service under the load balancer that forwarded to it.
//
// An Application Load Balancer adds X-Amzn-Trace-Id (a Root, no Parent) and sends nothing to X-Ray,
// so the first service's segment has no parent_id. xrayd makes a segment for the load balancer from
// its access log (src/lb/): origin kAlbOrigin or kClbOrigin, with the target's part as a subsegment in
// the "remote" namespace. Logs arrive minutes after the traces (S3 delivery is every 5 minutes), so
// the two are joined when a trace is read, not when it is stored:
//
//   For each trace among `docs` that holds a load-balancer segment (the earliest-starting one when
//   there are several) with a remote target subsegment, the trace's first service segment — a
//   segment (not an independent subsegment), no parent_id, not a load-balancer segment, earliest
//   start_time, ties broken by id — gets parent_id = that target subsegment's id.
//
// Everything else is returned unchanged and in the same order; documents that do not parse are kept
// as they are. Traces without a load-balancer segment cost one substring scan per document (no JSON
// parse), so the graph readers can apply it to every window. Pure function; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace xrayd::segment {

inline constexpr std::string_view kAlbOrigin = "AWS::ElasticLoadBalancingV2::LoadBalancer";
inline constexpr std::string_view kClbOrigin = "AWS::ElasticLoadBalancing::LoadBalancer";

// True for the origins above.
bool IsLoadBalancerOrigin(std::string_view origin);

// `docs`: segment documents of one or more whole traces, in any order.
std::vector<std::string> JoinLoadBalancer(std::vector<std::string> docs);

}  // namespace xrayd::segment
