// The root causes a trace summary carries (FaultRootCauses, ErrorRootCauses,
// ResponseTimeRootCauses), found in a trace's assembled segment documents. Grafana's X-Ray data
// source aggregates them for its Trace Analytics queries.
//
// Fault / error: each service (segment) whose tree has the flag set while none of the services
// it called has, is a root cause. Its Services are the chain of services from the trace's entry
// down to it, each with the entity path (segment, then subsegments) through which it called the
// next; the root cause service's path leads to its deepest flagged (sub)segment and carries the
// exceptions of the entities on it. A flagged remote call whose callee sent no segment adds that
// callee as an inferred service.
// Response time: from the entry segment, down to the slowest called service, repeatedly; each
// entity with its share of the trace's response time (Coverage).
//
// Services are typed by origin, or "service" without one, as the service graph types them.
// Pure function; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "segment/segment.h"

namespace xrayd::api {

struct RootCauses {
  nlohmann::json fault = nlohmann::json::array();
  nlohmann::json error = nlohmann::json::array();
  nlohmann::json response_time = nlohmann::json::array();
};

// `segments`: the facts (segment::Parser::FactsOf) of the trace's segment documents, streamed
// subsegments merged (AssembleTrace).
RootCauses FindRootCauses(const std::vector<segment::Facts>& segments);

}  // namespace xrayd::api
