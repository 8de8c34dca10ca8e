// The REST-JSON error shape AWS SDKs parse (botocore, the JS SDK v3, the Go and Java SDKs, the AWS
// CLI): status code, an `x-amzn-ErrorType` header naming the error, and a body
// {"__type": TYPE, "message": MESSAGE}. The X-Ray API and the sampling proxy answer every error
// through here, so the shape is written once.
//
// The message is escaped as JSON and any byte that is not valid UTF-8 is replaced (U+FFFD), so an
// error that echoes client input is always a parseable body. Callers decide what the message says:
// it must never carry internal exception text (see api/api_error.h).
#pragma once

#include <string>
#include <string_view>

#include "http/server_message.h"

namespace xrayd::http {

// {"__type":"TYPE","message":"MESSAGE"}
std::string JsonErrorBody(std::string_view type, std::string_view message);

// The whole answer: status, x-amzn-ErrorType header, JSON body.
OutgoingResponse JsonErrorResponse(int status, std::string_view type, std::string_view message);

// `text` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string ValidUtf8(std::string_view text);

}  // namespace xrayd::http
