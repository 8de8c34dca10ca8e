// Subsegments sent as their own documents ("type": "subsegment", parent_id, trace_id — as the
// X-Ray SDKs stream them and as OTLP spans of another export become them) count in the service
// graph as if nested: in the store's rollups (GetServiceGraph without a group), in graphs built
// from the window's documents (with a group), and in the trace's services (service() filters).
// Each case is stored in every arrival order, in separate Appends.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "api/service_graph.h"
#include "otlp/otlp_to_xray.h"
#include "segment/graph.h"
#include "store/trace_store.h"
#include "tests/support/store_fixture.h"

namespace xrayd::store {
namespace {

using nlohmann::json;
using testing::kT0;

const std::string kTrace = "1-5759e988-bd862e3fe1be46a994272793";

json Doc(const std::string& id, const std::string& parent, const std::string& name, double start) {
  json d = {{"trace_id", kTrace}, {"id", id}, {"name", name}, {"start_time", kT0 + start}, {"end_time", kT0 + start + 0.1}};
  if (!parent.empty()) d["parent_id"] = parent;
  return d;
}
json Streamed(const std::string& id, const std::string& parent, const std::string& name, const std::string& ns,
              double start) {
  json d = Doc(id, parent, name, start);
  d["type"] = "subsegment";
  if (!ns.empty()) d["namespace"] = ns;
  return d;
}

class StreamedSubsegmentTest : public testing::StoreFixture {
 protected:
  // Stores `docs` one per Append in the order `order` gives.
  void StoreInOrder(const std::vector<json>& docs, const std::vector<size_t>& order) {
    std::filesystem::remove_all(dir_);
    Open();
    for (size_t i : order) {
      auto r = store_->Append({docs[i].dump()});
      ASSERT_TRUE(r) << r.error().message;
      ASSERT_TRUE(r->empty()) << (*r)[0].second;
    }
  }

