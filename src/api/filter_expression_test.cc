#include "api/filter_expression.h"

#include <gtest/gtest.h>

#include <functional>

#include "tests/support/store_fixture.h"

namespace xrayd::api {
namespace {

store::TraceSummaryRow Trace() {
  store::TraceSummaryRow t;
  t.trace_id = "1-5759e988-bd862e3fe1be46a994272793";
  t.start_time = 100;
  t.end_time = 107;
  t.root_start = 100;
  t.root_end = 106;
  t.http_url = "https://shop.example.com/api/cart";
  t.http_method = "POST";
  t.http_status = 502;
  t.user_agent = "curl/8";
  t.client_ip = "10.0.0.1";
  t.user = "alice";
  t.has_fault = true;
  t.annotations = {{"tier", "web", "\"gold\""}, {"items", "web", "3"}, {"cached", "db", "false"}};
  t.services = {{"web", "AWS::EC2::Instance"}, {"db", "remote"}};
  return t;
}

bool Eval(const std::string& expr) {
  auto f = Filter::Parse(expr);
  EXPECT_TRUE(f) << expr << ": " << (f ? "" : f.error().message);
  return f && f->Matches(Trace());
}

TEST(FilterExpression, EmptyMatchesAll) {
  EXPECT_TRUE(Eval(""));
  EXPECT_TRUE(Eval("   "));
}

TEST(FilterExpression, BooleanKeywords) {
  EXPECT_TRUE(Eval("fault"));
  EXPECT_FALSE(Eval("error"));
  EXPECT_FALSE(Eval("throttle"));
  EXPECT_FALSE(Eval("ok"));
  EXPECT_FALSE(Eval("partial"));
  EXPECT_TRUE(Eval("!partial"));
  EXPECT_TRUE(Eval("fault = true"));
  EXPECT_TRUE(Eval("error = false"));
  EXPECT_TRUE(Eval("error != true"));
  EXPECT_TRUE(Eval("FAULT"));
}

TEST(FilterExpression, NumberKeywords) {
  EXPECT_TRUE(Eval("responsetime > 5"));
  EXPECT_FALSE(Eval("responsetime < 5"));
  EXPECT_TRUE(Eval("responsetime = 6"));
  EXPECT_TRUE(Eval("duration >= 7 AND duration <= 7"));
  EXPECT_TRUE(Eval("duration > 6.5"));
  EXPECT_TRUE(Eval("http.status = 502"));
  EXPECT_TRUE(Eval("http.status != 200"));
  EXPECT_TRUE(Eval("http.status>=500"));
}

TEST(FilterExpression, StringKeywords) {
  EXPECT_TRUE(Eval("http.url CONTAINS \"/api/\""));
  EXPECT_TRUE(Eval("http.url BEGINSWITH \"https://shop\""));
  EXPECT_TRUE(Eval("http.url ENDSWITH \"cart\""));
  EXPECT_FALSE(Eval("http.url ENDSWITH \"carts\""));
  EXPECT_TRUE(Eval("http.method = \"POST\""));
  EXPECT_TRUE(Eval("http.useragent contains \"curl\""));
  EXPECT_TRUE(Eval("http.clientip = \"10.0.0.1\""));
  EXPECT_TRUE(Eval("user = \"alice\""));
  EXPECT_FALSE(Eval("user != \"alice\""));
}

TEST(FilterExpression, Annotations) {
  EXPECT_TRUE(Eval("annotation.tier = \"gold\""));
  EXPECT_FALSE(Eval("annotation.tier = \"silver\""));
  EXPECT_TRUE(Eval("annotation.items > 2"));
  EXPECT_TRUE(Eval("annotation.cached = false"));
  EXPECT_FALSE(Eval("annotation.missing = \"x\""));
  EXPECT_FALSE(Eval("annotation.Tier = \"gold\""));  // keys are case-sensitive
}

TEST(FilterExpression, ServicesEdgesIds) {
  EXPECT_TRUE(Eval("service(\"web\")"));
  EXPECT_FALSE(Eval("service(\"api\")"));
  EXPECT_TRUE(Eval("service(\"web\") { fault }"));
  EXPECT_FALSE(Eval("service(\"web\") { error }"));
  EXPECT_TRUE(Eval("edge(\"web\", \"db\")"));
  EXPECT_FALSE(Eval("edge(\"web\", \"cache\")"));
  EXPECT_TRUE(Eval("id(name: \"web\", type: \"AWS::EC2::Instance\")"));
  EXPECT_FALSE(Eval("id(name: \"web\", type: \"remote\")"));
  EXPECT_TRUE(Eval("service(id(name: \"db\", type: \"remote\"))"));
}

// Inside service(...) { ... } the flags are the service's own: a fault in the web tier is not one in the
// database it called. Other keywords (http.status here) still read the trace.
TEST(FilterExpression, SubFilterSeesTheServicesOwnFlags) {
  store::TraceSummaryRow t = Trace();  // trace-level: fault
  t.service_flags = {{.error = false, .fault = true, .throttle = false}, {.error = true, .fault = false, .throttle = false}};
  auto matches = [&](const char* expr) {
    auto f = Filter::Parse(expr);
    EXPECT_TRUE(f) << expr;
    return f && f->Matches(t);
  };
  EXPECT_TRUE(matches("service(\"web\") { fault }"));
  EXPECT_FALSE(matches("service(\"web\") { error }"));
  EXPECT_FALSE(matches("service(\"db\") { fault }"));
  EXPECT_TRUE(matches("service(\"db\") { error = true AND http.status = 502 }"));
  EXPECT_FALSE(matches("service(\"db\") { ok }"));
  EXPECT_TRUE(matches("service(\"web\") { !ok }"));
  EXPECT_TRUE(matches("edge(\"web\", \"db\") { error }"));   // the callee's flags
  EXPECT_FALSE(matches("edge(\"web\", \"db\") { fault }"));
  EXPECT_TRUE(matches("service() { error }"));                 // any service
  // Rows from a store without per-service flags fall back to the trace's.
  t.service_flags.clear();
  EXPECT_TRUE(matches("service(\"db\") { fault }"));
}

// The service graph types a service whose segments have no origin "service" (and Grafana's
// service map links select the node by that name and type).
TEST(FilterExpression, PlainServiceType) {
  store::TraceSummaryRow t = Trace();
  t.services.emplace_back("cart", "");
  for (const char* expr : {"service(id(name: \"cart\", type: \"service\"))", "service(\"cart\")",
                           "id(name: \"cart\")"}) {
    auto f = Filter::Parse(expr);
    ASSERT_TRUE(f) << expr;
    EXPECT_TRUE(f->Matches(t)) << expr;
  }
  auto f = Filter::Parse("service(id(name: \"web\", type: \"service\"))");
  ASSERT_TRUE(f);
  EXPECT_FALSE(f->Matches(t));  // web has an origin
}

TEST(FilterExpression, LogicAndPrecedence) {
  EXPECT_TRUE(Eval("error OR fault"));
  EXPECT_FALSE(Eval("error AND fault"));
  EXPECT_TRUE(Eval("error AND fault OR http.status = 502"));  // AND binds tighter
  EXPECT_FALSE(Eval("error AND (fault OR http.status = 502)"));
  EXPECT_TRUE(Eval("NOT error"));
  EXPECT_TRUE(Eval("not (error or throttle) and fault"));
}

TEST(FilterExpression, ErrorsNameThePosition) {
  for (const char* bad : {"responsetime >", "http.url CONTAINS 5", "bogus = 1", "(fault", "fault)", "\"unterminated",
                          "service(", "edge(\"a\")", "responsetime > \"x\"", "fault = 3", "http.status", "#",
                          "id(name \"x\")"}) {
    auto f = Filter::Parse(bad);
    ASSERT_FALSE(f) << bad;
    EXPECT_NE(f.error().message.find("filter expression"), std::string::npos) << bad;
  }
  EXPECT_FALSE(Filter::Parse(std::string(100, '(') + "fault" + std::string(100, ')')));
}


// The store plans NecessaryCondition() as nested SQL; SQLite refused 30 ORed URL tests ("parser stack
// overflow": a 500 from GetTraceSummaries; found with fuzz_api_request's harness). Chains become one n-ary node
// and nesting is bounded, so long and deep filters list by index or scan, and still find the trace.
class FilterConditionOnStore : public store::testing::StoreFixture {};

int Depth(const store::IndexCondition& c) {
  int d = 0;
  for (const auto& p : c.all) d = std::max(d, Depth(p));
  return d + (c.all.empty() ? 0 : 1);
}

TEST_F(FilterConditionOnStore, LongAndDeepFiltersListTheirTraces) {
  Open();
  nlohmann::json d = nlohmann::json::parse(store::testing::Batch(7, 1)[0]);
  d["http"] = {{"request", {{"url", "http://shop/cart/abc"}}}};
  d["fault"] = true;
  ASSERT_TRUE(store_->Append({d.dump()}));
  auto chain = [](const std::string& leaf, const char* op, int n) {
    std::string s = leaf;
    for (int i = 1; i < n; ++i) s += std::string(" ") + op + " " + leaf;
    return s;
  };
  std::string alternating = "http.url CONTAINS \"abc\"";
  for (int i = 0; i < 60; ++i)
    alternating = i % 2 ? "(http.url CONTAINS \"cart\" AND " + alternating + ")"
                        : "(http.url CONTAINS \"x" + std::to_string(i) + "\" OR " + alternating + ")";
  const std::string url_or = chain("http.url CONTAINS \"zzz\"", "OR", 149) + " OR http.url CONTAINS \"abc\"";
  for (const std::string& text : {url_or, chain("http.url CONTAINS \"abc\"", "AND", 140),
                                  chain("(fault AND http.url CONTAINS \"cart\")", "OR", 90), alternating,
                                  chain("annotation.n = 7", "OR", 30) + " AND " + chain("service(\"web\")", "OR", 30)}) {
    auto filter = Filter::Parse(text);
    ASSERT_TRUE(filter) << text.substr(0, 80) << ": " << filter.error().message;
    ASSERT_TRUE(filter->Matches(*store_->Summary(store::testing::TraceId(7)).value())) << text.substr(0, 80);
    store::ListQuery q;
    q.start_time = store::testing::kT0;
    q.end_time = store::testing::kT0 + 100;
    q.condition = filter->NecessaryCondition();
    if (q.condition) {
      EXPECT_LE(Depth(*q.condition), 4) << text.substr(0, 80);
    }
    auto rows = store_->ListTraces(q);
    ASSERT_TRUE(rows) << text.substr(0, 80) << ": " << rows.error().message;
    ASSERT_EQ(rows->size(), 1u) << text.substr(0, 80);
    EXPECT_EQ((*rows)[0].trace_id, store::testing::TraceId(7));
  }
  // A chain's condition is still used (one OR of its tests), not dropped.
  auto f = Filter::Parse(chain("http.url CONTAINS \"abc\"", "OR", 30));
  ASSERT_TRUE(f);
  auto c = f->NecessaryCondition();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, store::IndexCondition::Kind::kOr);
  EXPECT_EQ(c->all.size(), 30u);
}

}  // namespace
}  // namespace xrayd::api
