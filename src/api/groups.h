// Groups: X-Ray groups (a name and a filter expression), with the Default group always listed
// (GetGroups, GetGroup, CreateGroup, UpdateGroup, DeleteGroup), and the filter a graph request
// selects with GroupName/GroupARN.
//
// Saved in the store's settings after every change and loaded at construction, like the sampling
// rules. Requests arrive checked against the model; a filter expression is parsed before it is
// stored, so a stored group's filter always parses.
//
// Thread-safe: one mutex guards the maps; no thread of its own. Borrows the store, which must
// outlive it.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "api/api_context.h"
#include "api/api_error.h"
#include "api/filter_expression.h"
#include "common/thread_annotations.h"
#include "store/trace_store.h"

namespace xrayd::api {

class Groups {
 public:
  explicit Groups(store::TraceStore& store);

  nlohmann::json List() XRAYD_EXCLUDES(mu_);
  ApiResult<nlohmann::json> Get(const nlohmann::json& in) XRAYD_EXCLUDES(mu_);
  ApiResult<nlohmann::json> Create(const nlohmann::json& in) XRAYD_EXCLUDES(mu_);
  ApiResult<nlohmann::json> Update(const nlohmann::json& in) XRAYD_EXCLUDES(mu_);
  ApiResult<nlohmann::json> Delete(const nlohmann::json& in) XRAYD_EXCLUDES(mu_);
  // The filter of the group a request names by GroupName or GroupARN (none named: all traces).
  ApiResult<Filter> FilterOf(const nlohmann::json& in) XRAYD_EXCLUDES(mu_);

 private:
  struct Group {
    std::string filter_expression;
    bool insights = false, notifications = false;
  };

  static std::string NameOf(const nlohmann::json& in);  // GroupName, or the last part of GroupARN
  static nlohmann::json Summary(const std::string& name, const Group& g);
  void SaveLocked() XRAYD_REQUIRES(mu_);

  // Constant after construction.
  store::TraceStore& store_;

  Mutex mu_;
  std::map<std::string, Group> groups_ XRAYD_GUARDED_BY(mu_);  // not holding Default
};

// Handlers (api_context.h) of the group operations.
ApiResult<nlohmann::json> GetGroups(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> GetGroup(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> CreateGroup(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> UpdateGroup(ApiContext& ctx, const nlohmann::json& in);
ApiResult<nlohmann::json> DeleteGroup(ApiContext& ctx, const nlohmann::json& in);

}  // namespace xrayd::api
