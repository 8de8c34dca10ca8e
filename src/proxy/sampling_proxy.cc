#include "proxy/sampling_proxy.h"

#include <httplib.h>

#include "aws/endpoint.h"
#include "aws/sigv4.h"
#include "common/log.h"

namespace xrayd {
namespace {

constexpr size_t kMaxBody = 1024 * 1024;
log::RateLimiter g_proxy_log(std::chrono::seconds(5));

void JsonError(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  res.status = status;
  res.set_header("x-amzn-ErrorType", type);
  res.set_content("{\"__type\":\"" + type + "\",\"message\":\"" + message + "\"}", "application/json");
}

}  // namespace

SamplingProxy::SamplingProxy(SamplingProxyOptions options, aws::CredentialsProvider* credentials)
    : options_(std::move(options)), credentials_(credentials) {}

SamplingProxy::~SamplingProxy() { Stop(); }

bool SamplingProxy::IsForwardedPath(const std::string& path) {
  return path == "/GetSamplingRules" || path == "/SamplingTargets" || path == "/SamplingStatisticSummaries";
}

std::unique_ptr<http::Client> SamplingProxy::TakeClient() {
  {
    std::lock_guard lock(clients_mu_);
    if (!idle_clients_.empty()) {
      auto c = std::move(idle_clients_.back());
      idle_clients_.pop_back();
      return c;
    }
  }
  return std::make_unique<http::Client>(options_.http);
}

void SamplingProxy::ReturnClient(std::unique_ptr<http::Client> client) {
  std::lock_guard lock(clients_mu_);
  if (idle_clients_.size() < 4) idle_clients_.push_back(std::move(client));
}

Status SamplingProxy::Start() {
  auto url = aws::ParseUrl(options_.endpoint);
  if (!url) return url.error();
  host_ = url->authority;
  base_path_ = url->path;
  base_url_ = url->scheme + "://" + url->authority + url->path;
  server_ = std::make_unique<http::ListeningServer>(4);
  httplib::Server& routes = server_->routes();
  routes.set_payload_max_length(kMaxBody);
  routes.set_read_timeout(10, 0);
  routes.set_write_timeout(10, 0);
  routes.Post(R"(/[A-Za-z]+)", [this](const httplib::Request& req, httplib::Response& res) {
    if (!IsForwardedPath(req.path)) {
      JsonError(res, 404, "UnknownOperationException", "the daemon forwards only X-Ray sampling calls");
      return;
    }
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
      JsonError(res, 502, "ServiceUnavailableException", "the X-Ray endpoint could not be reached");
      return;
    }
    ReturnClient(std::move(client));
    res.status = static_cast<int>(answer->status);
    std::string type = answer->Header("content-type");
    if (std::string et = answer->Header("x-amzn-errortype"); !et.empty()) res.set_header("x-amzn-ErrorType", et);
    if (std::string rid = answer->Header("x-amzn-requestid"); !rid.empty()) res.set_header("x-amzn-RequestId", rid);
    res.set_content(answer->body, type.empty() ? "application/json" : type);
  });
  auto refuse = [](const httplib::Request&, httplib::Response& res) {
    JsonError(res, 404, "UnknownOperationException", "the daemon forwards only X-Ray sampling calls");
  };
  routes.Get(".*", refuse);
  routes.Put(".*", refuse);
  routes.Delete(".*", refuse);
  routes.Patch(".*", refuse);

  auto port = server_->Start(options_.listen_address, "TCP");
  if (!port) return port.error();
  port_ = *port;
  return OkStatus();
}

void SamplingProxy::Stop() {
  if (server_) server_->Stop();
}

}  // namespace xrayd
