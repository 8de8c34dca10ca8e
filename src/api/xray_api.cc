#include "api/xray_api.h"
#include "ui/operation_percentiles.h"
#include "ui/web_ui.h"

#include <httplib.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "api/filter_expression.h"
#include "api/root_causes.h"
#include "api/service_graph.h"
#include "api/trace_assembly.h"
#include "common/log.h"
#include "ingest/datagram.h"

namespace xrayd::api {
namespace {

using nlohmann::json;

constexpr size_t kPageSize = 100;
constexpr size_t kMaxBody = 8 * 1024 * 1024;

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An API error in the REST-JSON shape.
struct ApiError {
  int status;
  std::string type;
  std::string message;
};

void Reply(httplib::Response& res, const json& body) {
  res.status = 200;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void ReplyError(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_header("x-amzn-ErrorType", e.type);
  res.set_content(json{{"__type", e.type}, {"message", e.message}, {"Message", e.message}}.dump(), "application/json");
}

ApiError Invalid(const std::string& message) { return {400, "InvalidRequestException", message}; }

// Request bodies: empty means {} where the model allows it.
json ParseBody(const httplib::Request& req) {
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Invalid("request body is not a JSON object");
  return j;
}

// Timestamps arrive as epoch seconds (number or numeric string) or ISO 8601.
double ParseTimestamp(const json& v, const char* field) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    try {
      size_t used = 0;
      double d = std::stod(s, &used);
      if (used == s.size()) return d;
    } catch (...) {
    }
    std::tm tm{};
    double frac = 0;
    if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr) {
      if (auto dot = s.find('.'); dot != std::string::npos) frac = std::atof(s.c_str() + dot) ;
      return static_cast<double>(timegm(&tm)) + (frac < 1 ? frac : 0);
    }
  }
  throw Invalid(std::string(field) + " is not a timestamp");
}

json ServiceId(const std::string& name, const std::string& type) {
  json s = {{"Name", name}, {"Names", json::array({name})}};
  if (!type.empty()) s["Type"] = type;
  return s;
}

json SummaryJson(const store::TraceSummaryRow& r) {
  json http = json::object();
  if (!r.http_url.empty()) http["HttpURL"] = r.http_url;
  if (r.http_status) http["HttpStatus"] = *r.http_status;
  if (!r.http_method.empty()) http["HttpMethod"] = r.http_method;
  if (!r.user_agent.empty()) http["UserAgent"] = r.user_agent;
  if (!r.client_ip.empty()) http["ClientIp"] = r.client_ip;

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
  json services = json::array();
  for (const auto& [name, type] : r.services) services.push_back(ServiceId(name, type));
  json users = json::array();
  if (!r.user.empty()) users.push_back({{"UserName", r.user}, {"ServiceIds", json::array({ServiceId(r.root_name, r.root_origin)})}});

  const double start = r.root_start.value_or(r.start_time);
  json s = {
      {"Id", r.trace_id},
      {"StartTime", start},
      {"Duration", r.end_time - r.start_time},
      {"HasFault", r.has_fault},
      {"HasError", r.has_error},
      {"HasThrottle", r.has_throttle},
      {"IsPartial", r.is_partial},
      {"Http", http},
      {"Annotations", annotations},
      {"Users", users},
      {"ServiceIds", services},
      {"ResourceARNs", json::array()},
      {"InstanceIds", json::array()},
      {"AvailabilityZones", json::array()},
      {"FaultRootCauses", json::array()},
      {"ErrorRootCauses", json::array()},
      {"ResponseTimeRootCauses", json::array()},
      {"Revision", r.revision},
      {"MatchedEventTime", start},
  };
  if (r.root_start && r.root_end) s["ResponseTime"] = *r.root_end - *r.root_start;
  if (!r.root_name.empty()) s["EntryPoint"] = ServiceId(r.root_name, r.root_origin);
  return s;
}

