#include "api/operation_percentiles.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace xrayd::api {
namespace {

using nlohmann::json;
using OpKey = std::pair<std::string, std::string>;  // (service, name)

struct Node {
  std::string id;
  OpKey op;
  double duration;
};

// Calls visit(node) for a document and every subsegment nested in it (depth-bounded: documents are
// untrusted). Nodes without numeric start_time/end_time are skipped.
template <typename Visit>
void Walk(const json& doc, const std::string& service, int depth, const Visit& visit) {
  if (!doc.is_object() || depth > 64) return;
  const auto start = doc.find("start_time"), end = doc.find("end_time"), name = doc.find("name");
  if (start != doc.end() && end != doc.end() && name != doc.end() && start->is_number() && end->is_number() &&
      name->is_string()) {
    const auto id = doc.find("id");
    visit(Node{id != doc.end() && id->is_string() ? id->get<std::string>() : std::string(),
               {service, name->get<std::string>()}, end->get<double>() - start->get<double>()});
  }
  if (const auto subs = doc.find("subsegments"); subs != doc.end() && subs->is_array())
    for (const json& s : *subs) Walk(s, service, depth + 1, visit);
}

// The service a document belongs to: its own name for a segment; for a subsegment sent on its own,
// unknown here (its parent segment names it): keyed by its name alone.
std::string ServiceOf(const json& doc) {
  const auto type = doc.find("type");
  const bool sub = type != doc.end() && type->is_string() && *type == "subsegment";
  const auto name = doc.find("name");
  return !sub && name != doc.end() && name->is_string() ? name->get<std::string>() : std::string();
}

template <typename Visit>
void WalkDocument(const std::string& text, const Visit& visit) {
  json doc = json::parse(text, nullptr, false);
  if (!doc.is_discarded()) Walk(doc, ServiceOf(doc), 0, visit);
}

Result<double> WindowOf(const json& request) {
  const auto w = request.find("WindowSeconds");
  if (w == request.end()) return 3600.0;
  if (!w->is_number() || w->get<double>() < 60 || w->get<double>() > 86400)
    return Error::InvalidArgument("WindowSeconds must be a number from 60 to 86400");
  return w->get<double>();
}

}  // namespace

Result<json> OperationPercentiles(store::TraceStore& store, const json& request) {
  const auto tid = request.find("TraceId");
  if (!request.is_object() || tid == request.end() || !tid->is_string() || tid->get<std::string>().empty())
    return Error::InvalidArgument("TraceId is required");
  auto window = WindowOf(request);
  if (!window) return window.error();
  auto segments = store.SegmentsOf(tid->get<std::string>());
  if (!segments) return segments.error();
  if (segments->empty()) return Error::InvalidArgument("no trace " + tid->get<std::string>() + " in this store");

  std::vector<Node> mine;
  double t0 = 1e300;
  for (const auto& s : *segments) {
    json doc = json::parse(s.doc, nullptr, false);
    if (doc.is_discarded()) continue;
    if (auto st = doc.find("start_time"); st != doc.end() && st->is_number()) t0 = std::min(t0, st->get<double>());
    Walk(doc, ServiceOf(doc), 0, [&](Node n) { mine.push_back(std::move(n)); });
  }
  if (t0 == 1e300) return Error::InvalidArgument("trace has no timed segment");

  std::map<OpKey, std::vector<double>> samples;
  for (const Node& n : mine) samples[n.op];  // only the operations of this trace are collected
  const double start = t0 - *window / 2, end = t0 + *window / 2;
  bool truncated = false;
  auto docs = store.DocumentsInRange(start, end, kMaxPercentileTraces, &truncated);
  if (!docs) return docs.error();
  for (const std::string& text : *docs)
    WalkDocument(text, [&](const Node& n) {
      if (auto it = samples.find(n.op); it != samples.end()) it->second.push_back(n.duration);
    });
  for (auto& [op, v] : samples) std::sort(v.begin(), v.end());

  json ops = json::array();
  for (const Node& n : mine) {
    const std::vector<double>& v = samples[n.op];
    const size_t at_most = std::upper_bound(v.begin(), v.end(), n.duration + 1e-9) - v.begin();
    const double pct = v.empty() ? 100.0 : 100.0 * static_cast<double>(at_most) / static_cast<double>(v.size());
    ops.push_back({{"Id", n.id}, {"Service", n.op.first}, {"Name", n.op.second}, {"Duration", n.duration},
                   {"Percentile", std::min(100.0, pct)}, {"Samples", v.size()}});
  }
  return json{{"TraceId", *tid}, {"StartTime", start}, {"EndTime", end}, {"DocumentsScanned", docs->size()},
              {"Truncated", truncated}, {"Operations", std::move(ops)}};
}

}  // namespace xrayd::api
