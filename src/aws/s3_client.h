// S3Client: the two S3 reads xrayd needs (ListObjectsV2, GetObject), as SigV4-signed GETs.
//
// S3 signs differently from the JSON services SignedClient serves: the request is a GET with an empty
// body, `x-amz-content-sha256` (the empty payload's SHA-256) is required and signed, and the
// canonical path is the object key percent-encoded once (AWS's unreserved characters and '/' kept).
// Keys are sent the same way, so what is signed is what is sent. Keys whose path would be changed by
// the normalisation sigv4.h applies (empty, "." or ".." segments) are not supported; ELB's log keys
// never have them.
//
// Addressing: an endpoint override (--lb-logs-s3-endpoint, AWS_ENDPOINT_URL_S3, e.g. moto or MinIO)
// is used path-style (endpoint/bucket/key); otherwise https://s3.<region>.<partition suffix>/bucket/key.
//
// Thread-safety: const after construction; each call takes the caller's http::Client (one per
// thread). The credentials provider (null: unsigned) must outlive the S3Client.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "common/result.h"
#include "http/http_client.h"

namespace xrayd::aws {

// "s3://bucket/prefix" → bucket, prefix ("" or "logs/", as given).
struct S3Location {
  std::string bucket;
  std::string prefix;
};
Result<S3Location> ParseS3Url(std::string_view url);

struct S3ObjectInfo {
  std::string key;
  std::string etag;
  uint64_t size = 0;
};

struct S3ListPage {
  std::vector<S3ObjectInfo> objects;
  std::string next_token;  // empty: the listing is complete
};

struct S3ClientOptions {
  std::string endpoint;  // override URL; empty: the region's endpoint
  std::string region = "us-east-1";
};

class S3Client {
 public:
  static Result<S3Client> Create(S3ClientOptions options, CredentialsProvider* credentials);

  // One page (up to 1000 keys) of the bucket's keys under `prefix`, after `continuation_token`.
  Result<S3ListPage> ListObjectsV2(http::Client& client, const std::string& bucket, const std::string& prefix,
                                   const std::string& continuation_token) const;
  // The object's bytes (bounded by the client's max_response_bytes).
  Result<std::string> GetObject(http::Client& client, const std::string& bucket, const std::string& key) const;

  const std::string& origin() const { return origin_; }

 private:
  S3Client(S3ClientOptions options, CredentialsProvider* credentials, std::string origin, std::string authority,
           std::string base_path);
  // GETs base_path + path (decoded, encoded here) ? query (already encoded); non-2xx is an Error:
  // 5xx, 429, 401, 403 and SlowDown retryable, others permanent, with S3's error Code in the message.
  Result<http::Response> Get(http::Client& client, const std::string& path, const std::string& query) const;

  // Constant after construction.
  S3ClientOptions options_;
  CredentialsProvider* credentials_;
  std::string origin_;     // scheme://authority
  std::string authority_;  // the Host header
  std::string base_path_;  // the endpoint's own path prefix, "" or "/prefix"
};

// Exposed for tests: the text of the first <tag>...</tag> in `xml` from `from` on (XML entities
// decoded), and where it ended; npos when absent.
std::string XmlText(std::string_view xml, std::string_view tag, size_t from = 0, size_t* end = nullptr);

}  // namespace xrayd::aws