// Adds the root causes found in the trace's documents to its summary.
void AddRootCauses(store::TraceStore& store, json& summary) {
  auto segs = store.SegmentsOf(summary["Id"].get<std::string>());
  if (!segs) throw ApiError{500, "InternalFailure", segs.error().message};
  std::vector<json> docs;
  for (const auto& s : AssembleTrace(*segs).segments) docs.push_back(json::parse(s.document, nullptr, false));
  RootCauses causes = FindRootCauses(docs);
  summary["FaultRootCauses"] = std::move(causes.fault);
  summary["ErrorRootCauses"] = std::move(causes.error);
  summary["ResponseTimeRootCauses"] = std::move(causes.response_time);
}

// Keeps the documents of the traces `filter` (a group's filter expression) matches.
std::vector<std::string> KeepMatching(store::TraceStore& store, std::vector<std::string> docs, const Filter& filter) {
  if (filter.IsEmpty()) return docs;
  std::map<std::string, bool> matches;  // by trace id
  std::vector<std::string> kept;
  for (auto& d : docs) {
    json j = json::parse(d, nullptr, false);
    if (!j.is_object() || !j.contains("trace_id") || !j["trace_id"].is_string()) continue;
    auto [it, inserted] = matches.try_emplace(j["trace_id"].get<std::string>(), false);
    if (inserted) {
      auto row = store.Summary(it->first);
      if (!row) throw ApiError{500, "InternalFailure", row.error().message};
      it->second = *row && filter.Matches(**row);
    }
    if (it->second) kept.push_back(std::move(d));
  }
  return kept;
}

}  // namespace

// Sampling rules, with the Default rule always present (priority 10000, as X-Ray has it).
// Thread-safe. Saved in the store after every change and loaded at start, so they survive restarts.
class SamplingRules {
 public:
  explicit SamplingRules(store::TraceStore& store) : store_(store) {
    rules_["Default"] = MakeRule("Default", 10000, 0.05, 1, json::object());
    rules_["Default"]["RuleARN"] = Arn("Default");
    created_["Default"] = modified_["Default"] = Now();
    if (auto saved = store_.GetSetting("sampling_rules"); saved && *saved) {
      json j = json::parse(**saved, nullptr, false);
      if (j.is_object() && j["rules"].is_object()) {
        for (auto& [name, rule] : j["rules"].items()) rules_[name] = rule;
        for (auto& [name, t] : j["created"].items()) created_[name] = t.get<double>();
        for (auto& [name, t] : j["modified"].items()) modified_[name] = t.get<double>();
      }
    }
  }

  json List() {
    std::lock_guard lock(mu_);
    json records = json::array();
    for (const auto& [name, rule] : rules_)
      records.push_back({{"SamplingRule", rule}, {"CreatedAt", created_[name]}, {"ModifiedAt", modified_[name]}});
    return {{"SamplingRuleRecords", records}};
  }

  json Upsert(const json& input, bool create) {
    std::lock_guard lock(mu_);
    std::string name = input.value("RuleName", "");
    if (name.empty() && !create) {  // updates may name the rule by ARN
      const std::string arn = input.value("RuleARN", "");
      for (const auto& [n, r] : rules_)
        if (!arn.empty() && r.value("RuleARN", "") == arn) name = n;
    }
    if (name.empty()) throw Invalid(create ? "RuleName is required" : "RuleName or RuleARN is required");
    if (create && rules_.count(name)) throw Invalid("a rule named " + name + " already exists");
    if (!create && !rules_.count(name)) throw Invalid("no rule named " + name);
    json rule = create ? MakeRule(name, 1000, 0.05, 1, json::object()) : rules_[name];
    for (auto it = input.begin(); it != input.end(); ++it) rule[it.key()] = it.value();
    rule["RuleName"] = name;
    rule["RuleARN"] = Arn(name);
    const int priority = rule.value("Priority", 0);
    const double rate = rule.value("FixedRate", 0.0);
    const int reservoir = rule.value("ReservoirSize", 0);
    if (name != "Default" && (priority < 1 || priority > 9999)) throw Invalid("Priority must be between 1 and 9999");
    if (rate < 0 || rate > 1) throw Invalid("FixedRate must be between 0 and 1");
    if (reservoir < 0) throw Invalid("ReservoirSize must not be negative");
    if (create) {
      for (const char* k : {"ResourceARN", "Priority", "FixedRate", "ReservoirSize", "ServiceName", "ServiceType",
                            "Host", "HTTPMethod", "URLPath"})
        if (!input.contains(k)) throw Invalid(std::string(k) + " is required");
      if (!rule.contains("Version")) rule["Version"] = 1;
      created_[name] = Now();
    }
    rules_[name] = rule;
    modified_[name] = Now();
    last_modification_ = Now();
    SaveLocked();
    return {{"SamplingRuleRecord", {{"SamplingRule", rule}, {"CreatedAt", created_[name]}, {"ModifiedAt", modified_[name]}}}};
  }

