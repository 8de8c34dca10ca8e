// X-Ray filter expressions (the language GetTraceSummaries, groups and the console use):
//
//   responsetime > 5 AND http.status = 500
//   service("api") { fault } OR annotation.tier = "gold"
//   NOT (http.url CONTAINS "/health") AND !partial
//   edge("api", "db") { error } AND user BEGINSWITH "a"
//   id(name: "api", type: "AWS::EC2::Instance")
//
// Keywords: booleans ok, error, fault, throttle, partial (alone, negated, or compared with
// true/false); numbers responsetime, duration, http.status; strings http.url, http.method,
// http.useragent, http.clientip, user; annotation.KEY (string, number or boolean); the complex
// keywords service(...), edge(...), id(...). Operators: = != < <= > >= CONTAINS BEGINSWITH
// ENDSWITH; AND, OR, NOT / !, parentheses. Keywords and operators are case-insensitive.
//
// Parse() turns text into a Filter (or an error naming the position); Filter::Matches()
// evaluates it against one trace summary. In a `{ sub-filter }` after service/edge/id, ok, error,
// fault and throttle read the matched service's own flags (for edge(a, b): b's); every other
// keyword reads the whole trace. Errors are InvalidArgument with a message safe to show a client
// (ASCII positions and byte values, never raw input bytes outside quoted strings).
// Thread-safe once built (immutable).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "store/trace_store.h"

namespace xrayd::api {

class FilterNode;
struct EntitySelector;

// The type the service graph gives a service whose segments carry no origin; service(id(type:
// "service")) selects such services.
inline constexpr std::string_view kPlainServiceType = "service";

// Whether id(type: wanted) selects a service with this origin ("" = any type).
bool ServiceTypeMatches(std::string_view wanted, std::string_view origin);

class Filter {
 public:
  Filter();
  ~Filter();
  Filter(Filter&&) noexcept;
  Filter& operator=(Filter&&) noexcept;

  // An empty (or all-whitespace) expression matches everything.
  static Result<Filter> Parse(std::string_view text);
  bool Matches(const store::TraceSummaryRow& trace) const;
  bool IsEmpty() const { return root_ == nullptr; }
  // A condition every trace Matches() accepts also satisfies, made of what the store finds by index
  // (store/trace_query.h), for ListQuery::condition; null when none can be derived (e.g. NOT, OR
  // with an unindexed side, responsetime). Matches() stays the rule: the store only narrows.
  std::shared_ptr<const store::IndexCondition> NecessaryCondition() const;

 private:
  friend Result<EntitySelector> ParseEntitySelector(std::string_view text);
  std::shared_ptr<const FilterNode> root_;
};

// GetTimeSeriesServiceStatistics's EntitySelectorExpression: service("name"),
// service(id(name: "n", type: "t")), id(...) or edge(a, b) with a and b names or id(...).
// Empty text selects nothing in particular (ids empty).
struct EntitySelector {
  bool edge = false;
  std::vector<std::pair<std::string, std::string>> ids;  // (name, type); "" = any; two for an edge
};
Result<EntitySelector> ParseEntitySelector(std::string_view text);

}  // namespace xrayd::api
