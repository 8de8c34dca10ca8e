#include "api/traces.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "api/filter_expression.h"
#include "api/json_input.h"
#include "api/request_schema.h"
#include "api/root_causes.h"
#include "api/trace_assembly.h"
#include "common/json_escape.h"
#include "common/log.h"
#include "segment/lb_join.h"
#include "segment/segment.h"

#include <simdjson.h>

namespace xrayd::api {
namespace {

using nlohmann::json;

constexpr size_t kPageSize = 100;
// Traces one GetTraceSummaries call examines at most; NextToken resumes the scan after them.
constexpr size_t kScanBudget = 20000;
// Rows one ListTraces call of a filtered listing reads at most.
constexpr size_t kMaxRowsPerRead = 800;

json ServiceId(const std::string& name, const std::string& type) {
  json s = {{"Name", name}, {"Names", json::array({name})}};
  if (!type.empty()) s["Type"] = type;
  return s;
}

json HttpJson(const store::TraceSummaryRow& r) {
  json http = json::object();
  if (!r.http_url.empty()) http["HttpURL"] = r.http_url;
  if (r.http_status) http["HttpStatus"] = *r.http_status;
  if (!r.http_method.empty()) http["HttpMethod"] = r.http_method;
  if (!r.user_agent.empty()) http["UserAgent"] = r.user_agent;
  if (!r.client_ip.empty()) http["ClientIp"] = r.client_ip;
  return http;
}

json AnnotationsJson(const store::TraceSummaryRow& r) {
  json annotations = json::object();
  for (const auto& a : r.annotations) {
    json value = json::parse(a.value_json, nullptr, false);
    json av = json::object();
    if (value.is_string()) av["StringValue"] = value;
    else if (value.is_boolean()) av["BooleanValue"] = value;
    else if (value.is_number()) av["NumberValue"] = value;
    else continue;
    json entry = {{"AnnotationValue", av}, {"ServiceIds", json::array()}};
    if (!a.service.empty()) entry["ServiceIds"].push_back(ServiceId(a.service, ""));
    if (!annotations.contains(a.key)) annotations[a.key] = json::array();
    annotations[a.key].push_back(entry);
  }
  return annotations;
}

json SummaryJson(const store::TraceSummaryRow& r) {
  json services = json::array();
  for (const auto& [name, type] : r.services) services.push_back(ServiceId(name, type));
  json users = json::array();
  if (!r.user.empty())
    users.push_back({{"UserName", r.user}, {"ServiceIds", json::array({ServiceId(r.root_name, r.root_origin)})}});
  const double start = r.root_start.value_or(r.start_time);
  json s = {
      {"Id", r.trace_id},           {"StartTime", start},
      {"Duration", r.end_time - r.start_time},
      {"HasFault", r.has_fault},    {"HasError", r.has_error},
      {"HasThrottle", r.has_throttle}, {"IsPartial", r.is_partial},
      {"Http", HttpJson(r)},        {"Annotations", AnnotationsJson(r)},
      {"Users", users},             {"ServiceIds", services},
      {"ResourceARNs", json::array()}, {"InstanceIds", json::array()},
      {"AvailabilityZones", json::array()}, {"FaultRootCauses", json::array()},
      {"ErrorRootCauses", json::array()}, {"ResponseTimeRootCauses", json::array()},
      {"Revision", r.revision},     {"MatchedEventTime", start},
  };
  if (r.root_start && r.root_end) s["ResponseTime"] = *r.root_end - *r.root_start;
  if (!r.root_name.empty()) s["EntryPoint"] = ServiceId(r.root_name, r.root_origin);
  return s;
}

// The facts root causes are found in: the trace's documents with streamed (independent) subsegment
// documents merged into their parents (AssembleTrace). A trace without such a document (the usual
// case) skips the assembly's JSON parse and re-dump of every document: its documents, put under
// their load balancer (as AssembleTrace does), give the same facts.
std::vector<segment::Facts> FactsOfTrace(segment::Parser& parser, const std::vector<store::StoredSegment>& segs) {
  std::vector<segment::Facts> facts;
  auto add = [&](std::string_view doc) {
    if (!parser.FactsOf(doc, &facts.emplace_back()).ok()) facts.pop_back();
  };
  const bool streamed = std::any_of(segs.begin(), segs.end(), [](const auto& s) { return s.independent_subsegment; });
  if (streamed) {
    for (const auto& s : AssembleTrace(segs).segments) add(s.document);
    return facts;
  }
  std::vector<std::string> docs;
  docs.reserve(segs.size());
  for (const auto& s : segs) docs.push_back(s.doc);
  for (const auto& doc : segment::JoinLoadBalancer(std::move(docs))) add(doc);
  return facts;
}

// Adds the root causes found in a trace's stored segments to its summary.
void AddRootCauses(segment::Parser& parser, const std::vector<store::StoredSegment>& segs, json& summary) {
  RootCauses causes = FindRootCauses(FactsOfTrace(parser, segs));
  summary["FaultRootCauses"] = std::move(causes.fault);
  summary["ErrorRootCauses"] = std::move(causes.error);
  summary["ResponseTimeRootCauses"] = std::move(causes.response_time);
}

// The summaries of a page's matching rows, with their root causes: every trace's segments read in
// one store call (one read transaction).
ApiResult<json> PageSummaries(store::TraceStore& store, const std::vector<store::TraceSummaryRow>& rows) {
  std::vector<std::string> ids;
  ids.reserve(rows.size());
  for (const auto& r : rows) ids.push_back(r.trace_id);
  auto segs = store.SegmentsOfTraces(ids);
  if (!segs) return ApiError::Internal("reading the page's segments", segs.error());
  segment::Parser parser;
  json summaries = json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    summaries.push_back(SummaryJson(rows[i]));
    AddRootCauses(parser, (*segs)[i], summaries.back());
  }
  return summaries;
}

// What validating PutTraceSegments documents takes, kept between requests: a segment::Parser
// allocates for the largest document (64 KB: ~0.8 MB of simdjson buffers) when it is made, and
// `padded` is the copy simdjson reads (a document plus segment::kPadding). Made per request, these
// were a malloc (or mmap) of the parser's buffers per call and a reallocation per document
// (appending the padding to a string of exactly the document's size).
struct Validator {
  segment::Parser parser;
  std::string padded;
};

// Validators not in use. At most kKeep are kept (memory: ~0.8 MB each at most); a request finding
// none makes its own. Handlers run on many threads but only as many validate at once as there are
// cores, so a few suffice.
class ValidatorPool {
 public:
  static ValidatorPool& Instance() {
    static ValidatorPool pool;
    return pool;
  }
  std::unique_ptr<Validator> Take() {
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        auto v = std::move(free_.back());
        free_.pop_back();
        return v;
      }
    }
    return std::make_unique<Validator>();
  }
  void Give(std::unique_ptr<Validator> v) {
    std::lock_guard lock(mu_);
    if (free_.size() < kKeep) free_.push_back(std::move(v));
  }

 private:
  static constexpr size_t kKeep = 4;
  std::mutex mu_;
  std::vector<std::unique_ptr<Validator>> free_;
};

