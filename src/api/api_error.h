// The error policy of the X-Ray API: handlers return values, never throw.
//
// Every handler returns ApiResult<json>: the answer, or an ApiError carrying the X-Ray error type,
// the HTTP status and a message for the client. Client mistakes are InvalidRequestException (400)
// with a message naming the field. Failures of ours (a store error) are made with Internal(): the
// detail goes to the log and the client gets InternalFailure (500) with a fixed message, so
// internal text (SQLite messages, exception what()) never reaches a response. The dispatcher
// (XrayApi::Handle) keeps one catch, for bugs only, answered the same way.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/result.h"

namespace xrayd::api {

struct ApiError {
  int status = 400;
  std::string type;
  std::string message;

  static ApiError Invalid(std::string message) { return {400, "InvalidRequestException", std::move(message)}; }
  static ApiError UnknownOperation(std::string message) {
    return {404, "UnknownOperationException", std::move(message)};
  }
  // Logs `what` and `cause` (internal text); answers InternalFailure without them.
  static ApiError Internal(std::string_view what, const Error& cause);
  // A store error: kInvalidArgument (the client's input, e.g. a bad cursor) is InvalidRequestException
  // with `field` named; anything else is Internal.
  static ApiError FromStore(std::string_view field, std::string_view what, const Error& cause);
};

// The message every InternalFailure carries.
inline constexpr std::string_view kInternalFailureMessage = "internal error; see the xrayd log";

template <typename T>
using ApiResult = Result<T, ApiError>;

using ApiStatus = ApiResult<Ok>;

}  // namespace xrayd::api
