// Parsers for Elastic Load Balancing access-log lines, as AWS documents them:
//
// Application Load Balancer ("Access log entries", one entry per line, fields separated by one space):
//   type time elb client:port target:port request_processing_time target_processing_time
//   response_processing_time elb_status_code target_status_code received_bytes sent_bytes "request"
//   "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name" "chosen_cert_arn"
//   matched_rule_priority request_creation_time "actions_executed" "redirect_url" "error_reason"
//   "target:port_list" "target_status_code_list" "classification" "classification_reason" conn_trace_id
// AWS adds fields at the end over time and tells readers to ignore fields they do not expect; older
// files end earlier. A line needs at least the fields up to ssl_protocol (kAlbMinFields); later ones
// are read when present.
//
// Classic Load Balancer (HTTP/HTTPS and TCP/SSL listeners):
//   time elb client:port backend:port request_processing_time backend_processing_time
//   response_processing_time elb_status_code backend_status_code received_bytes sent_bytes "request"
//   "user_agent" ssl_cipher ssl_protocol
//
// Quoted fields may hold spaces; inside them `\"` and `\\` are escapes for `"` and `\` (other
// backslashes are kept as they are). `-` (quoted or not) is a missing value: strings become empty,
// status codes 0, processing times -1 (AWS itself writes -1 when the load balancer could not
// dispatch the request or the target did not answer), byte counts 0.
//
// Which format a line is in is told by its first field: a timestamp (CLB) or a request type (ALB).
// Pure functions; thread-safe. A malformed line is an InvalidArgument error naming what was wrong;
// nothing here throws or reads past the line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace xrayd::lb {

enum class LogFormat { kAlb, kClb };

inline constexpr size_t kAlbMinFields = 16;  // type .. ssl_protocol
inline constexpr size_t kClbFields = 15;

// One access-log entry in either format (CLB leaves the ALB-only fields empty). Field names are
// AWS's; CLB's backend_* fields land in target_*.
struct LogEntry {
  LogFormat format = LogFormat::kAlb;
  std::string type;  // ALB: http https h2 grpcs ws wss; CLB: empty
  double time = 0;   // epoch seconds. ALB: the response was generated; CLB: the request arrived
  std::string elb;   // ALB: resource id "app/name/id"; CLB: the load balancer's name
  std::string client_ip;
  int client_port = 0;
  std::string target;  // "ip:port" as logged; empty when "-"
  double request_processing_time = -1, target_processing_time = -1, response_processing_time = -1;
  int elb_status_code = 0, target_status_code = 0;  // 0 when "-"
  int64_t received_bytes = 0, sent_bytes = 0;
  std::string request;  // "METHOD URL PROTOCOL"
  std::string user_agent, ssl_cipher, ssl_protocol;
  // ALB only.
  std::string target_group_arn, trace_id, domain_name, chosen_cert_arn, matched_rule_priority;
  std::optional<double> request_creation_time;
  std::string actions_executed, redirect_url, error_reason, target_port_list, target_status_code_list;
  std::string classification, classification_reason, conn_trace_id;
};

// Parses one line (without its line ending) in whichever format it is in. `out` is overwritten
// (its strings keep their capacity, so a reused entry parses without allocating).
Status ParseLogLine(std::string_view line, LogEntry* out);
Status ParseAlbLine(std::string_view line, LogEntry* out);
Status ParseClbLine(std::string_view line, LogEntry* out);

// "2018-07-02T22:23:00.186641Z" (what ELB writes: UTC, optional fraction) → epoch seconds.
std::optional<double> ParseLogTime(std::string_view text);

// The parts of a request field "GET http://host:80/path?q HTTP/1.1" ("- - - " for TCP listeners).
struct RequestLine {
  std::string_view method, url, protocol;
};
RequestLine SplitRequest(std::string_view request);

// The load balancer's name: "my-alb" from ALB's "app/my-alb/50dc6c495c0c9188"; CLB's field as is.
std::string_view LoadBalancerName(std::string_view elb);

// The Root of an X-Amzn-Trace-Id value ("Root=1-...;Parent=...;Sampled=1", "Self=...;Root=..."),
// or empty when there is none or it is malformed.
std::string_view TraceRoot(std::string_view trace_header);

}  // namespace xrayd::lb