// One document of PutTraceSegments: empty when stored, else its UnprocessedTraceSegments entry.
std::optional<json> CheckDocument(Validator& validator, const std::string& doc) {
  validator.padded.assign(doc);
  validator.padded.append(segment::kPadding, '\0');
  const segment::Verdict v = validator.parser.Validate(validator.padded.data(), doc.size());
  if (!v.reject) return std::nullopt;
  // The rejected document may be anything: parse it for its id only within JSON limits (nlohmann
  // recurses per nesting level).
  json bad = CheckJsonLimits(doc, {doc.size(), 64}) ? json() : json::parse(doc, nullptr, false);
  std::string id = bad.is_object() && bad.contains("id") && bad["id"].is_string() ? bad["id"].get<std::string>() : "";
  return json{{"Id", id}, {"ErrorCode", "InvalidSegment"}, {"Message", std::string(v.detail)}};
}

// GetTraceSummaries' Sampling (X-Ray: "set to true to get summaries for only a subset of available
// traces") with its SamplingStrategy {Name, Value}: FixedRate keeps the matches whose trace id hashes
// below Value (0..1); PartialScan examines only the traces whose id hashes below Value, and
// TracesProcessedCount counts those alone. The hash makes the subset stable: the same traces on
// every page and every call, so NextToken paging and Grafana's four quarter-range queries agree.
// Sampling false or absent, no strategy, or a Value of 1 or more: every trace.
struct Sampling {
  double fraction = 1;
  bool partial_scan = false;
  bool Keeps(std::string_view trace_id) const {
    if (fraction >= 1) return true;
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : trace_id) h = (h ^ c) * 1099511628211ull;
    return static_cast<double>(h >> 11) / static_cast<double>(1ull << 53) < fraction;
  }
};

