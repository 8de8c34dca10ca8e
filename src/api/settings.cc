#include "api/settings.h"

#include "common/log.h"

namespace xrayd::api {

std::optional<nlohmann::json> LoadSettingObject(store::TraceStore& store, const std::string& key, const char* what) {
  auto saved = store.GetSetting(key);
  if (!saved) {
    XLOG_ERROR("Cannot load {}: {}", what, saved.error().message);
    return std::nullopt;
  }
  if (!*saved) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(**saved, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

void SaveSetting(store::TraceStore& store, const std::string& key, const nlohmann::json& value, const char* what) {
  if (auto st = store.PutSetting(key, value.dump()); !st) XLOG_ERROR("Cannot save {}: {}", what, st.error().message);
}

}  // namespace xrayd::api