  json Delete(const json& input) {
    std::lock_guard lock(mu_);
    std::string name = input.value("RuleName", "");
    if (name.empty()) {
      const std::string arn = input.value("RuleARN", "");
      for (const auto& [n, r] : rules_)
        if (r.value("RuleARN", "") == arn) name = n;
    }
    if (name == "Default") throw Invalid("the Default rule cannot be deleted");
    auto it = rules_.find(name);
    if (it == rules_.end()) throw Invalid("no rule named " + name);
    json record = {{"SamplingRule", it->second}, {"CreatedAt", created_[name]}, {"ModifiedAt", modified_[name]}};
    rules_.erase(it);
    last_modification_ = Now();
    SaveLocked();
    return {{"SamplingRuleRecord", record}};
  }

  // Each rule's reservoir (per second) is shared among the clients that reported for it in the
  // last 10 s; FixedRate applies beyond it.
  json Targets(const json& input) {
    std::lock_guard lock(mu_);
    const double now = Now();
    json docs = json::array(), unprocessed = json::array();
    if (!input.contains("SamplingStatisticsDocuments") || !input["SamplingStatisticsDocuments"].is_array())
      throw Invalid("SamplingStatisticsDocuments is required");
    for (const auto& d : input["SamplingStatisticsDocuments"]) {
      const std::string name = d.value("RuleName", "");
      const std::string client = d.value("ClientID", "");
      auto it = rules_.find(name);
      if (it == rules_.end()) {
        unprocessed.push_back({{"RuleName", name}, {"ErrorCode", "400"}, {"Message", "unknown rule"}});
        continue;
      }
      clients_[name][client] = now;
      // Counts add up per rule and 10-second window, for GetSamplingStatisticSummaries.
      const double window_start = std::floor(now / kStatisticsWindow) * kStatisticsWindow;
      auto& windows = statistics_[name];
      if (windows.empty() || windows.back().start != window_start) {
        windows.push_back({window_start});
        if (windows.size() > 2) windows.pop_front();
      }
      auto count = [&d](const char* key) {
        const auto v = d.find(key);
        return v != d.end() && v->is_number_integer() && v->get<int64_t>() > 0 ? v->get<int64_t>() : 0;
      };
      windows.back().requests += count("RequestCount");
      windows.back().sampled += count("SampledCount");
      windows.back().borrowed += count("BorrowCount");
      auto& seen = clients_[name];
      for (auto c = seen.begin(); c != seen.end();) c = now - c->second > 10 ? seen.erase(c) : std::next(c);
      const int reservoir = it->second.value("ReservoirSize", 0);
      const int share = seen.empty() ? reservoir : reservoir / static_cast<int>(seen.size());
      docs.push_back({{"RuleName", name},
                      {"FixedRate", it->second.value("FixedRate", 0.0)},
                      {"ReservoirQuota", share},
                      {"ReservoirQuotaTTL", now + 10},
                      {"Interval", 10}});
    }
    return {{"SamplingTargetDocuments", docs}, {"LastRuleModification", last_modification_}, {"UnprocessedStatistics", unprocessed}};
  }

