// Turns one load-balancer access-log entry into an X-Ray segment document for the load balancer.
//
//   name        SynthesisOptions::name, else the load balancer's name (ALB "app/NAME/id" → NAME)
//   origin      AWS::ElasticLoadBalancingV2::LoadBalancer (ALB), AWS::ElasticLoadBalancing::LoadBalancer (CLB)
//   trace_id    the Root of the entry's trace_id field; an entry without one (every CLB entry, ALB
//               entries without the header) gets a trace id derived from the line, so the load
//               balancer's own answers (its 502/503/504s above all) still show, alone
//   id          derived from the line: reading a log file again replaces, never duplicates
//   start/end   ALB: request_creation_time .. time; CLB: time .. time + the three processing times
//   http        request {method, url, client_ip, user_agent}, response {status = elb_status_code,
//               content_length = sent_bytes}
//   flags       elb_status_code 5xx: fault; 429: error + throttle; other 4xx: error
//   subsegment  the target's part when the entry names a target: name "ip:port", namespace remote,
//               from start + request_processing_time for target_processing_time; when the target never
//               answered (target_status_code "-", processing time -1) it ends with the load balancer
//               and is a fault. Its http.response.status is target_status_code.
//   aws         "elastic_load_balancing": every other field of the entry that has a value.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "lb/access_log.h"

namespace xrayd::lb {

struct SynthesisOptions {
  std::string name;  // empty: the load balancer's own name from each entry
};

// Writes the document to `out` (cleared first). InvalidArgument when the entry's times fall outside
// what a segment may carry (segment/segment.h: 2000..9999).
Status SynthesizeSegment(const LogEntry& entry, std::string_view line, const SynthesisOptions& options,
                       std::string* out);

// The ids' source: a stable 64-bit hash of the line (8 bytes per multiply-xorshift step), and from it one id per `seed`
// (splitmix64's finalizer), so the line is hashed once.
uint64_t LineHash(std::string_view line);
uint64_t DeriveHash(uint64_t line_hash, uint64_t seed);

}  // namespace xrayd::lb
