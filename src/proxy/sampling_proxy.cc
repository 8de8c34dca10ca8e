#include "proxy/sampling_proxy.h"

#include "aws/endpoint.h"
#include "aws/sigv4.h"
#include "common/log.h"

namespace xrayd {
namespace {

constexpr size_t kMaxBody = 1024 * 1024;
log::RateLimiter g_proxy_log(std::chrono::seconds(5));

http::OutgoingResponse JsonError(int status, const std::string& type, const std::string& message) {
  return {status, "application/json", {{"x-amzn-ErrorType", type}},
          "{\"__type\":\"" + type + "\",\"message\":\"" + message + "\"}"};
}

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
    return JsonError(404, "UnknownOperationException", "the daemon forwards only X-Ray sampling calls");
  aws::SignableRequest signable{"POST", base_path_ + req.path, "", {{"Host", host_}, {"Content-Type", "application/json"}}};
  if (credentials_ != nullptr) {
    if (auto creds = credentials_->Get()) {
      aws::Sign(signable, req.body, *creds, {options_.region, "xray", std::chrono::system_clock::now()});
    } else if (g_proxy_log.Allow()) {
      XLOG_WARN("Sampling proxy: no credentials ({}); forwarding unsigned", creds.error().message);
    }
  }
  http::Request out{"POST", base_url_ + req.path, std::move(signable.headers), req.body};
  auto client = TakeClient();
  auto answer = client->Send(out);
  if (!answer) {
    if (g_proxy_log.Allow()) XLOG_WARN("Sampling proxy: {} {} failed: {}", req.method, req.path, answer.error().message);
    return JsonError(502, "ServiceUnavailableException", "the X-Ray endpoint could not be reached");
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
  auto url = aws::ParseUrl(options_.endpoint);
  if (!url) return url.error();
  host_ = url->authority;
  base_path_ = url->path;
  base_url_ = url->scheme + "://" + url->authority + url->path;
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