  // Per rule, the last complete 10-second window of what the SDKs reported (the current one while
  // it is the only one); rules with no report in the last two windows are left out.
  json StatisticSummaries() {
    std::lock_guard lock(mu_);
    const double current = std::floor(Now() / kStatisticsWindow) * kStatisticsWindow;
    json out = json::array();
    for (const auto& [name, windows] : statistics_) {
      if (!rules_.count(name)) continue;
      const Window* pick = nullptr;
      for (const auto& w : windows)
        if (w.start == current - kStatisticsWindow) pick = &w;
      if (pick == nullptr && !windows.empty() && windows.back().start == current) pick = &windows.back();
      if (pick == nullptr) continue;
      out.push_back({{"RuleName", name}, {"Timestamp", pick->start}, {"RequestCount", pick->requests},
                     {"BorrowCount", pick->borrowed}, {"SampledCount", pick->sampled}});
    }
    return out;
  }

 private:
  void SaveLocked() {
    json j = {{"rules", rules_}, {"created", created_}, {"modified", modified_}};
    if (auto st = store_.PutSetting("sampling_rules", j.dump()); !st)
      XLOG_ERROR("Cannot save sampling rules: {}", st.error().message);
  }
  static std::string Arn(const std::string& name) { return "arn:aws:xray:local:000000000000:sampling-rule/" + name; }
  static json MakeRule(const std::string& name, int priority, double rate, int reservoir, json attributes) {
    return {{"RuleName", name}, {"ResourceARN", "*"}, {"Priority", priority}, {"FixedRate", rate},
            {"ReservoirSize", reservoir}, {"ServiceName", "*"}, {"ServiceType", "*"}, {"Host", "*"},
            {"HTTPMethod", "*"}, {"URLPath", "*"}, {"Version", 1}, {"Attributes", attributes}};
  }

  store::TraceStore& store_;
  std::mutex mu_;
  std::map<std::string, json> rules_;
  std::map<std::string, double> created_, modified_;
  std::map<std::string, std::map<std::string, double>> clients_;
  static constexpr double kStatisticsWindow = 10;
  struct Window {
    double start = 0;
    int64_t requests = 0, sampled = 0, borrowed = 0;
  };
  std::map<std::string, std::deque<Window>> statistics_;  // per rule: the current and previous window
  double last_modification_ = Now();
};

// Groups, with the Default group always listed. Thread-safe; saved in the store like the rules.
class Groups {
 public:
  explicit Groups(store::TraceStore& store) : store_(store) {
    if (auto saved = store_.GetSetting("groups"); saved && *saved) {
      json j = json::parse(**saved, nullptr, false);
      if (j.is_object())
        for (auto& [name, g] : j.items()) {
          groups_[name] = g.value("FilterExpression", "");
          insights_[name] = {g.value("InsightsEnabled", false), g.value("NotificationsEnabled", false)};
        }
    }
  }

  json List() {
    std::lock_guard lock(mu_);
    json out = json::array({Summary("Default", "")});
    for (const auto& [name, expr] : groups_) out.push_back(Summary(name, expr));
    return {{"Groups", out}};
  }
  json Get(const json& in) {
    std::lock_guard lock(mu_);
    const std::string name = Name(in);
    if (name == "Default") return {{"Group", Summary("Default", "")}};
    auto it = groups_.find(name);
    if (it == groups_.end()) throw Invalid("group " + name + " not found");
    return {{"Group", Summary(name, it->second)}};
  }
  // The filter of the group a request names by GroupName or GroupARN (none: all traces).
  Filter FilterOf(const json& in) {
    if (!in.contains("GroupName") && !in.contains("GroupARN")) return Filter();
    std::lock_guard lock(mu_);
    const std::string name = Name(in);
    if (name == "Default") return Filter();
    auto it = groups_.find(name);
    if (it == groups_.end()) throw Invalid("group " + name + " not found");
    auto f = Filter::Parse(it->second);
    if (!f) throw Invalid(f.error().message);
    return std::move(*f);
  }
  json Create(const json& in) {
    std::lock_guard lock(mu_);
    const std::string name = in.value("GroupName", "");
    if (name.empty()) throw Invalid("GroupName is required");
    if (name == "Default" || groups_.count(name)) throw Invalid("group " + name + " already exists");
    const std::string expr = in.value("FilterExpression", "");
    if (auto f = Filter::Parse(expr); !f) throw Invalid(f.error().message);
    groups_[name] = expr;
    insights_[name] = Insights(in, {false, false});
    SaveLocked();
    return {{"Group", Summary(name, groups_[name])}};
  }
  json Update(const json& in) {
    std::lock_guard lock(mu_);
    const std::string name = Name(in);
    auto it = groups_.find(name);
    if (it == groups_.end()) throw Invalid("group " + name + " not found");
    if (in.contains("FilterExpression")) {
      const std::string expr = in.value("FilterExpression", "");
      if (auto f = Filter::Parse(expr); !f) throw Invalid(f.error().message);
      it->second = expr;
    }
    insights_[name] = Insights(in, insights_[name]);
    SaveLocked();
    return {{"Group", Summary(name, it->second)}};
  }
  json Delete(const json& in) {
    std::lock_guard lock(mu_);
    const std::string name = Name(in);
    if (!groups_.erase(name)) throw Invalid("group " + name + " not found");
    insights_.erase(name);
    SaveLocked();
    return json::object();
  }

