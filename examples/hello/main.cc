// hello: the article's traced "Hello, X-Ray!" service, in C++ with cpp-httplib and the xray SDK.
//
//   GET /            answers "Hello, X-Ray! Trace ID: <id>" and logs the same line; on the way it calls
//                    GET /downstream on itself through libcurl, so each trace has two nodes
//                    (<service> → <service>-downstream).
//   GET /downstream  answers "downstream ok".
//   GET /health      answers "ok" (for probes); traced like the others, so a sampling rule can leave it out.
//
// Environment: PORT (default 5000), XRAY_SERVICE_NAME (default "hello"; AWS_XRAY_TRACING_NAME wins if
// set), AWS_XRAY_DAEMON_ADDRESS (default 127.0.0.1:2000; sampling rules come from its TCP address),
// XRAY_SAMPLING_RULES_FILE (optional local rules, JSON version 2, used until centralized rules arrive or
// when the daemon cannot give them; default: 1 request/s + 5 %), XRAY_CENTRALIZED_SAMPLING (set to
// "false" for local rules only), AWS_XRAY_CONTEXT_MISSING, HELLO_THREADS (server workers, default 64).
// Listens on 0.0.0.0; SIGTERM/SIGINT stop it cleanly.
#include <curl/curl.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "xray/centralized_sampling.h"
#include "xray/curl_helper.h"
#include "xray/httplib_middleware.h"
#include "xray/log.h"
#include "xray/recorder.h"

namespace {

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

void LogLine(const char* level, std::string_view message) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::fprintf(stderr, "%s %s %.*s\n", stamp, level, static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
}

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One libcurl handle per server worker thread (reused for its DNS cache and buffers).
CURL* ThreadCurl() {
  thread_local std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy(curl_easy_init(), curl_easy_cleanup);
  return easy.get();
}

std::shared_ptr<xray::Sampler> LocalRulesFromEnvironment() {
  std::string path = Env("XRAY_SAMPLING_RULES_FILE", "");
  if (path.empty()) return nullptr;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string error;
  auto sampler = xray::LocalSampler::FromJson(text.str(), &error);
  if (!sampler) {
    LogLine("ERROR", "sampling rules " + path + ": " + (in ? error : std::string("cannot read")) +
                         "; using the default rule");
    return nullptr;
  }
  return std::shared_ptr<xray::Sampler>(std::move(sampler));
}

// Centralized sampling with the local rules as its fallback (the SDK's default, which falls back to the
// default local rule, when there is no rules file), or the local rules alone.
std::shared_ptr<xray::Sampler> SamplerFromEnvironment() {
  std::shared_ptr<xray::Sampler> local = LocalRulesFromEnvironment();
  if (Env("XRAY_CENTRALIZED_SAMPLING", "true") == "false")
    return local ? local : std::make_shared<xray::LocalSampler>();
  if (!local) return nullptr;
  auto options = xray::CentralizedSamplerOptions::ForDaemon(xray::DaemonAddress::FromEnvironment());
  options.fallback = std::move(local);
  return std::make_shared<xray::CentralizedSampler>(std::move(options));
}

}  // namespace

int main() {
  // Signals are taken by one thread with sigwait; block them before any other thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  curl_global_init(CURL_GLOBAL_DEFAULT);
  xray::SetLogger([](xray::LogLevel level, std::string_view m) {
    LogLine(level == xray::LogLevel::kError ? "ERROR" : level == xray::LogLevel::kWarn ? "WARN" : "INFO", m);
  });

  const int port = std::atoi(Env("PORT", "5000").c_str());
  if (port <= 0 || port > 65535) {
    LogLine("ERROR", "PORT must be 1-65535");
    return 2;
  }
  xray::RecorderConfig config = xray::RecorderConfig::FromEnvironment(Env("XRAY_SERVICE_NAME", "hello"));
  config.sampler = SamplerFromEnvironment();
  const std::string service = config.service_name;
  xray::Recorder recorder(config);

  httplib::Server server;
  // Every GET / holds one worker while its /downstream call needs another one from the same pool, so the
  // pool must be well above the expected concurrency (cpp-httplib's default, 8 on small machines,
  // deadlocks until the downstream timeout with 8 concurrent clients). HELLO_THREADS overrides.
  const int threads = std::max(8, std::atoi(Env("HELLO_THREADS", "64").c_str()));
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  xray::HttpServerTracingOptions tracing;
  tracing.segment_name = [service](const httplib::Request& req) {
    return req.path == "/downstream" ? service + "-downstream" : service;
  };
  xray::InstrumentServer(server, recorder, tracing);

  const std::string downstream_url = "http://127.0.0.1:" + std::to_string(port) + "/downstream";
  server.Get("/", [&recorder, &downstream_url](const httplib::Request&, httplib::Response& res) {
    const xray::Segment* segment = recorder.CurrentSegment();
    const std::string trace_id = segment != nullptr ? segment->trace_id() : "No segment";

    CURL* easy = ThreadCurl();
    std::string body;
    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, AppendBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 2000L);
    // No keep-alive to ourselves: an idle kept-alive connection pins a server worker for seconds.
    curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
    CURLcode rc = xray::TracedPerform(recorder, easy, downstream_url, nullptr, "downstream");
    if (rc != CURLE_OK) LogLine("WARN", std::string("downstream call failed: ") + curl_easy_strerror(rc));

    const std::string line = "Hello, X-Ray! Trace ID: " + trace_id;
    LogLine("INFO", line);
    res.set_content(line + "\n", "text/plain");
  });
  server.Get("/downstream", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("downstream ok\n", "text/plain");
  });
  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });

  std::thread signals([&server, &stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    LogLine("INFO", sig == SIGTERM ? "SIGTERM: stopping" : "SIGINT: stopping");
    server.stop();
  });

  if (!server.bind_to_port("0.0.0.0", port)) {
    LogLine("ERROR", "cannot listen on 0.0.0.0:" + std::to_string(port));
    std::_Exit(1);  // the signal thread is blocked in sigwait
  }
  LogLine("INFO", "hello (service \"" + service + "\") listening on 0.0.0.0:" + std::to_string(port));
  server.listen_after_bind();

  if (signals.joinable()) {
    pthread_kill(signals.native_handle(), SIGTERM);  // no-op if it already returned
    signals.join();
  }
  curl_global_cleanup();
  return 0;
}
