// What every X-Ray API handler gets: the state it may read and change, and its signature.
//
// A handler is a plain function from the request (already parsed and checked against its shape in
// request_shapes.h) to an answer or an ApiError (api_error.h); it does not throw. The route table
// in xray_api.cc names one per operation.
#pragma once

#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "store/trace_store.h"

namespace xrayd::api {

class SamplingRules;
class Groups;

struct ApiContext {
  store::TraceStore& store;
  SamplingRules& sampling;
  Groups& groups;
};

using Handler = ApiResult<nlohmann::json> (*)(ApiContext& ctx, const nlohmann::json& input);

// Epoch seconds now (the API's clock).
double NowSeconds();

}  // namespace xrayd::api
