#include "aws/signed_client.h"

#include <chrono>

#include "aws/endpoint.h"
#include "aws/sigv4.h"

namespace xrayd::aws {

Result<std::shared_ptr<const SignedClient>> SignedClient::Create(SignedClientOptions options,
                                                                 CredentialsProvider* credentials) {
  auto url = ParseUrl(options.endpoint);
  if (!url) return url.error();
  std::string origin = url->scheme + "://" + url->authority;
  return std::shared_ptr<const SignedClient>(
      new SignedClient(std::move(options), credentials, std::move(origin), url->authority, url->path));
}

SignedClient::SignedClient(SignedClientOptions options, CredentialsProvider* credentials, std::string origin,
                           std::string authority, std::string prefix)
    : options_(std::move(options)),
      credentials_(credentials),
      origin_(std::move(origin)),
      authority_(std::move(authority)),
      prefix_(std::move(prefix)),
      unsigned_log_(std::chrono::seconds(10)) {}

std::string SignedClient::UrlFor(std::string_view path) const { return origin_ + prefix_ + std::string(path); }

Result<http::Response> SignedClient::Post(http::Client& client, std::string_view path, std::string body,
                                          const http::Headers& extra) const {
  return PostLent(client, path, body, extra);
}

Result<http::Response> SignedClient::PostLent(http::Client& client, std::string_view path, std::string& body,
                                              const http::Headers& extra) const {
  if (credentials_ == nullptr) return Send(client, nullptr, path, body, extra);
  auto creds = credentials_->Get();
  if (creds) return Send(client, &*creds, path, body, extra);
  if (options_.on_missing_credentials == MissingCredentials::kDoNotSend)
    return Error::Transport(TransportError::kNoCredentials, "not sent: no AWS credentials: " + creds.error().message);
  if (unsigned_log_.Allow())
    XLOG_WARN("No AWS credentials ({}); sending unsigned to {}", creds.error().message, origin_ + prefix_);
  return Send(client, nullptr, path, body, extra);
}

Result<http::Response> SignedClient::PostWith(http::Client& client, const Credentials* credentials,
                                              std::string_view path, std::string body,
                                              const http::Headers& extra) const {
  return Send(client, credentials, path, body, extra);
}

Result<http::Response> SignedClient::Send(http::Client& client, const Credentials* credentials, std::string_view path,
                                          std::string& body, const http::Headers& extra) const {
  SignableRequest signable{"POST", prefix_ + std::string(path), "",
                           {{"Host", authority_}, {"Content-Type", options_.content_type}}};
  for (const auto& h : extra) signable.headers.push_back(h);
  if (credentials != nullptr)
    Sign(signable, body, *credentials, {options_.region, options_.service, std::chrono::system_clock::now()});
  http::Request request{"POST", origin_ + signable.path, std::move(signable.headers), std::move(body)};
  request.headers.emplace_back("User-Agent", options_.user_agent);
  Result<http::Response> response = client.Send(request);
  body = std::move(request.body);
  return response;
}

}  // namespace xrayd::aws