 private:
  void SaveLocked() {
    json j = json::object();
    for (const auto& [name, expr] : groups_)
      j[name] = {{"FilterExpression", expr}, {"InsightsEnabled", insights_[name].first},
                 {"NotificationsEnabled", insights_[name].second}};
    if (auto st = store_.PutSetting("groups", j.dump()); !st) XLOG_ERROR("Cannot save groups: {}", st.error().message);
  }
  static std::string Arn(const std::string& name) { return "arn:aws:xray:local:000000000000:group/" + name; }
  static std::pair<bool, bool> Insights(const json& in, std::pair<bool, bool> current) {
    if (auto c = in.find("InsightsConfiguration"); c != in.end() && c->is_object()) {
      current.first = c->value("InsightsEnabled", current.first);
      current.second = c->value("NotificationsEnabled", current.second);
    }
    return current;
  }
  json Summary(const std::string& name, const std::string& expr) {
    const auto [insights, notifications] = insights_.count(name) ? insights_[name] : std::pair{false, false};
    json g = {{"GroupName", name}, {"GroupARN", Arn(name)},
              {"InsightsConfiguration", {{"InsightsEnabled", insights}, {"NotificationsEnabled", notifications}}}};
    if (!expr.empty()) g["FilterExpression"] = expr;
    return g;
  }
  std::string Name(const json& in) {
    std::string name = in.value("GroupName", "");
    if (name.empty()) {
      const std::string arn = in.value("GroupARN", "");
      if (auto slash = arn.rfind('/'); slash != std::string::npos) name = arn.substr(slash + 1);
    }
    if (name.empty()) throw Invalid("GroupName or GroupARN is required");
    return name;
  }
  store::TraceStore& store_;
  std::mutex mu_;
  std::map<std::string, std::string> groups_;
  std::map<std::string, std::pair<bool, bool>> insights_;  // InsightsEnabled, NotificationsEnabled
};

XrayApiServer::XrayApiServer(ApiOptions options, store::TraceStore& store)
    : options_(std::move(options)), store_(store), sampling_(std::make_unique<SamplingRules>(store)),
      groups_(std::make_unique<Groups>(store)) {}

XrayApiServer::~XrayApiServer() { Stop(); }