Sampling SamplingOf(const json& in) {
  Sampling s;
  auto strategy = in.find("SamplingStrategy");
  if (!in.value("Sampling", false) || strategy == in.end() || !strategy->is_object()) return s;
  s.fraction = std::max(0.0, strategy->value("Value", 1.0));
  s.partial_scan = strategy->value("Name", "") == "PartialScan";
  return s;
}

}  // namespace

namespace {

// Reads the one body shape of PlainPutDocuments (traces.h) straight into its documents, for large
// bodies: no parser buffers (simdjson's DOM takes a padded copy of the body and a string buffer of
// its size, touched, plus tape and index space of 12 times its size: ~4 times a 7.5 MB body held
// per request). Anything unusual — an escaped key, a lone surrogate, a control byte —
// answers false and the general path decides, so this accepts a subset of what it accepts, with
// the same documents (put_documents_test.cc). UTF-8 is checked once for the whole body beforehand.
class PutBodyReader {
 public:
  explicit PutBodyReader(std::string_view s) : s_(s) {}

  bool Documents(std::vector<std::string>& docs) {
    if (!Eat('{') || !Key() || !Eat(':') || !Eat('[')) return false;
    if (!Eat(']')) {
      do {
        if (!String(docs.emplace_back())) return false;
      } while (Eat(','));
      if (!Eat(']')) return false;
    }
    if (!Eat('}')) return false;
    SkipSpace();
    return i_ == s_.size();
  }

