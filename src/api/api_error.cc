#include "api/api_error.h"

#include "common/log.h"

namespace xrayd::api {

ApiError ApiError::Internal(std::string_view what, const Error& cause) {
  XLOG_ERROR("X-Ray API: {}: {}", what, cause.message);
  return {500, "InternalFailure", std::string(kInternalFailureMessage)};
}

ApiError ApiError::FromStore(std::string_view field, std::string_view what, const Error& cause) {
  if (cause.kind == Error::Kind::kInvalidArgument) return Invalid(std::string(field) + " is not valid");
  return Internal(what, cause);
}

}  // namespace xrayd::api
