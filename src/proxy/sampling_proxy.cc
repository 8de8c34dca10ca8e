#include "proxy/sampling_proxy.h"

#include "http/json_error.h"

namespace xrayd {
namespace {

constexpr size_t kMaxBody = 1024 * 1024;

}  // namespace

SamplingProxy::SamplingProxy(SamplingProxyOptions options, aws::CredentialsProvider* credentials)
    : options_(std::move(options)), credentials_(credentials) {}

SamplingProxy::~SamplingProxy() { Stop(); }

bool SamplingProxy::IsForwardedPath(const std::string& path) {
  return path == "/GetSamplingRules" || path == "/SamplingTargets" || path == "/SamplingStatisticSummaries";
}

http::ServerLimits SamplingProxy::Limits() {
  http::ServerLimits limits;
  limits.max_body_bytes = kMaxBody;
  limits.handler_threads = kHandlerThreads;
  return limits;
}

std::unique_ptr<http::Client> SamplingProxy::TakeClient() {
  {
    MutexLock lock(clients_mu_);
    if (!idle_clients_.empty()) {
      auto c = std::move(idle_clients_.back());
      idle_clients_.pop_back();
      return c;
    }
  }
  http::ClientOptions options = options_.http;
  options.abort = &abort_;
  return std::make_unique<http::Client>(options);
}

void SamplingProxy::ReturnClient(std::unique_ptr<http::Client> client) {
  MutexLock lock(clients_mu_);
  if (idle_clients_.size() < kHandlerThreads) idle_clients_.push_back(std::move(client));
}

http::OutgoingResponse SamplingProxy::Forward(const http::IncomingRequest& req) {
  if (req.method != "POST" || !IsForwardedPath(req.path))
    return http::JsonErrorResponse(404, "UnknownOperationException", "the daemon forwards only X-Ray sampling calls");
  auto client = TakeClient();
  auto answer = upstream_->Post(*client, req.path, req.body);
  if (!answer) {
    if (upstream_log_.Allow())
      XLOG_WARN("Sampling proxy: {} {} failed: {}", req.method, req.path, answer.error().message);
    return http::JsonErrorResponse(502, "ServiceUnavailableException", "the X-Ray endpoint could not be reached");
  }
  ReturnClient(std::move(client));
  std::string type = answer->Header("content-type");
  http::OutgoingResponse res{static_cast<int>(answer->status), type.empty() ? "application/json" : type, {},
                             std::move(answer->body)};
  if (std::string et = answer->Header("x-amzn-errortype"); !et.empty()) res.headers.emplace_back("x-amzn-ErrorType", et);
  if (std::string rid = answer->Header("x-amzn-requestid"); !rid.empty()) res.headers.emplace_back("x-amzn-RequestId", rid);
  return res;
}

Status SamplingProxy::Start() {
  aws::SignedClientOptions upstream;
  upstream.endpoint = options_.endpoint;
  upstream.region = options_.region;
  // An SDK's sampling call is better answered unsigned than not at all (AWS's daemon does the same).
  upstream.on_missing_credentials = aws::MissingCredentials::kSendUnsigned;
  auto client = aws::SignedClient::Create(std::move(upstream), credentials_);
  if (!client) return client.error();
  upstream_ = std::move(*client);
  auto port = server_.Start(options_.listen_address, [this](const http::IncomingRequest& req) { return Forward(req); },
                            Limits());
  if (!port) return port.error();
  port_ = *port;
  return OkStatus();
}

void SamplingProxy::Stop() {
  abort_ = true;  // before the server waits for its handlers: they may be blocked upstream
  server_.Stop();
}

}  // namespace xrayd