 private:
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool Eat(char c) {
    SkipSpace();
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  bool Key() {
    constexpr std::string_view kKey = "\"TraceSegmentDocuments\"";
    SkipSpace();
    if (s_.substr(i_, kKey.size()) != kKey) return false;
    i_ += kKey.size();
    return true;
  }
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // The 4 hex digits of a \u escape at i_ (past "\u").
  bool Hex4(uint32_t* v) {
    if (s_.size() - i_ < 4) return false;
    *v = 0;
    for (int k = 0; k < 4; ++k) {
      const int h = Hex(s_[i_ + k]);
      if (h < 0) return false;
      *v = *v * 16 + static_cast<uint32_t>(h);
    }
    i_ += 4;
    return true;
  }
  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  // \uXXXX (at i_, past the backslash and 'u'), a surrogate pair as one code point.
  bool Unicode(std::string& out) {
    uint32_t cp = 0;
    if (!Hex4(&cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a low surrogate first
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      uint32_t low = 0;
      if (s_.substr(i_, 2) != "\\u") return false;
      i_ += 2;
      if (!Hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(out, cp);
    return true;
  }
  // Whether any of the n bytes is a control byte (< 0x20, which JSON strings must escape): eight at
  // a time (a byte below 0x20 borrows; the borrow only ever spreads from such a byte).
  static bool HasControlByte(const char* p, size_t n) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
      uint64_t x;
      std::memcpy(&x, p + k, 8);
      if ((x - 0x2020202020202020ull) & ~x & 0x8080808080808080ull) return true;
    }
    for (; k < n; ++k)
      if (static_cast<unsigned char>(p[k]) < 0x20) return true;
    return false;
  }
  // The closing quote of the string starting at i_: the first '"' after an even number of
  // backslashes (memchr: documents are JSON in JSON, one escaped quote every few bytes).
  std::optional<size_t> ClosingQuote() const {
    size_t at = i_;
    while (true) {
      const void* q = std::memchr(s_.data() + at, '"', s_.size() - at);
      if (q == nullptr) return std::nullopt;
      at = static_cast<size_t>(static_cast<const char*>(q) - s_.data());
      size_t backslashes = 0;
      while (at - backslashes > i_ && s_[at - 1 - backslashes] == '\\') ++backslashes;
      if (backslashes % 2 == 0) return at;
      ++at;
    }
  }
  // One string, unescaped into `out`, sized once.
  bool String(std::string& out) {
    if (!Eat('"')) return false;
    const std::optional<size_t> end = ClosingQuote();
    if (!end || HasControlByte(s_.data() + i_, *end - i_)) return false;
    out.reserve(*end - i_);  // unescaping never lengthens
    while (i_ < *end) {
      const void* b = std::memchr(s_.data() + i_, '\\', *end - i_);
      const size_t run_end = b == nullptr ? *end : static_cast<size_t>(static_cast<const char*>(b) - s_.data());
      out.append(s_.data() + i_, run_end - i_);
      i_ = run_end;
      if (i_ == *end) break;
      const char e = s_[i_ + 1];  // before *end: a backslash just before it would escape it
      i_ += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u':
          if (!Unicode(out)) return false;
          break;
        default: return false;
      }
    }
    if (i_ != *end) return false;  // a \u escape ran over the closing quote
    ++i_;
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// Bodies from this size on are read in place (PutBodyReader): simdjson's DOM would hold about twice
// the body more (a padded copy and a string buffer) while it runs. Smaller ones go through the DOM,
// which reads the usual 50-document body in about half the time (memory is no concern there).
constexpr size_t kReadInPlaceBytes = 1 << 20;

std::optional<std::vector<std::string>> DomPutDocuments(std::string_view body) {
  simdjson::dom::parser parser;  // per call: its buffers are about the body's size, not kept after
  simdjson::dom::element root;
  if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS) return std::nullopt;
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS || object.size() != 1) return std::nullopt;
  const auto member = *object.begin();
  simdjson::dom::array list;
  if (member.key != "TraceSegmentDocuments" || member.value.get_array().get(list) != simdjson::SUCCESS)
    return std::nullopt;
  std::vector<std::string> docs;
  docs.reserve(list.size());
  for (simdjson::dom::element e : list) {
    std::string_view text;
    if (e.get_string().get(text) != simdjson::SUCCESS) return std::nullopt;
    docs.emplace_back(text);  // CheckDocument() validates a padded copy: no room kept here
  }
  return docs;
}

}  // namespace

std::optional<std::vector<std::string>> PlainPutDocuments(std::string_view body, size_t max_bytes) {
  if (body.size() > max_bytes) return std::nullopt;
  if (body.size() < kReadInPlaceBytes) return DomPutDocuments(body);
  if (!simdjson::validate_utf8(body.data(), body.size())) return std::nullopt;
  std::vector<std::string> docs;
  docs.reserve(body.size() / 1024);
  if (!PutBodyReader(body).Documents(docs)) return std::nullopt;
  return docs;
}

ApiResult<json> PutTraceSegments(ApiContext& ctx, const json& in) {
  std::vector<std::string> docs;
  docs.reserve(in["TraceSegmentDocuments"].size());
  for (const auto& d : in["TraceSegmentDocuments"]) docs.push_back(d.get<std::string>());
  return PutDocuments(ctx, std::move(docs));
}

ApiResult<json> PutDocuments(ApiContext& ctx, std::vector<std::string> docs) {
  std::vector<std::string> accepted;
  accepted.reserve(docs.size());
  json unprocessed = json::array();
  {
    std::unique_ptr<Validator> validator = ValidatorPool::Instance().Take();
    for (std::string& doc : docs) {
      if (auto rejected = CheckDocument(*validator, doc)) unprocessed.push_back(std::move(*rejected));
      else accepted.push_back(std::move(doc));
    }
    ValidatorPool::Instance().Give(std::move(validator));
  }
  if (ctx.sink == nullptr) {
    auto stored = ctx.store.Append(accepted);
    if (!stored) return ApiError::Internal("storing segments", stored.error());
    return json{{"UnprocessedTraceSegments", unprocessed}};
  }
  // The pipeline queues (or spools) them; only when no exporter could keep any is the call refused,
  // as ThrottledException, which AWS SDKs retry (a partial refusal is counted per exporter, dropped).
  if (!accepted.empty() && ctx.sink->Offer(accepted) == 0)
    return ApiError{429, "ThrottledException", "xrayd's export queues are full; retry later"};
  return json{{"UnprocessedTraceSegments", unprocessed}};
}

ApiResult<json> GetTraceSummaries(ApiContext& ctx, const json& in) {
  const double start = *ParseTimestamp(in["StartTime"]);
  const double end = *ParseTimestamp(in["EndTime"]);
  if (end < start) return ApiError::Invalid("EndTime is before StartTime");
  auto filter = Filter::Parse(in.value("FilterExpression", ""));
  if (!filter) return ApiError::Invalid("FilterExpression: " + filter.error().message);
  store::ListQuery q;
  q.start_time = start;
  q.end_time = end;
  q.by_trace_id_time = in.value("TimeRangeType", "TraceId") == "TraceId";
  if (in.contains("NextToken")) q.cursor = in["NextToken"].get<std::string>();  // the store's opaque cursor
  // The store reads only traces this condition's indexes name when they are few (store/trace_query.h);
  // the whole filter still decides below.
  q.condition = filter->NecessaryCondition();
  // Scan forward in store order, keeping matches, until a page is full, the range is exhausted,
  // or the scan budget is spent (then NextToken resumes the scan).
  const Sampling sampling = SamplingOf(in);
  std::vector<store::TraceSummaryRow> matched;
  size_t scanned = 0, processed = 0;
  bool exhausted = false;
  // Rows read per store call: what the page still needs, then more (up to kMaxRowsPerRead) while the
  // filter keeps few of them. A filter its index answers exactly keeps every row: one page's rows.
  size_t want = kPageSize;
  while (matched.size() < kPageSize && scanned < kScanBudget) {
    q.limit = filter->IsEmpty() ? kPageSize - matched.size() : std::max(kPageSize - matched.size(), want);
    want = std::min(want * 2, kMaxRowsPerRead);
    store::ListPlan plan;
    auto rows = ctx.store.ListTraces(q, &plan);
    if (!rows && rows.error().message == store::kCursorBeforeUpgrade)
      return ApiError::Invalid("NextToken is not valid: " + rows.error().message);
    if (!rows) return ApiError::FromStore("NextToken", "listing traces", rows.error());
    if (q.condition)
      XLOG_DEBUG("GetTraceSummaries: {} rows by {} ({} candidates)", rows->size(),
                 plan.flag_walk ? "flag index" : plan.by_index ? "index" : "scan", plan.candidates);
    for (auto& row : *rows) {
      ++scanned;
      q.cursor = store::ListCursorAfter(q, row);
      const bool sampled = sampling.Keeps(row.trace_id);
      if (!sampled && sampling.partial_scan) continue;
      ++processed;
      if (sampled && filter->Matches(row)) matched.push_back(std::move(row));
      if (matched.size() >= kPageSize) break;
    }
    if (rows->size() < q.limit && matched.size() < kPageSize) {
      exhausted = true;
      break;
    }
  }
  auto summaries = PageSummaries(ctx.store, matched);
  if (!summaries) return summaries.error();
  json out = json::object();
  if (!exhausted) out["NextToken"] = q.cursor;
  out["TraceSummaries"] = std::move(*summaries);
  out["ApproximateTime"] = NowSeconds();
  out["TracesProcessedCount"] = processed;
  return out;
}

ApiResult<std::string> BatchGetTraces(ApiContext& ctx, const json& in) {
  std::vector<std::string> ids;
  for (const auto& id : in["TraceIds"]) ids.push_back(id.get<std::string>());
  auto stored = ctx.store.SegmentsOfTraces(ids);  // one snapshot for all
  if (!stored) return ApiError::Internal("reading the traces' segments", stored.error());
  // The body is written directly: the documents are most of it, and nlohmann's escaper took more
  // time than the store. Ids come from the parsed request and documents from the store's validated
  // text, so both are valid UTF-8 (what the escaper requires).
  std::string body = R"({"Traces":[)";
  bool first = true;
  for (size_t i = 0; i < ids.size(); ++i) {
    if ((*stored)[i].empty()) continue;
    AssembledTrace t = AssembleTrace((*stored)[i]);
    body += first ? R"({"Id":)" : R"(,{"Id":)";
    first = false;
    AppendJsonString(body, ids[i]);
    body += R"(,"Duration":)";
    body += json(t.duration).dump();  // the same number text as every other response
    body += R"(,"LimitExceeded":false,"Segments":[)";
    for (size_t k = 0; k < t.segments.size(); ++k) {
      body += k == 0 ? R"({"Id":)" : R"(,{"Id":)";
      AppendJsonString(body, t.segments[k].id);
      body += R"(,"Document":)";
      AppendJsonString(body, t.segments[k].document);
      body += '}';
    }
    body += "]}";
  }
  body += R"(],"UnprocessedTraceIds":[]})";
  return body;
}

}  // namespace xrayd::api
