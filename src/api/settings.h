// The API's state kept in the store's settings (sampling rules, groups) as JSON objects: loaded
// once at construction, saved after every change. A failed load or save is logged, naming `what`,
// and not an error of the request (the state stays in memory).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "store/trace_store.h"

namespace xrayd::api {

// The object saved under `key`; nullopt when none is saved, it cannot be read or is not an object.
std::optional<nlohmann::json> LoadSettingObject(store::TraceStore& store, const std::string& key, const char* what);
void SaveSetting(store::TraceStore& store, const std::string& key, const nlohmann::json& value, const char* what);

}  // namespace xrayd::api
