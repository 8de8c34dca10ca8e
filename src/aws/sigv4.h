// AWS Signature Version 4 (header form) for requests the daemon sends to AWS services.
//
// Pure functions over values; thread-safe. The canonical request follows AWS's rules for
// non-S3 services: the path is normalised and each segment percent-encoded, query parameters
// decoded-then-encoded and sorted, header names lower-cased, values trimmed with inner runs of
// spaces collapsed, duplicates joined with ','.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xrayd::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  bool empty() const { return access_key_id.empty() || secret_access_key.empty(); }
};

struct SignableRequest {
  std::string method;
  std::string path;   // raw path, without the query
  std::string query;  // raw query, without '?'
  std::vector<std::pair<std::string, std::string>> headers;  // all are signed
};

struct SigningScope {
  std::string region;
  std::string service;
  std::chrono::system_clock::time_point time;
};

std::string Sha256Hex(std::string_view data);
std::string FormatAmzDate(std::chrono::system_clock::time_point t);  // 20150830T123600Z

std::string CanonicalRequest(const SignableRequest& request, std::string_view payload_sha256_hex);
std::string StringToSign(std::string_view canonical_request, const SigningScope& scope);
std::string SignatureHex(std::string_view string_to_sign, const Credentials& creds, const SigningScope& scope);
// The Authorization header value for a request whose headers are complete.
std::string AuthorizationHeader(const SignableRequest& request, std::string_view payload_sha256_hex,
                                const Credentials& creds, const SigningScope& scope);

// Adds X-Amz-Date and (with a session token) X-Amz-Security-Token, then Authorization.
// The request's headers must already hold Host and any other header to be signed.
void Sign(SignableRequest& request, std::string_view body, const Credentials& creds, const SigningScope& scope);

}  // namespace xrayd::aws