Status XrayApiServer::Start() {
  server_ = std::make_unique<http::ListeningServer>(options_.threads);
  httplib::Server& routes = server_->routes();
  routes.set_payload_max_length(kMaxBody);
  // Signatures cover the body, which httplib reads only once a route matched: verify per route.
  std::shared_ptr<RequestVerifier> verifier;
  if (options_.verify_signatures) verifier = std::make_shared<RequestVerifier>(options_.keys);
  auto authorized = [verifier](const httplib::Request& req, httplib::Response& res) {
    if (!verifier) return true;
    std::vector<std::pair<std::string, std::string>> headers(req.headers.begin(), req.headers.end());
    const size_t q = req.target.find('?');
    const std::string query = q == std::string::npos ? "" : req.target.substr(q + 1);
    if (auto failure = verifier->Verify(req.method, req.path, query, headers, req.body, Now())) {
      ReplyError(res, {failure->status, failure->type, failure->message});
      return false;
    }
    return true;
  };

  using Handler = std::function<json(const json&)>;
  auto route = [&routes, authorized](const std::string& path, Handler handler) {
    routes.Post(path, [handler, authorized](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      try {
        Reply(res, handler(ParseBody(req)));
      } catch (const ApiError& e) {
        ReplyError(res, e);
      } catch (const json::exception& e) {
        ReplyError(res, Invalid(std::string("malformed request: ") + e.what()));
      } catch (const std::exception& e) {  // a bug or exhaustion: still an answer the SDKs can parse
        XLOG_ERROR("X-Ray API {} failed: {}", req.path, e.what());
        ReplyError(res, ApiError{500, "InternalFailure", e.what()});
      }
    });
  };

  route("/TraceSegments", [this](const json& in) {
    if (!in.contains("TraceSegmentDocuments") || !in["TraceSegmentDocuments"].is_array())
      throw Invalid("TraceSegmentDocuments is required");
    DatagramParser validator;
    std::vector<std::string> accepted;
    json unprocessed = json::array();
    for (const auto& d : in["TraceSegmentDocuments"]) {
      if (!d.is_string()) throw Invalid("TraceSegmentDocuments must be strings");
      std::string doc = d.get<std::string>();
      const size_t len = doc.size();
      doc.append(kPadding, '\0');
      auto v = validator.ValidateSegment(doc.data(), len);
      doc.resize(len);
      if (v.reject) {
        json bad = json::parse(doc, nullptr, false);
        std::string id = bad.is_object() && bad.contains("id") && bad["id"].is_string() ? bad["id"].get<std::string>() : "";
        unprocessed.push_back({{"Id", id}, {"ErrorCode", "InvalidSegment"}, {"Message", std::string(v.detail)}});
        continue;
      }
      accepted.push_back(std::move(doc));
    }
    auto stored = store_.Append(accepted);
    if (!stored) throw ApiError{500, "InternalFailure", stored.error().message};
    return json{{"UnprocessedTraceSegments", unprocessed}};
  });

  route("/TelemetryRecords", [](const json&) { return json::object(); });

  route("/TraceSummaries", [this](const json& in) {
    if (!in.contains("StartTime") || !in.contains("EndTime")) throw Invalid("StartTime and EndTime are required");
    const double start = ParseTimestamp(in["StartTime"], "StartTime");
    const double end = ParseTimestamp(in["EndTime"], "EndTime");
    if (end < start) throw Invalid("EndTime is before StartTime");
    auto filter = Filter::Parse(in.value("FilterExpression", ""));
    if (!filter) throw Invalid(filter.error().message);
    store::ListQuery q;
    q.start_time = start;
    q.end_time = end;
    q.by_trace_id_time = in.value("TimeRangeType", "TraceId") == "TraceId";
    if (in.contains("NextToken") && in["NextToken"].is_string()) {
      const std::string token = in["NextToken"].get<std::string>();
      const size_t bar = token.find('|');
      if (bar == std::string::npos) throw Invalid("bad NextToken");
      try {
        q.after_start_time = std::stod(token.substr(0, bar));
      } catch (...) {
        throw Invalid("bad NextToken");
      }
      q.after_trace_id = token.substr(bar + 1);
    }
    // Scan forward in store order, keeping matches, until a page is full, the range is
    // exhausted, or a per-call scan budget is spent (then NextToken resumes the scan).
    constexpr size_t kScanBudget = 20000;
    json summaries = json::array();
    size_t scanned = 0;
    bool exhausted = false;
    std::string last_key;
    while (summaries.size() < kPageSize && scanned < kScanBudget) {
      q.limit = filter->IsEmpty() ? kPageSize - summaries.size() : 500;
      auto rows = store_.ListTraces(q);
      if (!rows) throw ApiError{500, "InternalFailure", rows.error().message};
      if (rows->empty()) {
        exhausted = true;
        break;
      }
      for (const auto& row : *rows) {
        ++scanned;
        const double key = q.by_trace_id_time ? static_cast<double>(std::stoll(row.trace_id.substr(2, 8), nullptr, 16))
                                              : row.start_time;
        q.after_start_time = key;
        q.after_trace_id = row.trace_id;
        if (filter->Matches(row)) {
          summaries.push_back(SummaryJson(row));
          AddRootCauses(store_, summaries.back());
        }
        if (summaries.size() >= kPageSize) break;
      }
      if (rows->size() < q.limit && summaries.size() < kPageSize) {
        exhausted = true;
        break;
      }
    }
    json out = json::object();
    if (!exhausted) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", q.after_start_time);
      out["NextToken"] = std::string(buf) + "|" + q.after_trace_id;
    }
    out["TraceSummaries"] = summaries;
    out["ApproximateTime"] = Now();
    out["TracesProcessedCount"] = scanned;
    return out;
  });

  route("/Traces", [this](const json& in) {
    if (!in.contains("TraceIds") || !in["TraceIds"].is_array()) throw Invalid("TraceIds is required");
    if (in["TraceIds"].size() > 5) throw Invalid("at most 5 TraceIds per call");
    json traces = json::array();
    for (const auto& id : in["TraceIds"]) {
      if (!id.is_string()) throw Invalid("TraceIds must be strings");
      auto segs = store_.SegmentsOf(id.get<std::string>());
      if (!segs) throw ApiError{500, "InternalFailure", segs.error().message};
      if (segs->empty()) continue;
      AssembledTrace t = AssembleTrace(*segs);
      json segments = json::array();
      for (auto& s : t.segments) segments.push_back({{"Id", s.id}, {"Document", s.document}});
      traces.push_back({{"Id", id}, {"Duration", t.duration}, {"LimitExceeded", false}, {"Segments", segments}});
    }
    return json{{"Traces", traces}, {"UnprocessedTraceIds", json::array()}};
  });

  // Graphs are computed from the documents of at most this many traces per call.
  static constexpr size_t kGraphTraceLimit = 20000;
  auto range = [](const json& in) {
    if (!in.contains("StartTime") || !in.contains("EndTime")) throw Invalid("StartTime and EndTime are required");
    const double start = ParseTimestamp(in["StartTime"], "StartTime");
    const double end = ParseTimestamp(in["EndTime"], "EndTime");
    if (end < start) throw Invalid("EndTime is before StartTime");
    return std::pair{start, end};
  };
  // Both graphs cover the traces of the group named by GroupName or GroupARN, if any.
  route("/ServiceGraph", [this, range](const json& in) {
    auto [start, end] = range(in);
    const Filter group = groups_->FilterOf(in);
    bool truncated = false;
    auto docs = store_.DocumentsInRange(start, end, kGraphTraceLimit, &truncated);
    if (!docs) throw ApiError{500, "InternalFailure", docs.error().message};
    return BuildServiceGraph(KeepMatching(store_, std::move(*docs), group), start, end);
  });
  route("/TimeSeriesServiceStatistics", [this, range](const json& in) {
    auto [start, end] = range(in);
    const Filter group = groups_->FilterOf(in);
    auto selector = ParseEntitySelector(in.value("EntitySelectorExpression", ""));
    if (!selector) throw Invalid(selector.error().message);
    bool truncated = false;
    auto docs = store_.DocumentsInRange(start, end, kGraphTraceLimit, &truncated);
    if (!docs) throw ApiError{500, "InternalFailure", docs.error().message};
    return BuildTimeSeriesStatistics(KeepMatching(store_, std::move(*docs), group), start, end, in.value("Period", 60),
                                     *selector);
  });
  route("/TraceGraph", [this](const json& in) {
    if (!in.contains("TraceIds") || !in["TraceIds"].is_array()) throw Invalid("TraceIds is required");
    std::vector<std::string> docs;
    double lo = 1e300, hi = 0;
    for (const auto& id : in["TraceIds"]) {
      if (!id.is_string()) throw Invalid("TraceIds must be strings");
      auto segs = store_.SegmentsOf(id.get<std::string>());
      if (!segs) throw ApiError{500, "InternalFailure", segs.error().message};
      for (auto& s : *segs) docs.push_back(std::move(s.doc));
    }
    json graph = BuildServiceGraph(docs, 0, 0);
    for (const auto& svc : graph["Services"]) {
      lo = std::min(lo, svc.value("StartTime", lo));
      hi = std::max(hi, svc.value("EndTime", hi));
    }
    return json{{"Services", graph["Services"]}};
  });

  route("/GetSamplingRules", [this](const json&) { return sampling_->List(); });
  route("/SamplingTargets", [this](const json& in) { return sampling_->Targets(in); });
  route("/CreateSamplingRule", [this](const json& in) {
    if (!in.contains("SamplingRule") || !in["SamplingRule"].is_object()) throw Invalid("SamplingRule is required");
    return sampling_->Upsert(in["SamplingRule"], true);
  });
  route("/UpdateSamplingRule", [this](const json& in) {
    if (!in.contains("SamplingRuleUpdate") || !in["SamplingRuleUpdate"].is_object())
      throw Invalid("SamplingRuleUpdate is required");
    return sampling_->Upsert(in["SamplingRuleUpdate"], false);
  });
  route("/DeleteSamplingRule", [this](const json& in) { return sampling_->Delete(in); });
  route("/SamplingStatisticSummaries",
        [this](const json&) { return json{{"SamplingStatisticSummaries", sampling_->StatisticSummaries()}}; });

  route("/Groups", [this](const json&) { return groups_->List(); });
  route("/GetGroup", [this](const json& in) { return groups_->Get(in); });
  route("/CreateGroup", [this](const json& in) { return groups_->Create(in); });
  route("/UpdateGroup", [this](const json& in) { return groups_->Update(in); });
  route("/DeleteGroup", [this](const json& in) { return groups_->Delete(in); });

  // No insight engine: well-formed empty answers, so Grafana's Insights queries do not fail.
  route("/InsightSummaries", [](const json&) { return json{{"InsightSummaries", json::array()}}; });
  route("/EncryptionConfig", [](const json&) {
    return json{{"EncryptionConfig", {{"Status", "ACTIVE"}, {"Type", "NONE"}}}};
  });

  // xrayd's own extension, for the web UI and any client (src/ui/operation_percentiles.h).
  route("/xrayd/OperationPercentiles", [this](const json& in) {
    auto out = ui::OperationPercentiles(store_, in);
    if (!out && out.error().kind == Error::Kind::kInvalidArgument) throw Invalid(out.error().message);
    if (!out) throw ApiError{500, "InternalFailure", out.error().message};
    return std::move(*out);
  });

  auto unknown = [authorized](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    ReplyError(res, {404, "UnknownOperationException", "no X-Ray operation at " + req.method + " " + req.path});
  };
  routes.Post(".*", unknown);
  // GET of anything else is the web UI (src/ui/web_ui.h): public files, no signature needed.
  routes.Get(".*", [](const httplib::Request& req, httplib::Response& res) {
    http::IncomingRequest in{req.method, req.target, req.path, "", {req.headers.begin(), req.headers.end()}, "", ""};
    http::OutgoingResponse out = ui::ServeWebUi(in);
    res.status = out.status;
    for (auto& [name, value] : out.headers) res.set_header(name, value);
    // A fixed-length provider: httplib sends it as is (a plain body it would gzip a second time).
    auto body = std::make_shared<std::string>(std::move(out.body));
    if (body->empty()) return res.set_content("", out.content_type);  // 304: no body at all
    res.set_content_provider(body->size(), out.content_type, [body](size_t off, size_t len, httplib::DataSink& sink) {
      return sink.write(body->data() + off, len);
    });
  });
  routes.Put(".*", unknown);
  routes.Delete(".*", unknown);

  auto port = server_->Start(options_.listen_address, "API");
  if (!port) return port.error();
  port_ = *port;
  return OkStatus();
}

void XrayApiServer::Stop() {
  if (server_) server_->Stop();
}

}  // namespace xrayd::api