  // Every order of `docs`: the edge from -> to is in the rollups, in both graph answers, and `to`
  // is one of the trace's services; `to` is never an entry point of the graph.
  void ExpectEdgeInEveryOrder(const std::vector<json>& docs, const segment::NodeKey& from,
                              const segment::NodeKey& to) {
    std::vector<size_t> order(docs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    do {
      SCOPED_TRACE("order " + ::testing::PrintToString(order));
      StoreInOrder(docs, order);
      auto rollup = store_->GraphRollups(0, 1LL << 40);
      ASSERT_TRUE(rollup) << rollup.error().message;
      int64_t edges = 0, entries = 0;
      for (const auto& [k, v] : *rollup) {
        if (k.kind == segment::Call::Kind::kEdge && k.from == from && k.to == to) edges += v.total;
        if (k.kind == segment::Call::Kind::kEntry && k.to == to) entries += v.total;
      }
      EXPECT_EQ(edges, 1) << "rollup edge " << from.name << " -> " << to.name;
      EXPECT_EQ(entries, 0) << to.name << " counted as a request entering the graph";
      ExpectEdge(api::ServiceGraphFromRollup(*rollup, kT0 - 60, kT0 + 120), from, to, "from rollups");
      bool truncated = false;
      auto window = store_->DocumentsInRange(kT0 - 60, kT0 + 120, 1000, &truncated);
      ASSERT_TRUE(window);
      ExpectEdge(api::BuildServiceGraph(*window, kT0 - 60, kT0 + 120), from, to, "from documents");
      auto summary = store_->Summary(kTrace);
      ASSERT_TRUE(summary && *summary);
      EXPECT_NE(std::find((*summary)->services.begin(), (*summary)->services.end(), std::make_pair(to.name, to.type)),
                (*summary)->services.end())
          << to.name << " is not among the trace's services";
    } while (std::next_permutation(order.begin(), order.end()));
  }

  static void ExpectEdge(const json& graph, const segment::NodeKey& from, const segment::NodeKey& to,
                         const char* how) {
    int from_ref = -1, to_ref = -1;
    for (const auto& s : graph["Services"]) {
      const std::string type = s.value("Type", "");
      if (s["Name"] == from.name && (type == from.type || (from.type.empty() && type == "service")))
        from_ref = s["ReferenceId"];
      if (s["Name"] == to.name && (type == to.type || (to.type.empty() && type == "service"))) to_ref = s["ReferenceId"];
    }
    ASSERT_GE(from_ref, 0) << how << ": no node " << from.name << "\n" << graph.dump(1);
    ASSERT_GE(to_ref, 0) << how << ": no node " << to.name << "\n" << graph.dump(1);
    bool found = false;
    for (const auto& s : graph["Services"])
      if (s["ReferenceId"] == from_ref)
        for (const auto& e : s["Edges"]) found |= e["ReferenceId"] == to_ref;
    EXPECT_TRUE(found) << how << ": no edge " << from.name << " -> " << to.name << "\n" << graph.dump(1);
  }
};

// A DynamoDB call streamed on its own, its parent the segment.
TEST_F(StreamedSubsegmentTest, AwsCallUnderTheSegment) {
  ExpectEdgeInEveryOrder({Doc("a000000000000001", "", "api", 0),
                          Streamed("d000000000000001", "a000000000000001", "DynamoDB", "aws", 0.01)},
                         {"api", ""}, {"DynamoDB", "AWS::DynamoDB"});
}

// A DynamoDB call streamed on its own under another streamed subsegment (no namespace: local work).
TEST_F(StreamedSubsegmentTest, AwsCallUnderAStreamedSubsegment) {
  ExpectEdgeInEveryOrder({Doc("a000000000000001", "", "api", 0),
                          Streamed("b000000000000001", "a000000000000001", "handler", "", 0.01),
                          Streamed("d000000000000001", "b000000000000001", "DynamoDB", "aws", 0.02)},
                         {"api", ""}, {"DynamoDB", "AWS::DynamoDB"});
}

// A streamed remote call whose callee sent a segment: an edge to that service, not an entry.
TEST_F(StreamedSubsegmentTest, DownstreamSegmentUnderAStreamedCall) {
  json orders = Doc("c000000000000001", "b000000000000001", "orders", 0.02);
  orders["origin"] = "AWS::ECS::Container";
  ExpectEdgeInEveryOrder({Doc("a000000000000001", "", "api", 0),
                          Streamed("b000000000000001", "a000000000000001", "orders", "remote", 0.01), orders},
                         {"api", ""}, {"orders", "AWS::ECS::Container"});
}

// OTLP: the server span, an internal span and the DynamoDB client span, each in its own export
// request (a batch span processor exports spans as they end, children first).
std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<json> OtlpDocs() {
  const int64_t now = 1700000100;
  const std::string trace = Unhex("6553f100e7d1852db8c4fd35d88bf49a");  // epoch 1700000000
  struct SpanSpec {
    std::string id, parent;
    otlp::pb::Span::SpanKind kind;
    std::vector<std::pair<std::string, std::string>> attributes;
  };
  const SpanSpec specs[] = {
      {"00000000000000a1", "", otlp::pb::Span::SPAN_KIND_SERVER, {}},
      {"00000000000000b1", "00000000000000a1", otlp::pb::Span::SPAN_KIND_INTERNAL, {}},
      {"00000000000000d1", "00000000000000b1", otlp::pb::Span::SPAN_KIND_CLIENT,
       {{"rpc.system", "aws-api"}, {"rpc.service", "DynamoDB"}, {"aws.service", "DynamoDB"}}},
  };
  std::vector<json> docs;
  for (const auto& spec : specs) {
    otlp::pb::ExportTraceServiceRequest req;
    auto* rs = req.add_resource_spans();
    auto* kv = rs->mutable_resource()->add_attributes();
    kv->set_key("service.name");
    kv->mutable_value()->set_string_value("cart");
    auto* span = rs->add_scope_spans()->add_spans();
    span->set_trace_id(trace);
    span->set_span_id(Unhex(spec.id));
    if (!spec.parent.empty()) span->set_parent_span_id(Unhex(spec.parent));
    span->set_kind(spec.kind);
    span->set_name("op");
    span->set_start_time_unix_nano(1700000000000000000ull);
    span->set_end_time_unix_nano(1700000000250000000ull);
    for (const auto& [k, v] : spec.attributes) {
      auto* a = span->add_attributes();
      a->set_key(k);
      a->mutable_value()->set_string_value(v);
    }
    otlp::ToXrayOptions opt;
    opt.now_epoch_seconds = now;
    otlp::ToXrayStats stats;
    for (const auto& d : otlp::RequestToSegments(req, opt, &stats)) docs.push_back(json::parse(d));
    EXPECT_EQ(stats.dropped(), 0u);
  }
  return docs;
}

TEST_F(StreamedSubsegmentTest, OtlpAwsCallExportedApart) {
  const std::vector<json> docs = OtlpDocs();
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[2].value("type", ""), "subsegment");
  EXPECT_EQ(docs[2].value("namespace", ""), "aws");
  const std::string trace = docs[0]["trace_id"];
  std::vector<json> ours;
  for (json d : docs) {
    // The store tests' clock: move the span times next to kT0 (the trace id keeps its own epoch).
    d["start_time"] = kT0 + (d["start_time"].get<double>() - 1700000000.0);
    d["end_time"] = kT0 + (d["end_time"].get<double>() - 1700000000.0);
    d["trace_id"] = kTrace;
    ours.push_back(d);
  }
  (void)trace;
  ExpectEdgeInEveryOrder(ours, {"cart", ""}, {"DynamoDB", "AWS::DynamoDB"});
}

}  // namespace
}  // namespace xrayd::store
