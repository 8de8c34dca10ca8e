// Verifies the SigV4 signature of requests to `xrayd serve`'s X-Ray API against configured
// access keys, the way AWS's endpoints do, so the API can be exposed beyond loopback.
//
// Accepted: the Authorization header form (AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/
// aws4_request, SignedHeaders=..., Signature=...) with X-Amz-Date within 15 minutes of now. Any
// region is accepted; the service must be "xray". Thread-safe (immutable after construction).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace xrayd::api {

struct AccessKey {
  std::string id;
  std::string secret;
};

// "ID:SECRET,ID2:SECRET2" → keys; error names the bad entry.
Result<std::vector<AccessKey>> ParseAccessKeys(const std::string& text);

struct AuthFailure {
  int status;
  std::string type;  // AWS error code, e.g. InvalidSignatureException
  std::string message;
};

class RequestVerifier {
 public:
  explicit RequestVerifier(std::vector<AccessKey> keys) : keys_(std::move(keys)) {}

  // `headers`: every request header as received. `now` in epoch seconds.
  std::optional<AuthFailure> Verify(const std::string& method, const std::string& path, const std::string& query,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    const std::string& body, double now) const;

 private:
  const std::vector<AccessKey> keys_;
};

}  // namespace xrayd::api
